#include "agent/control/status_page.h"

namespace strata::control {

namespace {

// Every figure is an element with data-figure="NAME" whose data-value holds
// the raw number (tests and scripts read those; people read the text).
const char kHtml[] = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Strata agent</title>
<style>
  :root { --fg: #1d2430; --muted: #6b7480; --line: #dfe3e8; --ok: #1a7f37; --bad: #c62828; --accent: #2f6fde; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0; background: #f6f7f9; }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 12px 24px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .muted { color: var(--muted); }
  .badge { padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff; background: var(--muted); }
  .badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; padding: 16px 24px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .big { font-size: 32px; font-weight: 600; }
  .bar { height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; min-width: 80px; }
  .bar > div { height: 100%; background: var(--accent); }
  svg { width: 100%; height: 140px; }
  .empty { color: var(--muted); font-style: italic; }
  .error { color: var(--bad); }
  pre { white-space: pre-wrap; margin: 0; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>Strata agent</h1>
  <span class="muted" data-figure="version"></span>
  <span class="muted" data-figure="mount_point"></span>
  <span class="badge" id="health" data-figure="healthy">…</span>
  <span class="muted" id="updated"></span>
</header>
<main>
  <section>
    <h2>Hit ratio</h2>
    <div class="big" data-figure="hit_ratio">…</div>
    <div class="muted">of <span data-figure="bytes_read"></span> read, since the start; the last hour:</div>
    <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="hit ratio over the last hour"></svg>
  </section>
  <section>
    <h2>Cache use</h2>
    <table id="tiers"><thead><tr><th>tier</th><th class="num">used</th><th class="num">capacity</th><th></th><th class="num">block hits</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Bytes by source</h2>
    <table id="sources"><tbody></tbody></table>
  </section>
  <section>
    <h2>Uploads</h2>
    <table><tbody>
      <tr><td>pending files</td><td class="num" data-figure="pending_files"></td></tr>
      <tr><td>pending bytes</td><td class="num" data-figure="pending_bytes"></td></tr>
      <tr><td>oldest pending</td><td class="num" data-figure="oldest_pending_s"></td></tr>
      <tr><td>failing files</td><td class="num" data-figure="failing_files"></td></tr>
      <tr><td>uploaded</td><td class="num" data-figure="uploaded_bytes"></td></tr>
    </tbody></table>
  </section>
  <section>
    <h2>Cluster</h2>
    <table id="members"><thead><tr><th>member</th><th>address</th><th>state</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Policy schedules</h2>
    <table id="schedules"><thead><tr><th>policy</th><th>schedule</th><th>next run</th><th>last</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Stores</h2>
    <table id="stores"><thead><tr><th>store</th><th>state</th><th class="num">retries</th><th class="num">errors</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recent errors</h2>
    <div id="errors"></div>
  </section>
</main>
<script>
"use strict";
const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function size(n) {
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}
function pct(r) { return (100 * r).toFixed(1) + " %"; }
function figure(name, value, text) {
  for (const el of document.querySelectorAll('[data-figure="' + name + '"]')) {
    el.dataset.value = String(value);
    el.textContent = text === undefined ? String(value) : text;
  }
}
function cell(tr, text, cls, fig, value) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (fig) { td.dataset.figure = fig; td.dataset.value = String(value); }
  tr.appendChild(td);
  return td;
}
function rows(id, list, fill, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (list.length === 0) {
    const tr = body.insertRow();
    const td = cell(tr, emptyText, "empty");
    td.colSpan = 5;
    return;
  }
  for (const item of list) fill(body.insertRow(), item);
}
function chart(history) {
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  for (const y of [0, 0.5, 1]) {
    const l = document.createElementNS(ns, "line");
    l.setAttribute("x1", 0); l.setAttribute("x2", 600);
    l.setAttribute("y1", 130 - 120 * y); l.setAttribute("y2", 130 - 120 * y);
    l.setAttribute("stroke", "#dfe3e8");
    svg.appendChild(l);
  }
  // One step per interval between samples that saw reads: its hit ratio.
  const end = history.length ? history[history.length - 1].unix_ms : Date.now(), span = 3600 * 1000;
  const x = t => (600 * (1 - Math.min(span, end - t) / span)).toFixed(1);
  let d = "", steps = 0;
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1], b = history[i], read = b.bytes_read - a.bytes_read;
    if (read <= 0) continue;
    const ratio = Math.min(1, Math.max(0, (b.bytes_from_cache - a.bytes_from_cache) / read));
    const y = (130 - 120 * ratio).toFixed(1);
    d += "M" + x(a.unix_ms) + "," + y + " L" + x(b.unix_ms) + "," + y + " ";
    steps++;
  }
  svg.dataset.points = String(steps);
  if (steps === 0) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", 300); t.setAttribute("y", 75); t.setAttribute("text-anchor", "middle");
    t.setAttribute("fill", "#6b7480"); t.textContent = "no reads in the last hour";
    svg.appendChild(t);
    return;
  }
  const line = document.createElementNS(ns, "path");
  line.setAttribute("d", d);
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2f6fde"); line.setAttribute("stroke-width", 3);
  svg.appendChild(line);
}
function render(s) {
  figure("version", s.version, "version " + s.version);
  figure("mount_point", s.mount_point);
  const h = document.getElementById("health");
  figure("healthy", s.healthy ? 1 : 0, s.healthy ? "healthy" : "unhealthy");
  h.className = "badge " + (s.healthy ? "ok" : "bad");
  figure("hit_ratio", s.hit_ratio, pct(s.hit_ratio));
  figure("bytes_read", s.bytes_read, size(s.bytes_read));
  chart(s.history);
  rows("tiers", s.tiers, (tr, t) => {
    cell(tr, t.tier);
    cell(tr, size(t.used_bytes), "num", "tier_used_" + t.tier, t.used_bytes);
    cell(tr, size(t.capacity_bytes), "num", "tier_capacity_" + t.tier, t.capacity_bytes);
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (t.capacity_bytes ? 100 * t.used_bytes / t.capacity_bytes : 0).toFixed(1) + "%";
    bar.appendChild(fill);
    cell(tr, "").appendChild(bar);
    cell(tr, String(t.hits), "num", "tier_hits_" + t.tier, t.hits);
  }, "no tier");
  rows("sources", s.sources, (tr, x) => {
    cell(tr, x.source);
    cell(tr, size(x.bytes), "num", "source_" + x.source, x.bytes);
  }, "nothing read yet");
  const u = s.uploads;
  figure("pending_files", u.pending_files);
  figure("pending_bytes", u.pending_bytes, size(u.pending_bytes));
  figure("oldest_pending_s", u.oldest_pending_s, u.oldest_pending_s + " s");
  figure("failing_files", u.failing_files);
  figure("uploaded_bytes", u.uploaded_bytes, size(u.uploaded_bytes));
  rows("members", s.members, (tr, m) => {
    cell(tr, m.name + (m.self ? " (this agent)" : ""), "", "member", m.name);
    cell(tr, m.address);
    cell(tr, m.state, m.state === "alive" ? "" : "error");
  }, s.cluster ? "no members" : "not in a cluster");
  rows("schedules", s.schedules, (tr, j) => {
    cell(tr, j.file);
    cell(tr, j.spec);
    cell(tr, j.next_run, "", "next_run", j.next_run);
    cell(tr, j.last_result || "not run yet", j.last_result === "error" ? "error" : "");
  }, "no schedules");
  rows("stores", s.stores, (tr, x) => {
    cell(tr, x.uri);
    cell(tr, x.online ? "online" : "offline", x.online ? "" : "error");
    cell(tr, String(x.retries), "num");
    cell(tr, String(x.errors), "num");
  }, "no stores");
  const errs = document.getElementById("errors");
  errs.replaceChildren();
  errs.dataset.count = String(s.recent_errors.length);
  if (s.recent_errors.length === 0) {
    const p = document.createElement("div"); p.className = "empty"; p.textContent = "none";
    errs.appendChild(p);
  }
  for (const e of s.recent_errors.slice().reverse()) {
    const p = document.createElement("pre");
    p.className = e.level === "error" ? "error" : "";
    p.textContent = new Date(e.unix_ms).toISOString().replace("T", " ").slice(0, 19) + "  " + e.level + "  " + e.text;
    errs.appendChild(p);
  }
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.body.dataset.loaded = "1";
}
function refresh() {
  fetch("status.json", {cache: "no-store"}).then(r => r.json()).then(render).catch(e => {
    document.getElementById("health").className = "badge bad";
    document.getElementById("health").textContent = "no answer";
  });
}
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
)HTML";

}  // namespace

const std::string& StatusPageHtml() {
  static const std::string html(kHtml);
  return html;
}

void StatusHistory::Add(const Sample& s) {
  std::lock_guard<std::mutex> l(mu_);
  if (!samples_.empty() && s.unix_ms - samples_.back().unix_ms < kEveryMs) return;
  samples_.push_back(s);
  while (!samples_.empty() && s.unix_ms - samples_.front().unix_ms > kKeepMs) samples_.pop_front();
}

std::vector<StatusHistory::Sample> StatusHistory::Samples() {
  std::lock_guard<std::mutex> l(mu_);
  return std::vector<Sample>(samples_.begin(), samples_.end());
}

std::string RedactPaths(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '/') {
      out += text[i++];
      continue;
    }
    out += "/\xE2\x80\xA6";  // "/…"
    while (i < text.size() && text[i] != ' ' && text[i] != '\'' && text[i] != '"' && text[i] != ',' && text[i] != ')')
      i++;
  }
  return out;
}

}  // namespace strata::control
