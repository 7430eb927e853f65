// The dashboard's pages: each subscribes to its view's server-sent events
// (/api/events?view=...) and redraws from the JSON it gets. No library, no
// network but this server; text goes in with textContent, never as HTML.
"use strict";

const page = document.body.dataset.page;
const main = document.getElementById("main");
const live = document.getElementById("live");
const SVGNS = "http://www.w3.org/2000/svg";

// -- helpers -------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function human(bytes) {
  if (bytes === null || bytes === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
}

function clock(t) {
  const d = t === undefined ? new Date() : new Date(t * 1000);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function seconds(x) {
  if (x === null || x === undefined) return "-";
  return x < 1 ? `${(x * 1000).toFixed(0)} ms` : `${x.toFixed(2)} s`;
}

function fmtRes(res) {
  return Object.entries(res || {}).map(([k, v]) => `${k} ${+v.toFixed(2)}`).join(", ") || "-";
}

function table(id, columns, rows, rowAttrs) {
  const head = h("tr", {}, columns.map(c => h("th", { class: c.num ? "num" : "" }, c.title)));
  const body = rows.map(r => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map(c => {
    const v = c.get(r);
    return h("td", { class: (c.num ? "num " : "") + (c.mono ? "mono" : "") }, v);
  })));
  return h("table", { id }, h("thead", {}, head), h("tbody", {}, body));
}

function empty(text) { return h("p", { class: "muted" }, text); }

function section(title, count, ...content) {
  return [h("h2", {}, title, count === null ? "" : h("span", { class: "count" }, ` (${count})`)), ...content];
}

let sources = {};
function subscribe(key, url, render) {
  if (sources[key]) sources[key].close();
  const es = new EventSource(url);
  sources[key] = es;
  es.onopen = () => { live.textContent = "live"; live.className = "live ok"; };
  es.addEventListener("update", e => {
    render(JSON.parse(e.data));
    live.textContent = "live · changed " + clock();
    live.className = "live ok";
  });
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live err"; };
}

// -- cluster ---------------------------------------------------------------------
function resourceCell(total, available) {
  const used = (total.CPU || 0) - (available.CPU || 0);
  const cpu = total.CPU === undefined ? null : h("div", { class: "res" },
    `CPU ${+used.toFixed(2)} / ${+total.CPU.toFixed(2)} used`,
    h("div", { class: "bar" }, h("span", { class: "used", style: `width:${total.CPU ? 100 * used / total.CPU : 0}%` })));
  const others = Object.keys(total).filter(k => k !== "CPU").map(k =>
    h("div", { class: "muted" }, `${k} ${+((total[k] || 0) - (available[k] || 0)).toFixed(2)} / ${+total[k].toFixed(2)} used`));
  return [cpu, ...others];
}

