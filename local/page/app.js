/* DR wave reconciler — live status page for one execution.
 *
 * URL: /?execution=<executionId>[&interval=<ms>]  (interval defaults to 2000, clamped to >= 200).
 * Without ?execution a small form asks for the id. With it, the page polls
 * GET /executions/{id} (If-None-Match with the last ETag; a new poll is scheduled only after
 * the previous one finished), renders the execution, its waves and servers in the viewer's
 * time zone, and lists / highlights (.changed) what differs from the previously rendered document.
 * Data is only ever put in the DOM with createElement / textContent, never innerHTML.
 *
 * Test hooks:
 *   main#app[data-polls]   +1 after every completed poll (200, 304, 4xx, 5xx, network error)
 *   main#app[data-renders] +1 after every render of a 200 document
 *   #execution-status      textContent = execution status
 *   section.wave[data-wave=<waveNumber>][data-status=<status>][data-account=<accountId>][data-region=<region>]
 *     > dl.meta dd[data-field=accountId|region|jobId|startTime|endTime]   the wave's target, job, times
 *     > p[data-field=error|accessProblem|startProblem]   shown only when set (accessProblem: the hub
 *       cannot reach the wave's account; startProblem: why DRS deferred its start, until startRetryAt)
 *   tr.server[data-server=<sourceServerId>][data-launch-status=<launchStatus>]
 *     > td[data-field=hostname|sourceServerId|launchStatus|recoveredInstanceId|instanceType|
 *                     privateIp|launchTime|ec2State|error]   (null → empty textContent)
 *   #changes (aria-live="polite") > #changes-list > li   changes since the last poll
 * Each render builds the execution off-DOM and swaps it into #doc with one replaceChildren call.
 */
"use strict";

const params = new URLSearchParams(location.search);
const executionId = (params.get("execution") || "").trim();
const rawInterval = Number.parseInt(params.get("interval") || "", 10);
const interval = Number.isFinite(rawInterval) ? Math.max(200, rawInterval) : 2000;

const app = document.getElementById("app");
const doc = document.getElementById("doc");
const notice = document.getElementById("notice");
const changesSection = document.getElementById("changes");
const changesList = document.getElementById("changes-list");

const SERVER_FIELDS = [
  ["hostname", "Host"], ["sourceServerId", "Source server"], ["launchStatus", "Launch"],
  ["recoveredInstanceId", "Instance id"], ["instanceType", "Type"], ["privateIp", "Private IP"],
  ["launchTime", "Launch time"], ["ec2State", "EC2 state"], ["error", "Error"],
];
// [field, label used in the changes list]; label "" = "<who> A → B"; null = highlight only.
const EXEC_DIFF = [["status", ""], ["name", "name"], ["isDrill", "drill"], ["updatedAt", null]];
const WAVE_DIFF = [["status", ""], ["name", "name"], ["accountId", "account"], ["region", "Region"],
  ["jobId", "job"], ["startTime", "start"], ["endTime", "end"], ["error", "error"],
  ["accessProblem", "account unreachable"], ["startProblem", "start deferred"], ["startRetryAt", null]];
const SERVER_DIFF = [["hostname", "host"], ["launchStatus", "launch"], ["recoveredInstanceId", "instance"],
  ["instanceType", "type"], ["privateIp", "private IP"], ["launchTime", "launch time"],
  ["ec2State", "EC2 state"], ["error", "error"]];
const TIME_FIELDS = new Set(["createdAt", "updatedAt", "startTime", "endTime", "launchTime"]);
const TONES = {
  COMPLETED: "ok", LAUNCHED: "ok", PARTIAL: "warn", PAUSED: "warn", FAILED: "bad",
  LAUNCHING: "info", IN_PROGRESS: "info", RUNNING: "info",
  PENDING: "neutral", CANCELLED: "neutral", TERMINATED: "neutral",
};
const MAX_NOTES = 50;

const dtf = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
});

let etag = null; // last ETag received
let prev = null; // last rendered document
let polls = 0, renders = 0, stopped = false;

// ---------- small helpers ----------

