/* DR wave reconciler — live status page: the list of executions, and one execution's detail.
 *
 * URLs: /[?status=<STATUS>][&interval=<ms>]           the list (GET /executions), newest first
 *       /?execution=<executionId>[&interval=<ms>]      one execution (GET /executions/{id})
 * interval: ms between polls, clamped to >= 200 (default 5000 for the list, 2000 for an execution).
 * The list has a status filter (kept in ?status=), pages through nextPageToken (Previous / Next
 * page), links each row to its execution, and has a form to open an execution by id; the detail
 * view links back to the list. Both poll: a new poll is scheduled only after the previous one
 * finished, none while the tab is hidden (polling resumes when it is shown again), and a
 * Retry-After is honoured. The detail sends If-None-Match with the last ETag, renders the
 * execution, its waves and servers in the viewer's time zone, and lists / highlights (.changed)
 * what differs from the previously rendered document; the list re-renders only when its answer
 * changed, highlighting rows that appeared and statuses that changed.
 * Data is only ever put in the DOM with createElement / textContent, never innerHTML.
 *
 * Test hooks:
 *   main#app[data-view=list|detail]
 *   main#app[data-polls]   +1 after every completed poll (200, 304, 4xx, 5xx, network error)
 *   main#app[data-renders] +1 after every render of a 200 document (detail) or of a changed list
 *   #back-to-list          (detail) link to the list
 * List view:
 *   select#status-filter (value "" = every status), button#prev-page, button#next-page,
 *   form.pick > input#execution-input (open an execution by id)
 *   table#executions > tbody > tr.execution[data-execution=<executionId>][data-status=<status>]
 *     > td[data-field=name|type|status|waveCount|createdAt|endTime]
 *     td[data-field=name] > a.execution-link (href ?execution=<executionId>)
 *   p#executions-empty     shown instead of the table when the page has no execution
 * Detail view:
 *   main#app[data-etag]    the ETag of the last rendered document
 *   #execution-status      textContent = execution status
 *   section.wave[data-wave=<waveNumber>][data-status=<status>][data-account=<accountId>][data-region=<region>]
 *     > dl.meta dd[data-field=accountId|region|jobId|startTime|endTime]   the wave's target, job, times
 *     > p[data-field=error|accessProblem|startProblem]   shown only when set (accessProblem: the hub
 *       cannot reach the wave's account; startProblem: why DRS deferred its start, until startRetryAt)
 *   tr.server[data-server=<sourceServerId>][data-launch-status=<launchStatus>]
 *     > td[data-field=hostname|sourceServerId|launchStatus|recoveredInstanceId|instanceType|
 *                     privateIp|launchTime|ec2State|error]   (null → empty textContent)
 *   #changes (aria-live="polite") > #changes-list > li   changes since the last poll
 * Each detail render builds the execution off-DOM and swaps it into #doc with one replaceChildren call.
 */
"use strict";

const params = new URLSearchParams(location.search);
const executionId = (params.get("execution") || "").trim();
const rawInterval = Number.parseInt(params.get("interval") || "", 10);
const interval = Number.isFinite(rawInterval)
  ? Math.max(200, rawInterval) : executionId ? 2000 : 5000;
// The page's own query parameters carried over to the links it makes (never sent to the API).
const keep = params.has("interval") ? { interval: params.get("interval") } : {};

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
const EXEC_DIFF = [["status", ""], ["name", "name"], ["isDrill", "drill"], ["endTime", "ended"],
  ["updatedAt", null]];
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
let polls = 0, renders = 0;

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

/** A URL of this page with these query parameters (and `keep`'s). */
function pageHref(query = {}) {
  const qs = new URLSearchParams({ ...query, ...keep }).toString();
  return qs ? `${location.pathname}?${qs}` : location.pathname;
}