function renderCluster(d) {
  const alive = d.nodes.filter(n => n.alive);
  const cpuTotal = alive.reduce((a, n) => a + (n.total.CPU || 0), 0);
  const cpuFree = alive.reduce((a, n) => a + (n.available.CPU || 0), 0);
  const pending = d.demand.pending.reduce((a, r) => a + r.tasks, 0);
  const infeasible = d.demand.infeasible.reduce((a, r) => a + r.tasks, 0);
  const card = (k, v, bad) => h("div", { class: "card" + (bad ? " bad" : "") }, h("div", { class: "v" }, v), h("div", { class: "k" }, k));
  main.replaceChildren(
    h("div", { class: "cards" },
      card("nodes alive", `${alive.length} / ${d.nodes.length}`, alive.length < d.nodes.length),
      card("workers", d.workers.filter(w => w.alive).length),
      card("CPUs used", `${+(cpuTotal - cpuFree).toFixed(2)} / ${+cpuTotal.toFixed(2)}`),
      card("leases", d.leases.length),
      card("tasks waiting", pending),
      card("infeasible tasks", infeasible, infeasible > 0)),
    ...section("Nodes", d.nodes.length, table("nodes", [
      { title: "node", get: n => n.address, mono: true },
      { title: "state", get: n => h("span", { class: "tag " + (n.alive ? "good" : "bad") }, n.alive ? "alive" : "dead") },
      { title: "resources", get: n => resourceCell(n.total, n.available) },
      { title: "workers", get: n => n.workers, num: true },
      { title: "leases", get: n => n.leases, num: true },
      { title: "lease requests queued", get: n => n.queued_requests, num: true },
      { title: "stored objects", get: n => `${n.objects} (${human(n.object_bytes)})`, num: true },
      { title: "pid", get: n => n.pid ?? "-", num: true },
    ], d.nodes, n => ({ class: n.alive ? "" : "dead", "data-node": n.address }))),
    ...section("Workers", d.workers.length, table("workers", [
      { title: "worker", get: w => w.address, mono: true },
      { title: "node", get: w => w.node ?? "-", mono: true },
      { title: "pid", get: w => w.pid ?? "-", num: true },
      { title: "role", get: w => w.role },
      { title: "state", get: w => w.state },
      { title: "lease", get: w => w.lease ?? "-", mono: true },
      { title: "running", get: w => w.running.join(", ") || "-" },
      { title: "queued", get: w => w.queued, num: true },
      { title: "objects owned", get: w => w.owned, num: true },
      { title: "refs borrowed", get: w => w.borrowed, num: true },
    ], d.workers, w => ({ class: w.alive ? "" : "dead", "data-worker": w.address }))),
    ...section("Leases", d.leases.length, d.leases.length ? table("leases", [
      { title: "lease", get: l => l.lease, mono: true },
      { title: "node", get: l => l.node, mono: true },
      { title: "owner", get: l => l.owner, mono: true },
      { title: "worker", get: l => l.worker, mono: true },
      { title: "resources", get: l => fmtRes(l.resources) },
      { title: "actor", get: l => l.actor ? "yes" : "" },
      { title: "lent (blocked in get)", get: l => l.blocked ? "yes" : "" },
    ], d.leases) : empty("No lease granted now.")),
    ...section("Pending demand", pending, d.demand.pending.length ? table("demand", [
      { title: "function", get: r => r.function },
      { title: "resources", get: r => fmtRes(r.resources) },
      { title: "tasks waiting", get: r => r.tasks, num: true },
    ], d.demand.pending) : empty(`No task waiting for a worker (${d.demand.lease_requests} lease requests out, ${d.demand.queued_at_owners} tasks queued at their owners).`)),
    ...section("Infeasible tasks", infeasible, d.demand.infeasible.length ? table("infeasible", [
      { title: "function", get: r => r.function },
      { title: "resources asked", get: r => fmtRes(r.resources) },
      { title: "tasks", get: r => r.tasks, num: true },
    ], d.demand.infeasible) : empty("Every waiting task fits some live node.")),
  );
}

// -- tasks -----------------------------------------------------------------------
const openTracebacks = new Set();

function progress(f) {
  const total = Math.max(1, f.submitted);
  const seg = k => h("span", { class: k, style: `width:${100 * f[k] / total}%`, title: `${f[k]} ${k}` });
  return h("div", { class: "bar", "data-function": f.function }, seg("finished"), seg("failed"), seg("running"), seg("pending"));
}

function renderTasks(d) {
  const t = d.totals;
  const failed = d.failed.map(f => {
    const det = h("details", { class: "failed", "data-task": f.task_id, open: openTracebacks.has(f.task_id) },
      h("summary", {}, h("b", {}, f.function), ` · ${f.type || f.kind}: ${f.message}`,
        h("span", { class: "muted" }, ` · task ${f.task_id} · ${f.worker || "no worker"} · attempt ${f.attempts} · ${f.time ? clock(f.time) : ""}`)),
      f.traceback ? h("pre", { class: "traceback" }, f.traceback) : h("p", { class: "muted" }, `No traceback: the task failed with ${f.kind}.`));
    det.addEventListener("toggle", () => det.open ? openTracebacks.add(f.task_id) : openTracebacks.delete(f.task_id));
    return det;
  });
  main.replaceChildren(
    h("p", { id: "task-totals" },
      `${t.submitted} submitted · ${t.pending} pending · ${t.running} running · ${t.finished} finished · ${t.failed} failed · ${t.retried} run again`),
    h("div", { class: "legend" }, ["finished", "failed", "running", "pending"].map(k =>
      h("span", {}, h("i", { style: `background: var(--${{ finished: "ok", failed: "fail", running: "run", pending: "pend" }[k]})` }), k))),
    ...section("By function", d.functions.length, d.functions.length ? table("functions", [
      { title: "function", get: f => f.function, mono: true },
      { title: "progress", get: f => progress(f) },
      { title: "submitted", get: f => f.submitted, num: true },
      { title: "pending", get: f => f.pending, num: true },
      { title: "running", get: f => f.running, num: true },
      { title: "finished", get: f => f.finished, num: true },
      { title: "failed", get: f => f.failed, num: true },
      { title: "run again", get: f => f.retried, num: true },
    ], d.functions, f => ({ "data-function": f.function })) : empty("No task submitted yet.")),
    ...section("Failed tasks", d.failed.length, h("div", { id: "failed-tasks" }, failed.length ? failed : empty("No task failed."))),
  );
}