/** createElement with attributes (null/false skipped) and children (strings become text nodes). */
function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v != null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  node.append(...kids.filter((kid) => kid != null && kid !== ""));
  return node;
}

/** Display text of any JSON value; null/undefined → "". */
function text(v) {
  if (v == null) return "";
  if (typeof v === "object") return v.message != null ? String(v.message) : JSON.stringify(v);
  return String(v);
}

const short = (s) => (s.length > 80 ? `${s.slice(0, 79)}…` : s);
const secs = (ms) => `${+(ms / 1000).toFixed(1)} s`;
const key = (...parts) => JSON.stringify(parts);
const waveKey = (w, i) => w.waveNumber ?? `#${i}`;
const serverKey = (s, j) => s.sourceServerId ?? `#${j}`;
const serverName = (s, j) => s.hostname || s.sourceServerId || `Server ${j + 1}`;
const byKey = (list, kf) => new Map((list || []).map((x, i) => [kf(x, i), x]));

function fmtTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dtf.format(d);
}

/** <time> with the ISO string in datetime + title; empty element when null. */
function timeEl(iso) {
  if (iso == null || iso === "") return el("time");
  return el("time", { datetime: iso, title: iso }, fmtTime(iso));
}

function badge(status, attrs = {}) {
  const tone = status == null ? "none" : TONES[status] || "other";
  return el("span", { ...attrs, class: `badge tone-${tone}` }, text(status));
}

function setNotice(message, kind = "info") {
  if (notice.textContent === message && notice.dataset.kind === kind) return; // don't re-announce
  notice.dataset.kind = kind;
  notice.textContent = message;
}

// Poll state + last checked: one persistent node, moved into each freshly built summary.
const pollState = el("span", { id: "poll-state" }, "Loading…");
const lastChecked = el("time", { id: "last-checked" });
const pollLine = el("p", { class: "poll" }, pollState, " · Last checked ", lastChecked);

const setPollState = (s) => { pollState.textContent = s; };

function summaryShell(title, ...extra) {
  return el("header", { class: "summary" },
    el("p", { class: "app-name" }, "DR wave reconciler"), el("h1", {}, title), ...extra);
}

// ---------- diff ----------

/** Keys of changed values (for .changed) and human-readable notes, prev → next. */
function diff(old, next) {
  const changed = new Set();
  const notes = [];
  if (!old) return { changed, notes };
  const cmpAll = (prefix, who, fields, a, b) => {
    for (const [f, label] of fields) {
      const av = text(a[f]);
      const bv = text(b[f]);
      if (av === bv) continue;
      changed.add(key(...prefix, f));
      if (label == null) continue;
      const show = (v) => short(TIME_FIELDS.has(f) ? fmtTime(v) : v);
      const lab = label ? ` ${label}` : "";
      if (!av) notes.push(`${who}:${lab} ${show(bv)} appeared`);
      else if (!bv) notes.push(`${who}:${lab} cleared`);
      else notes.push(`${who}${lab} ${show(av)} → ${show(bv)}`);
    }
  };
  cmpAll(["x"], "Execution", EXEC_DIFF, old, next);
  const oldWaves = byKey(old.waves, waveKey);
  (next.waves || []).forEach((w, i) => {
    const wk = waveKey(w, i);
    const who = `Wave ${w.waveNumber ?? i + 1}`;
    const ow = oldWaves.get(wk);
    oldWaves.delete(wk);
    if (!ow) { changed.add(key("w", wk)); notes.push(`${who} added`); return; }
    cmpAll(["w", wk], who, WAVE_DIFF, ow, w);
    const oldServers = byKey(ow.servers, serverKey);
    (w.servers || []).forEach((s, j) => {
      const sk = serverKey(s, j);
      const os = oldServers.get(sk);
      oldServers.delete(sk);
      if (!os) { changed.add(key("s", wk, sk)); notes.push(`${serverName(s, j)} added to ${who}`); return; }
      cmpAll(["s", wk, sk], serverName(s, j), SERVER_DIFF, os, s);
    });
    oldServers.forEach((os, sk) => notes.push(`${serverName(os, 0)} removed from ${who}`));
  });
  oldWaves.forEach((ow, wk) => notes.push(`Wave ${ow.waveNumber ?? wk} removed`));
  return { changed, notes };
}