function summaryShell(title, ...extra) {
  const back = executionId
    ? el("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      el("a", { id: "back-to-list", href: pageHref() }, "← All executions"))
    : null;
  return el("header", { class: "summary" }, back,
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
      item("Updated", timeEl(d.updatedAt), "x", "updatedAt"),
      item("Ended", timeEl(d.endTime), "x", "endTime")),
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

/** An error for an answer to retry later, carrying its Retry-After. */
function httpError(res) {
  const err = new Error(`HTTP ${res.status}`);
  err.retryAfter = res.headers.get("Retry-After");
  return err;
}

/** A failed poll: retry after the interval or the answer's Retry-After, whichever is longer. */
function retryLater(err) {
  const delay = Math.max(interval, retryAfterMs(err && err.retryAfter));
  const why = err && err.message && err.message.startsWith("HTTP ") ? ` (${err.message})` : "";
  setNotice(`Temporarily unavailable${why}, retrying in ${secs(delay)}.`, "warn");
  setPollState("Retrying");
  return delay;
}

/** One poll completed (whatever its answer): the "last checked" time and the test hook. */
function polled() {
  const now = new Date();
  lastChecked.dateTime = lastChecked.title = now.toISOString();
  lastChecked.textContent = dtf.format(now);
  polls += 1;
  app.dataset.polls = String(polls);
}

/**
 * Polls with `step(controller, current)`: now, then each time the delay it returns (ms; null
 * stops) has passed after it finished, so polls never overlap. No poll starts while the tab is
 * hidden; the next one runs as soon as it is shown again. `restart()` drops the poll in flight
 * (aborted; `current()` turns false for it) and polls at once.
 */
function pollLoop(step) {
  let timer = null, controller = null, generation = 0, busy = false, done = false;
  const run = async () => {
    timer = null;
    if (done || busy) return;
    if (document.hidden) {
      setPollState("Paused while this tab is hidden");
      return;
    }
    const mine = ++generation;
    const current = () => mine === generation;
    controller = new AbortController();
    busy = true;
    let delay = null;
    try {
      delay = await step(controller, current);
    } finally {
      if (current()) busy = false;
    }
    if (!current()) return;
    if (delay == null) done = true;
    else timer = setTimeout(run, delay);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null) run();
  });
  run();
  return {
    restart() {
      clearTimeout(timer);
      timer = null;
      generation += 1; // the poll in flight is no longer current
      busy = false;
      done = false;
      if (controller) controller.abort();
      run();
    },
  };
}

// ---------- one execution ----------

async function pollExecution(controller, current) {
  let delay = interval;
  const timer = setTimeout(() => controller.abort(), Math.max(10000, 5 * interval));
  try {
    const res = await fetch(`/executions/${encodeURIComponent(executionId)}`, {
      headers: etag ? { "If-None-Match": etag } : {}, cache: "no-store", signal: controller.signal,
    });
    if (res.status === 200) {
      const body = await res.json();
      render(body);
      etag = res.headers.get("ETag");
      app.dataset.etag = etag || "";
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
      delay = null;
    } else {
      throw httpError(res);
    }
  } catch (err) {
    if (!current()) return null;
    delay = retryLater(err);
  } finally {
    clearTimeout(timer);
    if (current()) polled();
  }
  return delay;
}

// ---------- the list of executions ----------

const LIST_STATUSES = ["RUNNING", "PAUSED", "COMPLETED", "PARTIAL", "FAILED", "CANCELLED"];
const LIST_COLUMNS = [["name", "Name"], ["type", "Type"], ["status", "Status"], ["waveCount", "Waves"],
  ["createdAt", "Created"], ["endTime", "Ended"]];

const list = {
  status: LIST_STATUSES.includes(params.get("status")) ? params.get("status") : "",
  token: null, // pageToken of the page shown (null: the first page)
  before: [], // the tokens of the pages before it, for "Previous page"
  next: null, // the shown page's nextPageToken
  shown: null, // the last rendered answer, as text: an unchanged answer is not rendered again
  statuses: null, // executionId → status as last rendered on this page (highlights); null: new page
  etag: null,
};
let listLoop = null;