// -- task stream ---------------------------------------------------------------------
const PALETTE = ["#4c6ef5", "#12b886", "#fab005", "#be4bdb", "#fd7e14", "#15aabf", "#82c91e", "#e64980", "#7950f2", "#40c057", "#228be6", "#f76707"];
// "fit": the last 5 minutes, drawn from the first bar to the last; else a
// window that ends now.
let streamWindow = "fit";

function colorOf(functions, name) { return PALETTE[Math.max(0, functions.indexOf(name)) % PALETTE.length]; }

function renderStream(d) {
  const width = Math.max(600, main.clientWidth - 70);  // main's and the panel's padding
  const label = 250, lane = 22, top = 24;
  const rows = d.workers;
  const rowOf = new Map(rows.map((w, i) => [w.address, i]));
  let t0 = d.since, t1 = Math.max(d.now, t0 + 0.001);
  if (streamWindow === "fit" && d.bars.length) {
    t0 = Math.min(...d.bars.map(b => b.start));
    t1 = Math.max(...d.bars.map(b => b.end === null ? d.now : b.end));
    const pad = Math.max(0.005, (t1 - t0) * 0.02);
    t0 -= pad; t1 += pad;
  }
  const x = t => label + (width - label - 10) * (t - t0) / (t1 - t0);
  const height = top + lane * Math.max(1, rows.length) + 10;
  const svg = s("svg", { id: "stream-svg", width, height, viewBox: `0 0 ${width} ${height}` });
  rows.forEach((w, i) => {
    svg.append(s("rect", { class: "lane" + (i % 2 ? " alt" : ""), x: 0, y: top + i * lane, width, height: lane }));
    svg.append(s("text", { x: 4, y: top + i * lane + 15, class: "mono" }, `${w.role === "driver" ? "driver " : ""}${w.address}${w.alive ? "" : ` (${w.ended})`}`));
  });
  const axis = s("g", { class: "axis" });
  const span = t1 - t0, step = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300].find(st => span / st <= 8) || 600;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    if (x(t) < label) continue;
    axis.append(s("line", { x1: x(t), x2: x(t), y1: top - 4, y2: height - 10 }));
    axis.append(s("text", { x: x(t) + 2, y: top - 8 }, clock(t).slice(3, step < 1 ? 12 : 8)));
  }
  svg.append(axis);
  let drawn = 0;
  for (const b of d.bars) {
    const row = rowOf.get(b.worker);
    if (row === undefined) continue;
    const end = b.end === null ? d.now : b.end;
    const x0 = x(Math.max(b.start, t0)), x1 = Math.max(x0 + 1.5, x(end));
    const cls = ["task", b.outcome === "failed" ? "failed" : "", b.outcome === "killed" ? "killed" : "", b.attempt > 1 ? "retry" : ""].join(" ").trim();
    const rect = s("rect", {
      class: cls, x: x0, y: top + row * lane + 3, width: x1 - x0, height: lane - 6,
      fill: colorOf(d.functions, b.function), "data-function": b.function, "data-task": b.task_id, "data-outcome": b.outcome,
    }, s("title", {}, `${b.function} (task ${b.task_id}, attempt ${b.attempt}): ${b.outcome}, ${seconds(end - b.start)}`));
    svg.append(rect);
    drawn++;
  }
  for (const death of d.deaths) {
    if (death.time < t0 || death.time > t1) continue;
    svg.append(s("line", { class: "death", x1: x(death.time), x2: x(death.time), y1: top - 4, y2: height - 10 },
      s("title", {}, `${death.kind} died: ${death.address}`)));
  }
  const buttons = ["fit", 10, 60, 300].map(w => h("button", {
    class: w === streamWindow ? "on" : "", "data-window": w, onclick: () => { streamWindow = w; start(); },
  }, w === "fit" ? "fit to tasks" : w < 60 ? `last ${w} s` : `last ${w / 60} min`));
  main.replaceChildren(
    h("div", { class: "toolbar" }, "Window:", buttons, h("span", { class: "muted", id: "stream-count" }, `${drawn} task attempts on ${rows.length} workers`)),
    h("div", { class: "legend" }, d.functions.map(f => h("span", {}, h("i", { style: `background:${colorOf(d.functions, f)}` }), f)),
      h("span", {}, h("i", { style: "background:#fff;border:2px solid var(--warn)" }), "retry"),
      h("span", {}, h("i", { style: "background:#fff;border:2px solid var(--fail)" }), "failed"),
      h("span", {}, h("i", { style: "background:#fff;border:2px dashed var(--fail)" }), "killed with its worker")),
    h("div", { class: "panel" }, svg));
}