// ---------- render ----------

function render(d) {
  const { changed, notes } = diff(prev, d);
  const mark = (node, ...parts) => {
    if (changed.has(key(...parts))) node.classList.add("changed");
    return node;
  };
  const item = (label, value, ...parts) =>
    el("div", {}, el("dt", {}, label), mark(el("dd", {}, value), ...parts));
  // A wave's field: its <dd> carries data-field (the test hook).
  const waveItem = (wk, f, label, value) =>
    el("div", {}, el("dt", {}, label), mark(el("dd", { "data-field": f }, value), "w", wk, f));
  // A wave's problem, shown only when set: <p data-field=f class=cls>Label: text</p>.
  const problem = (wk, w, f, cls, label, ...extra) => w[f] == null || w[f] === "" ? null :
    mark(el("p", { class: cls, "data-field": f }, `${label}: `, text(w[f]), ...extra), "w", wk, f);

  const mode = d.isDrill == null ? "" : d.isDrill ? "Drill" : "Recovery";
  const summary = summaryShell(text(d.name) || "Unnamed execution",
    el("dl", { class: "meta" },
      item("Status", badge(d.status, { id: "execution-status" }), "x", "status"),
      item("Type", mode, "x", "isDrill"),
      item("Execution id", el("code", {}, text(d.executionId))),
      item("Created", timeEl(d.createdAt)),
      item("Updated", timeEl(d.updatedAt), "x", "updatedAt")),
    pollLine);

  const waves = el("div", { class: "waves" });
  (d.waves || []).forEach((w, i) => {
    const wk = waveKey(w, i);
    const n = text(w.waveNumber ?? i + 1);
    const servers = w.servers || [];
    const rows = servers.map((s, j) => {
      const sk = serverKey(s, j);
      const tr = el("tr", {
        class: changed.has(key("s", wk, sk)) ? "server added" : "server",
        "data-server": text(s.sourceServerId), "data-launch-status": text(s.launchStatus),
      });
      for (const [f] of SERVER_FIELDS) {
        const v = s[f];
        const content = f === "launchTime" ? timeEl(v) : f === "launchStatus" && v != null ? badge(v) : text(v);
        tr.append(mark(el("td", { "data-field": f }, content), "s", wk, sk, f));
      }
      return tr;
    });
    const retry = w.startRetryAt == null ? null : el("span", {}, " — tried again from ", timeEl(w.startRetryAt));
    waves.append(el("section", {
      class: changed.has(key("w", wk)) ? "wave added" : "wave",
      "data-wave": text(w.waveNumber), "data-status": text(w.status),
      "data-account": text(w.accountId), "data-region": text(w.region), "aria-labelledby": `wave-h-${i}`,
    },
      el("div", { class: "wave-head" },
        el("h2", { id: `wave-h-${i}` }, `Wave ${n}${w.name ? ` — ${text(w.name)}` : ""}`),
        mark(badge(w.status), "w", wk, "status")),
      el("dl", { class: "meta" },
        waveItem(wk, "accountId", "Account", el("code", {}, text(w.accountId))),
        waveItem(wk, "region", "Region", text(w.region)),
        waveItem(wk, "jobId", "Job id", el("code", {}, text(w.jobId))),
        waveItem(wk, "startTime", "Started", timeEl(w.startTime)),
        waveItem(wk, "endTime", "Ended", timeEl(w.endTime))),
      problem(wk, w, "error", "wave-error", "Error"),
      problem(wk, w, "accessProblem", "wave-problem wave-access", "Account unreachable"),
      problem(wk, w, "startProblem", "wave-problem wave-start", "Start deferred", retry),
      servers.length === 0 ? el("p", { class: "empty-note" }, "No servers in this wave yet.") :
        el("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-labelledby": `cap-${i}` },
          el("table", {},
            el("caption", { id: `cap-${i}` }, `Servers in wave ${n} (${servers.length})`),
            el("thead", {}, el("tr", {}, ...SERVER_FIELDS.map(([, label]) => el("th", { scope: "col" }, label)))),
            el("tbody", {}, ...rows)))));
  });

  doc.replaceChildren(summary, waves); // the one atomic swap

  const items = notes.slice(0, MAX_NOTES).map((note) => el("li", {}, note));
  if (notes.length > MAX_NOTES) items.push(el("li", {}, `…and ${notes.length - MAX_NOTES} more`));
  if (items.length === 0) {
    items.push(el("li", { class: "none" }, prev ? "No visible changes." : "None yet — this is the first update."));
  }
  changesList.replaceChildren(...items);

  document.title = `${text(d.status) || "?"} · ${text(d.name) || "Execution"} — DR status`;
  prev = d;
  renders += 1;
  app.dataset.renders = String(renders);
}