const statusFilter = el("select", { id: "status-filter", name: "status" },
  el("option", { value: "" }, "All statuses"), ...LIST_STATUSES.map((s) => el("option", { value: s }, s)));
const prevButton = el("button", { id: "prev-page", type: "button", disabled: true }, "← Previous page");
const nextButton = el("button", { id: "next-page", type: "button", disabled: true }, "Next page →");
const pageLabel = el("span", { class: "page-label" }, "Page 1");
const listBody = el("div", { class: "list-body" }, el("p", { class: "empty-note" }, "Loading…"));

function listQuery() {
  const q = new URLSearchParams();
  if (list.status) q.set("status", list.status);
  if (list.token) q.set("pageToken", list.token);
  return q.toString();
}

/** Show another page (or the first page of another filter) at once. */
function turnPage(token, before) {
  Object.assign(list, { token, before, next: null, shown: null, statuses: null, etag: null });
  prevButton.disabled = nextButton.disabled = true;
  pageLabel.textContent = `Page ${before.length + 1}`;
  listBody.setAttribute("aria-busy", "true");
  if (listLoop) listLoop.restart();
}

statusFilter.addEventListener("change", () => {
  list.status = LIST_STATUSES.includes(statusFilter.value) ? statusFilter.value : "";
  history.replaceState(null, "", pageHref(list.status ? { status: list.status } : {}));
  turnPage(null, []);
});
nextButton.addEventListener("click", () => {
  if (list.next) turnPage(list.next, [...list.before, list.token]);
});
prevButton.addEventListener("click", () => {
  if (list.before.length) turnPage(list.before[list.before.length - 1], list.before.slice(0, -1));
});

function statusCell(x, changed) {
  const notes = [];
  if (x.status === "PAUSED" && x.pausedBeforeWave != null) notes.push(`before wave ${text(x.pausedBeforeWave)}`);
  if (x.cancelRequestedAt != null && x.status !== "CANCELLED") notes.push("cancel requested");
  return el("td", { "data-field": "status", class: changed ? "changed" : null }, badge(x.status),
    notes.length ? el("span", { class: "status-note" }, ` ${notes.join(", ")}`) : null);
}

function renderList(body, raw) {
  const executions = Array.isArray(body && body.executions) ? body.executions : [];
  list.next = (body && body.nextPageToken) || null;
  nextButton.disabled = !list.next;
  prevButton.disabled = list.before.length === 0;
  pageLabel.textContent = `Page ${list.before.length + 1}`;
  listBody.removeAttribute("aria-busy");
  if (raw === list.shown) return; // unchanged: keep the DOM (and the focus) as it is

  const old = list.statuses;
  const rows = executions.map((x) => {
    const id = text(x.executionId);
    const was = old ? old.get(id) : undefined;
    const added = old != null && was === undefined;
    const mode = x.isDrill == null ? "" : x.isDrill ? "Drill" : "Recovery";
    return el("tr", { class: added ? "execution added" : "execution", "data-execution": id, "data-status": text(x.status) },
      el("td", { "data-field": "name" },
        el("a", { class: "execution-link", href: pageHref({ execution: id }) }, text(x.name) || "Unnamed execution"),
        el("span", { class: "id" }, el("code", {}, id))),
      el("td", { "data-field": "type" }, mode),
      statusCell(x, was !== undefined && was !== text(x.status)),
      el("td", { "data-field": "waveCount" }, text(x.waveCount)),
      el("td", { "data-field": "createdAt" }, timeEl(x.createdAt)),
      el("td", { "data-field": "endTime" }, timeEl(x.endTime)));
  });

  const which = list.status ? `${list.status} executions` : "Executions";
  listBody.replaceChildren(rows.length === 0
    ? el("p", { id: "executions-empty", class: "empty-note" }, list.before.length
      ? `No more ${which.toLowerCase()}.`
      : `No ${list.status ? which : "executions"} yet (a new one can take a few seconds to appear).`)
    : el("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-labelledby": "executions-caption" },
      el("table", { id: "executions" },
        el("caption", { id: "executions-caption" },
          `${which}, newest first — page ${list.before.length + 1} (${rows.length})`),
        el("thead", {}, el("tr", {}, ...LIST_COLUMNS.map(([, label]) => el("th", { scope: "col" }, label)))),
        el("tbody", {}, ...rows))));

  list.shown = raw;
  list.statuses = new Map(executions.map((x) => [text(x.executionId), text(x.status)]));
  renders += 1;
  app.dataset.renders = String(renders);
}