// -- objects ---------------------------------------------------------------------------
let selected = new URLSearchParams(location.search).get("object");
let lastObjects = null;

function objectsSkeleton() {
  const filter = h("input", { id: "filter", placeholder: "filter: id, owner, node, borrower, status…", oninput: () => lastObjects && renderObjects(lastObjects) });
  main.replaceChildren(h("div", { class: "toolbar" }, filter, h("span", { class: "muted", id: "objects-count" })),
    h("div", { id: "objects-area" }, empty("Asking the workers for their ownership tables…")), h("h2", {}, "Ownership graph"),
    h("div", { id: "graph-area", class: "panel" }, empty("Click an object to draw its owner, borrowers and containers.")));
}

function renderObjects(d) {
  lastObjects = d;
  const filter = document.getElementById("filter");
  const area = document.getElementById("objects-area");
  if (d.loading) { area.replaceChildren(empty("Asking the workers for their ownership tables…")); return; }
  const q = filter.value.trim().toLowerCase();
  const text = r => [r.object_id, r.owner, r.kind, r.status, ...r.stored_at, ...r.locations, ...r.borrowers, ...r.held_by, ...r.contained_in].join(" ").toLowerCase();
  const rows = q ? d.rows.filter(r => text(r).includes(q)) : d.rows;
  document.getElementById("objects-count").textContent = `${rows.length} shown of ${d.total} objects` +
    (d.unanswered && d.unanswered.length ? ` · no answer from ${d.unanswered.join(", ")}` : "");
  area.replaceChildren(table("objects-table", [
    { title: "object", get: r => r.object_id, mono: true },
    { title: "owner", get: r => r.owner_entry ? r.owner : [r.owner, h("span", { class: "tag bad" }, "no entry")], mono: true },
    { title: "kind", get: r => r.kind },
    { title: "status", get: r => r.status ?? "-" },
    { title: "size", get: r => human(r.size), num: true },
    { title: "copies", get: r => (r.stored_at.length ? r.stored_at : r.locations).join(", ") || (r.inline ? "inline at owner" : "-"), mono: true },
    { title: "local refs", get: r => r.local, num: true },
    { title: "task refs", get: r => r.submitted, num: true },
    { title: "contained in", get: r => r.contained_in.join(", ") || "-", mono: true },
    { title: "borrowers", get: r => r.borrowers.join(", ") || "-", mono: true },
    { title: "held by", get: r => r.held_by.join(", ") || "-", mono: true },
  ], rows, r => ({
    class: "selectable" + (r.object_id === selected ? " selected" : ""), "data-object": r.object_id,
    onclick: () => select(r.object_id),
  })));
}

function select(oid) {
  selected = oid;
  const url = new URL(location.href);
  url.searchParams.set("object", oid);
  history.replaceState(null, "", url);
  if (lastObjects) renderObjects(lastObjects);
  subscribe("graph", `/api/events?view=graph&object=${encodeURIComponent(oid)}`, renderGraph);
}

