// The overview: readiness with its trend, each category, the failing
// controls with their owners and the open alerts. It reloads on every
// change notice from the server.

import { $, api, el, fill, table, live, when, auditPeriod, message } from "./lib.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// trendChart draws readiness over time as a line on a 0-100 scale, with
// a text alternative naming the first and last points.
function trendChart(points) {
  const w = 600, h = 160, pad = 28;
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", class: "trend", id: "trend-chart" });
  const title = svg("title");
  chart.append(title);
  for (const v of [0, 50, 100]) {
    const y = h - pad - (v / 100) * (h - 2 * pad);
    chart.append(svg("line", { x1: pad, x2: w - 4, y1: y, y2: y, class: "grid" }));
    const t = svg("text", { x: 2, y: y + 4, class: "axis" });
    t.textContent = String(v);
    chart.append(t);
  }
  if (points.length === 0) {
    title.textContent = "No readiness recorded in the period yet.";
    return chart;
  }
  const t0 = new Date(points[0].at).getTime();
  const t1 = new Date(points[points.length - 1].at).getTime();
  const x = (p) => pad + (t1 === t0 ? (w - pad - 4) : ((new Date(p.at).getTime() - t0) / (t1 - t0)) * (w - pad - 4));
  const y = (p) => h - pad - (p.readiness / 100) * (h - 2 * pad);
  chart.append(svg("polyline", { points: points.map((p) => x(p).toFixed(1) + "," + y(p).toFixed(1)).join(" "), class: "line" }));
  for (const p of points.slice(-1)) chart.append(svg("circle", { cx: x(p), cy: y(p), r: 3, class: "dot" }));
  const first = points[0], last = points[points.length - 1];
  title.textContent = "Readiness from " + first.readiness.toFixed(1) + " on " + when(first.at) + " to " +
    last.readiness.toFixed(1) + " on " + when(last.at) + ", " + points.length + " points.";
  return chart;
}

let built = false;
let stale = false;

function build(sec) {
  sec.replaceChildren(
    el("h2", { id: "overview-title", text: "Readiness" }),
    el("p", { class: "score" }, el("span", { id: "readiness" }), " ", el("span", { class: "unit", text: "of 100" })),
    el("details", {}, el("summary", { text: "How readiness is computed" }), el("p", { id: "formula", class: "formula" })),
    el("h3", { text: "Trend" }),
    el("div", { id: "trend" }),
    el("p", { id: "trend-text", class: "formula" }),
    el("h3", { text: "Categories" }),
    table("categories", "Readiness by category", ["Category", "Readiness", "Status"]),
    el("h3", { text: "Failing controls" }),
    table("failing", "Failing controls", ["Control", "Owner", "What to do"]),
    el("h3", { text: "Open alerts" }),
    table("alerts", "Open alerts", ["Raised", "Control", "Change", "Webhook"]),
    el("p", { id: "alerts-other", class: "note" }),
    el("p", { id: "overview-updated", class: "formula", role: "status" }),
    el("p", { id: "overview-error", class: "error", role: "alert" }),
  );
  built = true;
}

async function render(background) {
  const opt = { background: !!background };
  const period = auditPeriod();
  const q = period ? "?from=" + encodeURIComponent(period.from) + "&to=" + encodeURIComponent(period.to) : "";
  const [d, alerts] = await Promise.all([
    api("GET", "/api/v1/compliance/dashboard" + q, undefined, opt),
    api("GET", "/api/v1/compliance/alerts?status=open", undefined, opt).catch(() => ({ alerts: [] })),
  ]);
  $("readiness").textContent = d.readiness.toFixed(1);
  $("formula").textContent = d.formula;
  const chart = trendChart(d.trend || []);
  $("trend").replaceChildren(chart);
  $("trend-text").textContent = chart.querySelector("title").textContent;
  fill($("categories"), (d.categories || []).map((c) => [c.category, c.readiness.toFixed(1), [c.status, c.status]]), "No category in scope.");
  fill($("failing"), (d.failing || []).map((c) => [
    el("a", { href: "#controls/" + encodeURIComponent(c.id), text: c.id + " " + c.name }),
    c.owner, c.remediation || ""]), "No control is failing.");
  // Alerts are raised for every control; the overview shows those of the
  // controls in scope, and counts the others.
  const inScope = new Set((d.criteria || []).flatMap((c) => c.controls || []));
  const all = alerts.alerts || [];
  const shown = all.filter((a) => inScope.has(a.control));
  const others = all.length - shown.length;
  $("alerts-other").textContent = others === 0 ? "" : others + (others === 1 ? " open alert is" : " open alerts are") +
    " for controls outside the scope: see the Controls page.";
  fill($("alerts"), shown.map((a) => [
    when(a.raised_at), a.control + " " + a.name, a.previous + " → " + a.status, a.webhook.state || "not sent"]), "No open alert.");
  $("overview-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  message($("overview-error"), "", true);
}

// On a notice, the overview reloads if it is on show, and marks itself
// stale otherwise, to reload when next opened.
live.addEventListener("change", () => {
  const sec = $("overview");
  if (!built || sec.hidden) {
    stale = true;
    return;
  }
  render(true).catch((err) => message($("overview-error"), err.message, true));
});

export default {
  id: "overview",
  title: "Overview",
  needs: ["compliance.read"],
  async show(sec) {
    if (!built) build(sec);
    stale = false;
    await render();
  },
};
