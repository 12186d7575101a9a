// The imgchkr dashboard: reads /admin/dashboard every few seconds and renders it. Plain DOM,
// no library, nothing fetched from another host. Every text from the server goes in through
// textContent (job errors carry client-given paths), never as HTML.
"use strict";

const REFRESH_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function fill(tbody, rows, columns, empty) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, empty)));
  }
  for (const row of rows) tbody.append(row);
}

const fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hhmm = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const percent = (r) => (r === null || r === undefined ? "–" : fmt.format(r * 100) + " %");
const ms = (v) => (v >= 1000 ? fmt.format(v / 1000) + " s" : fmt.format(v) + " ms");

function errorTexts(errors) {
  const list = el("ul", { class: "errors" });
  for (const [field, texts] of Object.entries(errors || {})) {
    for (const text of texts) list.append(el("li", {}, field === "image" ? text : field + ": " + text));
  }
  return list;
}

// Stacked bars (two series) in a 300 x 120 viewBox, one bar per minute.
function bars(svg, minutes, okKey, badKey) {
  svg.replaceChildren();
  const max = Math.max(1, ...minutes.map((m) => m[okKey] + m[badKey]));
  const w = 300 / minutes.length;
  for (const y of [30, 60, 90]) svg.append(svgEl("line", { x1: 0, x2: 300, y1: y, y2: y, class: "grid" }));
  minutes.forEach((m, i) => {
    const ok = (m[okKey] / max) * 112, bad = (m[badKey] / max) * 112;
    const x = i * w + w * 0.12, bw = w * 0.76;
    const title = svgEl("title", {});
    title.textContent = `${hhmm(m.start)}: ${m[okKey]} ${okKey}, ${m[badKey]} ${badKey}`;
    const g = svgEl("g", {});
    g.append(title);
    if (ok > 0) g.append(svgEl("rect", { x, width: bw, y: 120 - ok, height: ok, class: "ok" }));
    if (bad > 0) g.append(svgEl("rect", { x, width: bw, y: 120 - ok - bad, height: bad, class: "bad" }));
    svg.append(g);
  });
  return max;
}

// The share of jobs that passed, per minute with jobs: a line from 0 % (bottom) to 100 %.
function ratioLine(svg, minutes) {
  svg.replaceChildren();
  for (const y of [6, 60, 114]) svg.append(svgEl("line", { x1: 0, x2: 300, y1: y, y2: y, class: "grid" }));
  const w = 300 / minutes.length;
  const points = [];
  minutes.forEach((m, i) => {
    const n = m.success + m.failed;
    if (n === 0) return;
    const x = i * w + w / 2, y = 114 - (m.success / n) * 108;
    points.push(`${x},${y}`);
    const dot = svgEl("circle", { cx: x, cy: y, r: 2.5, class: "ok" });
    const title = svgEl("title", {});
    title.textContent = `${hhmm(m.start)}: ${percent(m.success / n)} of ${n}`;
    dot.append(title);
    svg.append(dot);
  });
  if (points.length > 1) svg.append(svgEl("polyline", { points: points.join(" "), class: "line" }));
}