function renderGraph(g) {
  const area = document.getElementById("graph-area");
  if (!area) return;
  if (g.loading) { area.replaceChildren(empty("Loading…")); return; }
  if (!g.found) { area.replaceChildren(empty(`Object ${g.object_id} is in no ownership table now (freed, or its owner died).`)); return; }
  const cols = new Map();
  for (const n of g.nodes) { if (!cols.has(n.depth)) cols.set(n.depth, []); cols.get(n.depth).push(n); }
  const colW = 340, rowH = 46, boxW = 240, boxH = 30;
  const maxRows = Math.max(...[...cols.values()].map(c => c.length));
  const width = colW * cols.size + 20, height = rowH * maxRows + 30;
  const pos = new Map();
  [...cols.keys()].sort((a, b) => a - b).forEach((depth, ci) => {
    const col = cols.get(depth);
    col.forEach((n, ri) => pos.set(n.id, { x: 10 + ci * colW, y: 15 + ri * rowH + (maxRows - col.length) * rowH / 2 }));
  });
  const svg = s("svg", { id: "graph-svg", width, height, viewBox: `0 0 ${width} ${height}` });
  for (const e of g.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const [ax, bx] = a.x < b.x ? [a.x + boxW, b.x] : a.x > b.x ? [a.x, b.x + boxW] : [a.x + boxW / 2, b.x + boxW / 2];
    svg.append(s("line", { class: "edge", x1: ax, y1: a.y + boxH / 2, x2: bx, y2: b.y + boxH / 2, "data-kind": e.kind }));
    svg.append(s("text", { x: (ax + bx) / 2, y: (a.y + b.y) / 2 + boxH / 2 - 5, "text-anchor": "middle", class: "muted" }, e.kind));
  }
  for (const n of g.nodes) {
    const p = pos.get(n.id);
    svg.append(s("g", { class: `gnode ${n.kind}`, "data-node": n.id, "data-kind": n.kind },
      s("rect", { x: p.x, y: p.y, width: boxW, height: boxH }),
      s("text", { x: p.x + 8, y: p.y + 13 }, n.kind),
      s("text", { x: p.x + 8, y: p.y + 25, class: "mono" }, n.label.length > 40 ? "…" + n.label.slice(-39) : n.label),
      s("title", {}, `${n.kind}: ${n.label}`)));
  }
  const info = g.info || {};
  area.replaceChildren(
    h("p", { id: "graph-caption" }, h("b", { class: "mono" }, g.object_id), ` owned by `, h("span", { class: "mono" }, g.owner),
      info.status ? ` · ${info.status}` : "", info.size !== null && info.size !== undefined ? ` · ${human(info.size)}` : "",
      ` · ${g.edges.length} edges`),
    h("div", { class: "legend" }, ["owner", "object", "borrower", "sub-borrower", "container"].map(k =>
      h("span", {}, h("i", { class: k, style: `background:${{ owner: "#d0ebff", object: "#fff3bf", borrower: "#d3f9d8", "sub-borrower": "#e5dbff", container: "#ffe8cc" }[k]};border:1px solid #495057` }), k))),
    svg);
}

// -- failures ---------------------------------------------------------------------------
function renderFailures(d) {
  main.replaceChildren(
    h("p", {}, `${d.deaths.length} deaths detected · ${d.failed_tasks} tasks failed (see `, h("a", { href: "/tasks" }, "Tasks"), ")",
      d.stopped ? h("span", { class: "muted" }, ` · ${d.stopped} workers stopped on purpose (actors no longer referenced, drivers gone) not listed`) : ""),
    ...section("Deaths", d.deaths.length, d.deaths.length ? table("deaths", [
      { title: "time", get: x => clock(x.time) },
      { title: "what", get: x => h("span", { class: "tag bad" }, x.kind) },
      { title: "process", get: x => x.address, mono: true },
      { title: "workers lost", get: x => x.workers.join(", ") || "-", mono: true },
      { title: "detected after", get: x => x.detection === null ? "connection lost" : seconds(x.detection) },
      { title: "tasks resubmitted", get: x => x.retried.map(r => r.function).join(", ") || "-" },
      { title: "objects fate-shared", get: x => x.fate_shared_total ? `${x.fate_shared_total}: ${x.fate_shared.map(f => f.object).slice(0, 5).join(", ")}` : "-", mono: true },
      { title: "objects lost", get: x => x.lost.map(l => l.object).join(", ") || "-", mono: true },
      { title: "run again", get: x => x.recovered.map(r => `${r.function} (${r.kind}, ${r.seconds !== undefined ? "result after " + seconds(r.seconds) : r.failed ? "failed" : "running"})`).join("; ") || "-" },
    ], d.deaths, x => ({ "data-address": x.address })) : empty("No process died.")),
  );
}

// -- wiring -------------------------------------------------------------------------------
function start() {
  if (page === "cluster") subscribe("main", "/api/events?view=cluster", renderCluster);
  else if (page === "tasks") subscribe("main", "/api/events?view=tasks", renderTasks);
  else if (page === "stream") subscribe("main", `/api/events?view=stream&window=${streamWindow === "fit" ? 300 : streamWindow}`, renderStream);
  else if (page === "objects") {
    objectsSkeleton();
    subscribe("main", "/api/events?view=objects", renderObjects);
    if (selected) select(selected);
  } else if (page === "failures") subscribe("main", "/api/events?view=failures", renderFailures);
}

start();
