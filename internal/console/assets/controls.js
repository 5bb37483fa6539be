// The controls page: every control of the tenant with its status, and a
// detail panel per control with its findings, remediation and history.

import { $, api, el, fill, table, show, live, auditPeriod } from "./lib.js";

let built = false;

function periodQuery(sep) {
  const p = auditPeriod();
  return p ? sep + "from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to) : "";
}

function build(sec) {
  sec.replaceChildren(
    el("h2", { id: "controls-title", text: "Controls" }),
    el("p", {}, el("button", { id: "refresh-controls", type: "button", text: "Refresh", onclick: () => list() })),
    table("control-list", "Controls", ["Control", "Owner", "Frequency", "Status", "Findings"]),
    el("div", { id: "control-detail", hidden: true },
      el("h3", { id: "detail-title", tabindex: "-1" }),
      el("p", { id: "detail-description" }),
      el("p", {}, "Status: ", el("span", { id: "detail-status" }), "; effectiveness over the period: ",
        el("span", { id: "detail-effectiveness" })),
      el("p", { id: "detail-remediation" }),
      el("h4", { text: "Findings of the latest run" }),
      el("ul", { id: "detail-findings" }),
      el("h4", { text: "History" }),
      table("detail-history", "History of the control", ["Checked at", "Status", "Findings", "SHA-256"]),
    ),
    el("p", { id: "controls-error", class: "error", role: "alert" }),
  );
  built = true;
}

async function list() {
  $("controls-error").textContent = "";
  const d = await api("GET", "/api/v1/compliance/controls" + periodQuery("?"));
  fill($("control-list"), d.controls.map((c) => [
    el("button", { type: "button", class: "link", dataset: { control: c.id }, text: c.id + " " + c.name,
      onclick: () => { location.hash = "#controls/" + encodeURIComponent(c.id); } }),
    c.owner, c.frequency, [c.status + (c.excepted ? " (excepted)" : ""), c.status],
    String(c.latest ? c.latest.findings.length : 0),
  ]));
}

let current = "";

async function detail(id) {
  current = id;
  const c = await api("GET", "/api/v1/compliance/controls/" + encodeURIComponent(id) + "?limit=20" + periodQuery("&"));
  $("detail-title").textContent = c.id + " " + c.name;
  $("detail-description").textContent = c.description;
  $("detail-status").textContent = c.status;
  $("detail-status").className = c.status;
  $("detail-effectiveness").textContent =
    c.effectiveness == null ? "no runs" : (100 * c.effectiveness).toFixed(1) + "% of " + c.runs + " runs";
  const latest = (c.history || [])[0];
  $("detail-remediation").textContent = latest && latest.remediation ? "What to do: " + latest.remediation : "";
  $("detail-findings").replaceChildren(...((latest && latest.findings) || []).map((f) =>
    el("li", { text: f.resource + ": " + f.problem })));
  fill($("detail-history"), (c.history || []).map((h) => [h.checked_at, [h.status, h.status], String(h.findings.length), h.sha256]));
  show("control-detail", true);
  return c;
}

// A change notice refreshes the list, and the open control, when on show.
live.addEventListener("change", () => {
  if (!built || $("controls").hidden) return;
  list().catch((err) => { $("controls-error").textContent = err.message; });
  if (current) detail(current).catch(() => {});
});

export default {
  id: "controls",
  title: "Controls",
  needs: ["compliance.read"],
  async show(sec, rest) {
    if (!built) build(sec);
    await list();
    if (rest) {
      await detail(decodeURIComponent(rest));
    } else {
      current = "";
      show("control-detail", false);
    }
  },
};
