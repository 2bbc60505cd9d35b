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
 *     > td also carry data-label (their column's name: the phone layout shows each row as a card)
 *   #changes (aria-live="polite") > #changes-list > li   changes since the last poll
 *   section#timeline > p#rto-summary                   the execution's RTO against its target, in words
 *     > svg#timeline-svg (built with createElementNS)   the picture: time from the execution's start
 *       > g.timeline-wave[data-wave][data-status] > rect.timeline-bar (the wave's start → end, or now),
 *           text.timeline-label, text.timeline-progress ("<launched>/<total> launched"),
 *           circle.timeline-mark[data-server] (a server's recoveredAt), line.timeline-wave-target
 *       > line.timeline-target (the execution's rtoTargetSeconds), g.timeline-axis
 *   dl.meta dd[data-field=rto]   a wave's rtoSeconds / rtoTargetSeconds, met or not
 * Each detail render builds the execution off-DOM and swaps it into #doc with one replaceChildren call;
 * the timeline alone is redrawn when the window is resized and, while the execution runs, after
 * each poll (its running bars reach "now"), which counts as no render.
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
  ["launchTime", "Launch time"], ["ec2State", "EC2 state"], ["recoveredAt", "Recovered"], ["error", "Error"],
];
// [field, label used in the changes list]; label "" = "<who> A → B"; null = highlight only.
const EXEC_DIFF = [["status", ""], ["name", "name"], ["isDrill", "drill"], ["endTime", "ended"],
  ["updatedAt", null]];
const WAVE_DIFF = [["status", ""], ["name", "name"], ["accountId", "account"], ["region", "Region"],
  ["jobId", "job"], ["startTime", "start"], ["endTime", "end"], ["error", "error"],
  ["accessProblem", "account unreachable"], ["startProblem", "start deferred"], ["startRetryAt", null]];
const SERVER_DIFF = [["hostname", "host"], ["launchStatus", "launch"], ["recoveredInstanceId", "instance"],
  ["instanceType", "type"], ["privateIp", "private IP"], ["launchTime", "launch time"],
  ["ec2State", "EC2 state"], ["recoveredAt", "recovered"], ["error", "error"]];
const TIME_FIELDS = new Set(["createdAt", "updatedAt", "startTime", "endTime", "launchTime", "recoveredAt"]);
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

// ---------- the RTO timeline: a picture of the waves and servers against the target ----------

const SVG_NS = "http://www.w3.org/2000/svg";
const LAUNCHED_STATES = new Set(["LAUNCHED", "TERMINATED"]);
const TERMINAL_EXECUTION = new Set(["COMPLETED", "PARTIAL", "FAILED", "CANCELLED"]);
// Seconds between the axis's ticks: the smallest that leaves each label room.
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const TL = { left: 8, right: 10, top: 24, row: 48, axis: 30, char: 7.2 };

/** createElementNS in SVG with attributes (null/false skipped) and children (strings become text). */
function svgEl(tag, attrs = {}, ...kids) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v != null && v !== false) node.setAttribute(k, String(v));
  }
  node.append(...kids.filter((kid) => kid != null && kid !== ""));
  return node;
}

const launchedCount = (servers) => servers.filter((s) => LAUNCHED_STATES.has(s.launchStatus)).length;
const progressText = (servers) => `${launchedCount(servers)}/${servers.length} launched`;
const fit = (s, chars) => (s.length > chars ? `${s.slice(0, Math.max(1, chars - 1))}…` : s);