function render(d) {
  const engine = $("engine");
  engine.textContent = d.engine.available ? "Engine available" : "Engine unavailable: " + (d.engine.reason || "");
  engine.className = "pill " + (d.engine.available ? "up" : "down");
  $("updated").textContent = clock(d.generatedAt);
  $("updated").setAttribute("datetime", d.generatedAt);

  const alive = d.workers.filter((w) => w.alive).length;
  $("waiting").textContent = d.queue.waiting;
  $("in-flight").textContent = d.queue.inFlight;
  $("workers-alive").textContent = `${alive} / ${d.workers.length}`;
  $("jobs-per-second").textContent = fmt.format(d.totals.jobsPerSecond);
  $("total-success").textContent = d.totals.success;
  $("total-failed").textContent = d.totals.failed;
  $("success-ratio").textContent = percent(d.totals.successRatio);
  $("webhooks-failed").textContent = d.totals.deliveryFailed;

  const jobsMax = bars($("chart-jobs"), d.minutes, "success", "failed");
  $("cap-jobs").textContent = `Jobs finished per minute (scale to ${jobsMax}): ${d.totals.success} succeeded, ${d.totals.failed} failed in 15 minutes`;
  ratioLine($("chart-ratio"), d.minutes);
  $("cap-ratio").textContent = `Success ratio per minute: ${percent(d.totals.successRatio)} over 15 minutes`;
  const hooksMax = bars($("chart-hooks"), d.minutes, "delivered", "deliveryFailed");
  $("cap-hooks").textContent = `Webhook deliveries per minute (scale to ${hooksMax}): ${d.totals.delivered} delivered, ${d.totals.deliveryFailed} failed in 15 minutes`;

  fill($("tenants"), d.queue.tenants.map((t) =>
    el("tr", {}, el("td", {}, t.tenant || "(no tenant)"), el("td", { class: "num" }, t.waiting), el("td", { class: "num" }, t.inFlight))),
    3, "No jobs waiting or in flight.");

  fill($("workers"), d.workers.map((w) =>
    el("tr", {},
      el("td", { class: "mono" }, w.worker),
      el("td", { class: w.alive ? "state-alive" : "state-dead" }, w.alive ? "alive" : "dead"),
      el("td", { class: "num" }, `${fmt.format(w.secondsSinceHeartbeat)} s ago`),
      el("td", { class: "num" }, w.slots === null ? w.held : `${w.held} / ${w.slots}`),
      el("td", { class: "num" }, w.finished))),
    5, "No worker has heartbeated in the last 10 minutes.");

  fill($("hosts"), d.slowestDestinations.map((h) =>
    el("tr", {},
      el("td", { class: "mono" }, h.host),
      el("td", { class: "num" }, ms(h.meanLatencyMs)),
      el("td", { class: "num" }, ms(h.maxLatencyMs)),
      el("td", { class: "num" }, h.deliveries),
      el("td", { class: "num" + (h.failed ? " problem" : "") }, h.failed),
      el("td", { class: "num" }, h.attempts))),
    6, "No webhook delivered in the last 15 minutes.");

  fill($("failures"), d.latestFailures.map((j) =>
    el("tr", {},
      el("td", {}, j.finishedAt ? clock(j.finishedAt) : "–"),
      el("td", {}, j.tenant || "–"),
      el("td", { class: "mono" }, j.id),
      el("td", { class: "mono" }, j.assetPath ? j.assetPath.path : ""),
      el("td", {}, errorTexts(j.errors)))),
    5, "No failed job.");

  $("main").setAttribute("aria-busy", "false");
  document.body.dataset.loaded = "true";
}

async function refresh() {
  try {
    const response = await fetch("/admin/dashboard", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (e) {
    const engine = $("engine");
    engine.textContent = "Cannot read /admin/dashboard: " + e.message;
    engine.className = "pill down";
  }
}

function schedule() {
  clearInterval(timer);
  timer = $("live").checked ? setInterval(refresh, REFRESH_MS) : null;
}

function showJob(job) {
  const fields = [
    ["State", job.state], ["Tenant", job.tenant || "–"],
    ["Asset", `${job.assetPath.location}: ${job.assetPath.path}`],
    ["Created", job.createdAt], ["Started", job.startedAt || "–"], ["Finished", job.finishedAt || "–"],
  ];
  const dl = el("dl", {});
  for (const [k, v] of fields) dl.append(el("dt", {}, k), el("dd", {}, v));
  if (job.errors) dl.append(el("dt", {}, "Errors"), el("dd", {}, errorTexts(job.errors)));
  for (const n of job.notifications || []) {
    dl.append(el("dt", {}, n.event), el("dd", {}, `${n.status} after ${n.attempts} attempt(s)` + (n.error ? ` (${n.error})` : "")));
  }
  return el("article", { class: "job" }, el("h3", { class: "mono" }, job.id), dl);
}

async function search(event) {
  event.preventDefault();
  const out = $("search-result");
  const id = $("search-id").value.trim();
  const tenant = $("search-tenant").value.trim();
  const url = "/admin/jobs/" + encodeURIComponent(id) + (tenant ? "?tenant=" + encodeURIComponent(tenant) : "");
  out.replaceChildren(el("p", {}, "Searching…"));
  try {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json();
    if (response.ok) {
      out.replaceChildren(...body.jobs.map(showJob));
    } else {
      const texts = Object.values(body.errors || {}).flat().join(" ");
      out.replaceChildren(el("p", { class: "problem" }, `${response.status}: ${texts}`));
    }
  } catch (e) {
    out.replaceChildren(el("p", { class: "problem" }, "Search failed: " + e.message));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("live").addEventListener("change", schedule);
  $("search").addEventListener("submit", search);
  refresh();
  schedule();
});