async function pollList(controller, current) {
  let delay = interval;
  const timer = setTimeout(() => controller.abort(), Math.max(10000, 5 * interval));
  try {
    const query = listQuery();
    const res = await fetch(`/executions${query ? `?${query}` : ""}`, {
      headers: list.etag ? { "If-None-Match": list.etag } : {}, cache: "no-store", signal: controller.signal,
    });
    if (res.status === 200) {
      const raw = await res.text();
      if (!current()) return null;
      renderList(JSON.parse(raw), raw);
      list.etag = res.headers.get("ETag");
      setNotice("");
      setPollState(`Live, every ${secs(interval)}`);
    } else if (res.status === 304) {
      setNotice("");
      setPollState(`Live, every ${secs(interval)} (no change)`);
    } else if (res.status === 400 && list.token) {
      // A page token the API no longer takes: start again from the first page.
      turnPage(null, []);
      setNotice("That page is no longer available; showing the first page.", "info");
      delay = 0;
    } else if (res.status === 400 || res.status === 404) {
      const body = await res.json().catch(() => null);
      if (!current()) return null;
      listBody.removeAttribute("aria-busy");
      listBody.replaceChildren(el("p", { id: "executions-empty", class: "empty-note" }, res.status === 404
        ? "This API does not list executions; open one by its id below."
        : "The list could not be read."));
      setNotice(`${res.status === 404 ? "No execution list" : "Bad request"}: ${text(body && body.message) || `HTTP ${res.status}`}`, "error");
      setPollState("Stopped");
      delay = null;
    } else {
      throw httpError(res);
    }
  } catch (err) {
    if (!current()) return null;
    delay = retryLater(err);
  } finally {
    clearTimeout(timer);
    if (current()) polled();
  }
  return delay;
}

function openForm() {
  const form = el("form", { class: "pick", method: "get", action: "" },
    el("label", { for: "execution-input" }, "Open an execution by id"),
    el("input", { id: "execution-input", name: "execution", type: "text", required: true,
      autocomplete: "off", spellcheck: "false", autocapitalize: "off" }),
    params.has("interval") ? el("input", { type: "hidden", name: "interval", value: params.get("interval") }) : null,
    el("button", { type: "submit" }, "Show status"));
  form.addEventListener("submit", () => {
    form.elements.execution.value = form.elements.execution.value.trim();
  });
  return form;
}

function showList() {
  app.dataset.view = "list";
  changesSection.hidden = true;
  document.title = "Executions — DR status";
  statusFilter.value = list.status;
  const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter executions" },
    el("label", { for: "status-filter" }, "Status"), statusFilter);
  filters.addEventListener("submit", (event) => event.preventDefault());
  doc.replaceChildren(
    summaryShell("Executions",
      el("p", { class: "lede" }, "Every DR execution, newest first. A status here can lag a few seconds behind "
        + "the execution's own page, which is authoritative."), pollLine),
    filters, listBody, el("nav", { class: "pager", "aria-label": "Pages" }, prevButton, pageLabel, nextButton),
    openForm());
  listLoop = pollLoop(pollList);
}

if (executionId) {
  app.dataset.view = "detail";
  doc.replaceChildren(summaryShell("Execution status", el("p", {}, "Id: ", el("code", {}, executionId)), pollLine));
  changesList.replaceChildren(el("li", { class: "none" }, "None yet."));
  pollLoop(pollExecution);
} else {
  showList();
}