/** 95.3 → "95.3 s", 130 → "2 min 10 s", 5400 → "1 h 30 min". */
function fmtDur(seconds) {
  if (seconds == null || !Number.isFinite(Number(seconds))) return "";
  const s = Math.max(0, Number(seconds));
  if (s < 120) return `${+s.toFixed(1)} s`;
  const minutes = Math.floor(s / 60);
  const rest = Math.round(s - minutes * 60);
  if (minutes < 120) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/** "52.5 s / target 2 min: met" for a figure (rtoSeconds, rtoTargetSeconds, rtoMet). */
function rtoText(x) {
  const parts = [];
  if (x.rtoSeconds != null) parts.push(fmtDur(x.rtoSeconds));
  if (x.rtoTargetSeconds != null) parts.push(`target ${fmtDur(x.rtoTargetSeconds)}`);
  const verdict = x.rtoMet === true ? "met" : x.rtoMet === false ? "not met" : "";
  return parts.join(" / ") + (verdict ? `: ${verdict}` : "");
}

/** The width the timeline's drawing gets: its section's content box (or, before it is in the
 *  page, the app's content box less the section's padding and border). */
function timelineWidth() {
  const box = document.getElementById("timeline");
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  let width;
  if (box && box.clientWidth) {
    const cs = getComputedStyle(box);
    width = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  } else {
    const cs = getComputedStyle(app);
    width = app.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 2 * (rem + 1);
  }
  return Math.max(200, Math.floor(width));
}

/** The execution's RTO in words. */
function rtoSummary(d, now) {
  const target = d.rtoTargetSeconds;
  const finished = TERMINAL_EXECUTION.has(d.status);
  if (d.rtoSeconds != null) {
    const verdict = d.rtoMet === true ? "met" : d.rtoMet === false ? "not met" : "";
    return target == null ? `RTO achieved: ${fmtDur(d.rtoSeconds)} (no target set).`
      : `RTO achieved: ${fmtDur(d.rtoSeconds)} against a target of ${fmtDur(target)}: ${verdict}.`;
  }
  if (finished) {
    return target == null ? "No RTO: no server was recovered." : `RTO target ${fmtDur(target)}: not met (no server recovered).`;
  }
  const sofar = now != null ? `${fmtDur(now)} since recovery was declared` : "running";
  return target == null ? `${sofar}; no RTO target set.` : `RTO target ${fmtDur(target)}; ${sofar}.`;
}

/** The picture: a time axis from the execution's start, a bar per wave from its start to its end
 *  (or now), a mark per server at its recoveredAt, a vertical line at each target. */
function timelineSvg(d, width, nowMs = Date.now()) {
  const t0 = Date.parse(d.createdAt);
  const waves = d.waves || [];
  const finished = TERMINAL_EXECUTION.has(d.status);
  const at = (iso) => {
    const t = iso == null ? Number.NaN : Date.parse(iso);
    return Number.isFinite(t) && Number.isFinite(t0) ? Math.max(0, (t - t0) / 1000) : null;
  };
  const now = finished ? at(d.endTime) : Number.isFinite(t0) ? Math.max(0, (nowMs - t0) / 1000) : null;
  const rows = waves.map((w) => {
    const start = at(w.startTime);
    let end = at(w.endTime);
    if (end == null && start != null) end = finished ? start : Math.max(start, now ?? start);
    return { w, start, end, servers: w.servers || [] };
  });
  const times = [1, now, d.rtoTargetSeconds, ...rows.flatMap((r) => [r.end, r.w.rtoTargetSeconds,
    ...r.servers.map((s) => at(s.recoveredAt))])].filter((t) => t != null && Number.isFinite(Number(t)));
  const span = Math.max(...times.map(Number)) * 1.06;
  const plot = width - TL.left - TL.right;
  const x = (seconds) => TL.left + (Math.min(seconds, span) / span) * plot;
  const axisY = TL.top + rows.length * TL.row + 2;
  const height = axisY + TL.axis;
  const desc = [rtoSummary(d, now), ...rows.map(({ w, servers }) =>
    `Wave ${text(w.waveNumber)} ${text(w.status)}, ${progressText(servers)}${w.rtoSeconds != null ? `, ${fmtDur(w.rtoSeconds)}` : ""}.`)];
  const svg = svgEl("svg", {
    id: "timeline-svg", class: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-labelledby": "timeline-title timeline-desc",
  }, svgEl("desc", { id: "timeline-desc" }, desc.join(" ")));

  // the axis: seconds from the execution's start
  const step = TICK_STEPS.find((s) => span / s <= Math.max(2, Math.floor(plot / 72))) || TICK_STEPS[TICK_STEPS.length - 1];
  const axis = svgEl("g", { class: "timeline-axis" },
    svgEl("line", { x1: TL.left, x2: width - TL.right, y1: axisY, y2: axisY }));
  for (let t = 0; t <= span; t += step) {
    const tx = x(t);
    axis.append(svgEl("line", { class: "tick", x1: tx, x2: tx, y1: TL.top - 4, y2: axisY + 4 }),
      svgEl("text", { x: tx, y: axisY + 18, "text-anchor": t === 0 ? "start" : "middle" }, t === 0 ? "0" : fmtDur(t)));
  }
  svg.append(axis);
  if (d.rtoTargetSeconds != null) { // under the waves' texts, which keep a halo over it
    const tx = x(d.rtoTargetSeconds);
    const words = `target ${fmtDur(d.rtoTargetSeconds)}`;
    const left = tx > width - TL.right - words.length * TL.char;
    svg.append(svgEl("line", { class: "timeline-target", x1: tx, x2: tx, y1: 6, y2: axisY },
      svgEl("title", {}, `RTO target: ${fmtDur(d.rtoTargetSeconds)}`)),
    svgEl("text", { class: "timeline-target-label", x: left ? tx - 4 : tx + 4, y: 15, "text-anchor": left ? "end" : "start" }, words));
  }

  rows.forEach(({ w, start, end, servers }, i) => {
    const top = TL.top + i * TL.row;
    const barY = top + 20;
    const progress = progressText(servers);
    const label = `Wave ${text(w.waveNumber ?? i + 1)}${w.name ? ` · ${text(w.name)}` : ""}`;
    const room = Math.floor((plot - progress.length * TL.char - 12) / TL.char);
    const tone = TONES[w.status] || "other";
    const bar = svgEl("rect", {
      class: `timeline-bar tone-${tone}${start == null ? " not-started" : ""}${w.endTime == null && start != null ? " running" : ""}`,
      x: x(start ?? 0), y: barY, width: start == null ? 0 : Math.max(2, x(end) - x(start)), height: 16, rx: 3,
    }, svgEl("title", {}, `${label}: ${text(w.status)}${start == null ? ", not started" : `, from ${fmtDur(start)}`
      + (w.endTime != null ? ` to ${fmtDur(end)}` : " (running)")}${w.rtoSeconds != null ? `; RTO ${rtoText(w)}` : ""}`));
    const group = svgEl("g", { class: "timeline-wave", "data-wave": text(w.waveNumber), "data-status": text(w.status) },
      svgEl("title", {}, `${label}: ${progress}`),
      svgEl("text", { class: "timeline-label", x: TL.left, y: top + 13 }, fit(label, room)),
      svgEl("text", { class: "timeline-progress", x: width - TL.right, y: top + 13, "text-anchor": "end" }, progress),
      bar);
    if (start == null) {
      group.append(svgEl("text", { class: "timeline-note", x: TL.left + 4, y: barY + 12 },
        w.status === "PENDING" ? "not started" : `${text(w.status).toLowerCase()} before it started`));
    }
    if (w.rtoTargetSeconds != null && w.rtoTargetSeconds !== d.rtoTargetSeconds) {
      const tx = x(w.rtoTargetSeconds);
      group.append(svgEl("line", { class: "timeline-wave-target", x1: tx, x2: tx, y1: barY - 4, y2: barY + 20 },
        svgEl("title", {}, `Wave ${text(w.waveNumber)} RTO target: ${fmtDur(w.rtoTargetSeconds)}`)));
    }
    servers.forEach((s, j) => {
      const when = at(s.recoveredAt);
      if (when == null) return;
      group.append(svgEl("circle", {
        class: `timeline-mark${s.rtoMet === false ? " missed" : ""}`, "data-server": text(s.sourceServerId),
        cx: x(when), cy: barY + 8, r: 4.5,
      }, svgEl("title", {}, `${serverName(s, j)}: recovered ${fmtDur(when)} after the start${s.rtoMet === false ? ", over its target" : ""}`)));
    });
    svg.append(group);
  });

  return svg;
}

function timelineSection(d) {
  const now = TERMINAL_EXECUTION.has(d.status) ? null : Math.max(0, (Date.now() - Date.parse(d.createdAt)) / 1000);
  const swatch = (cls) => el("span", { class: `swatch ${cls}`, "aria-hidden": "true" });
  return el("section", { id: "timeline", class: "timeline", "aria-labelledby": "timeline-title" },
    el("h2", { id: "timeline-title" }, "Recovery timeline"),
    el("p", { id: "rto-summary", class: "rto-summary" }, rtoSummary(d, Number.isFinite(now) ? now : null)),
    timelineSvg(d, timelineWidth()),
    el("ul", { class: "timeline-legend" },
      el("li", {}, swatch("bar"), "wave: its start to its end (or now)"),
      el("li", {}, swatch("mark"), "server launched with its EC2 details"),
      el("li", {}, swatch("missed"), "… over its target"),
      el("li", {}, swatch("target"), "RTO target"),
      (d.waves || []).some((w) => w.rtoTargetSeconds != null && w.rtoTargetSeconds !== d.rtoTargetSeconds)
        ? el("li", {}, swatch("wave-target"), "a wave's own target") : null));
}

/** Redraw the timeline alone (resize; a running execution's bars reaching "now"). */
function redrawTimeline() {
  const old = document.getElementById("timeline-svg");
  if (!old || !prev) return;
  old.replaceWith(timelineSvg(prev, timelineWidth()));
  const summary = document.getElementById("rto-summary");
  const now = TERMINAL_EXECUTION.has(prev.status) ? null : Math.max(0, (Date.now() - Date.parse(prev.createdAt)) / 1000);
  if (summary) summary.textContent = rtoSummary(prev, Number.isFinite(now) ? now : null);
}

let redrawPending = false;
window.addEventListener("resize", () => {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => { redrawPending = false; redrawTimeline(); });
});

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
      for (const [f, label] of SERVER_FIELDS) {
        const v = s[f];
        const content = TIME_FIELDS.has(f) ? timeEl(v) : f === "launchStatus" && v != null ? badge(v) : text(v);
        tr.append(mark(el("td", { "data-field": f, "data-label": label }, content), "s", wk, sk, f));
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
        waveItem(wk, "endTime", "Ended", timeEl(w.endTime)),
        waveItem(wk, "rto", "RTO", rtoText(w))),
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

  doc.replaceChildren(summary, timelineSection(d), waves); // the one atomic swap

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
      if (prev && !TERMINAL_EXECUTION.has(prev.status)) redrawTimeline(); // running bars reach "now"
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