// ---------- polling ----------

function retryAfterMs(value) {
  if (!value) return 0;
  const s = Number(value);
  const ms = Number.isFinite(s) ? s * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 600000) : 0;
}

async function poll() {
  let delay = interval;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Math.max(10000, 5 * interval));
  try {
    const res = await fetch(`/executions/${encodeURIComponent(executionId)}`, {
      headers: etag ? { "If-None-Match": etag } : {}, cache: "no-store", signal: abort.signal,
    });
    if (res.status === 200) {
      const body = await res.json();
      render(body);
      etag = res.headers.get("ETag");
      setNotice("");
      setPollState(`Live, every ${secs(interval)}`);
    } else if (res.status === 304) {
      setNotice("");
      setPollState(`Live, every ${secs(interval)} (no change)`);
    } else if (res.status === 404) {
      etag = null;
      prev = null;
      doc.replaceChildren(summaryShell("Execution not found",
        el("p", {}, "Id: ", el("code", {}, executionId)), pollLine));
      setNotice("No execution with this id", "info");
      setPollState("Waiting for it to appear");
    } else if (res.status === 400) {
      const body = await res.json().catch(() => null);
      setNotice(text(body && body.message) || "Bad request", "error");
      setPollState("Stopped");
      stopped = true;
    } else {
      const err = new Error(`HTTP ${res.status}`);
      err.retryAfter = res.headers.get("Retry-After");
      throw err;
    }
  } catch (err) {
    delay = Math.max(interval, retryAfterMs(err && err.retryAfter));
    const why = err && err.message && err.message.startsWith("HTTP ") ? ` (${err.message})` : "";
    setNotice(`Temporarily unavailable${why}, retrying in ${secs(delay)}.`, "warn");
    setPollState("Retrying");
  } finally {
    clearTimeout(timer);
    const now = new Date();
    lastChecked.dateTime = lastChecked.title = now.toISOString();
    lastChecked.textContent = dtf.format(now);
    polls += 1;
    app.dataset.polls = String(polls);
    if (!stopped) setTimeout(poll, delay);
  }
}

function showForm() {
  const form = el("form", { class: "pick", method: "get", action: "" },
    el("label", { for: "execution-input" }, "Execution id"),
    el("input", { id: "execution-input", name: "execution", type: "text", required: true,
      autocomplete: "off", spellcheck: "false", autocapitalize: "off" }),
    params.has("interval") ? el("input", { type: "hidden", name: "interval", value: params.get("interval") }) : null,
    el("button", { type: "submit" }, "Show status"));
  form.addEventListener("submit", () => {
    form.elements.execution.value = form.elements.execution.value.trim();
  });
  changesSection.hidden = true;
  doc.replaceChildren(summaryShell("Execution status",
    el("p", {}, "Enter the id of a DR execution to follow its waves.")), form);
}

if (executionId) {
  doc.replaceChildren(summaryShell("Execution status", el("p", {}, "Id: ", el("code", {}, executionId)), pollLine));
  changesList.replaceChildren(el("li", { class: "none" }, "None yet."));
  poll();
} else {
  showForm();
}
