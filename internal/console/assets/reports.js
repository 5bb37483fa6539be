// The reports page: the SOC 2 report of a period in each format the API
// renders (JSON, HTML, PDF, OSCAL, the signed bundle and the populations
// as CSV), how to verify a bundle offline, and, for those who may export
// it, the audit trail in bulk. Dates are whole days in UTC; an auditor's
// period bounds every request.

import { $, api, el, can, auditPeriod, session, download, message } from "./lib.js";

const DAY = 24 * 60 * 60 * 1000;

// formats are the report's formats: the API's format value, the button's
// text and the file name's ending.
const formats = [
  { format: "pdf", text: "PDF", ext: ".pdf" },
  { format: "html", text: "HTML", ext: ".html" },
  { format: "json", text: "JSON", ext: ".json" },
  { format: "oscal", text: "OSCAL assessment results", ext: ".oscal.json" },
  { format: "zip", text: "Signed bundle (zip)", ext: ".zip" },
];

// populations are the report's populations, each also a CSV.
const populations = ["users_created", "users_terminated", "access_changes", "elevation_grants", "incidents", "changes"];

// exports are the audit trail's export formats and their file endings.
const exports = [
  { format: "bundle", text: "Evidence bundle (zip, verifiable offline)", ext: ".zip" },
  { format: "ndjson", text: "NDJSON", ext: ".ndjson" },
  { format: "ocsf", text: "OCSF (NDJSON)", ext: ".ocsf.ndjson" },
  { format: "csv", text: "CSV", ext: ".csv" },
];

const day = (d) => d.toISOString().slice(0, 10);
const compact = (d) => day(d).replaceAll("-", "");

// period reads the form: from the start of the first day to the end of
// the last, in UTC, kept within an auditor's period. It throws naming the
// field at fault.
function period() {
  const f = $("report-from").value, t = $("report-to").value;
  if (!f) throw fieldError("from", "Choose the first day of the period.");
  if (!t) throw fieldError("to", "Choose the last day of the period.");
  let from = new Date(f + "T00:00:00Z");
  let to = new Date(new Date(t + "T00:00:00Z").getTime() + DAY);
  const p = auditPeriod();
  if (p) {
    const pf = new Date(p.from), pt = new Date(p.to);
    if (from < pf) from = pf;
    if (to > pt) to = pt;
  }
  if (!(from < to)) throw fieldError("to", "The last day must not come before the first.");
  return { from, to };
}

function fieldError(field, text) {
  const e = new Error(text);
  e.field = field;
  return e;
}

function periodQuery(p) {
  return "from=" + encodeURIComponent(p.from.toISOString()) + "&to=" + encodeURIComponent(p.to.toISOString());
}

// fileName is the name a download is saved as: what, the tenant, and
// the period's first and last days.
function fileName(what, p, ext) {
  const tenant = (session.me && session.me.tenant) || "tenant";
  return what + "-" + tenant + "-" + compact(p.from) + "-" + compact(new Date(p.to.getTime() - 1)) + ext;
}

let busy = false;

// fetchFile downloads path as name, showing progress in status and any
// error, the API's detail, in status too; the buttons of group wait.
async function fetchFile(status, group, pathOf, nameOf, progress) {
  if (busy) return;
  let p;
  try {
    p = period();
  } catch (err) {
    message(status, err.message, true);
    if (err.field) $("report-" + err.field).focus();
    return;
  }
  busy = true;
  for (const b of group.querySelectorAll("button")) b.disabled = true;
  message(status, progress, false);
  const name = nameOf(p);
  try {
    await download(pathOf(p), name);
    message(status, "Downloaded " + name + ".", false);
    status.dataset.done = name;
  } catch (err) {
    message(status, err.message, true);
  } finally {
    busy = false;
    for (const b of group.querySelectorAll("button")) b.disabled = false;
  }
}

const generating = "Generating… this can take several seconds.";

function reportButtons() {
  const group = el("div", { id: "report-formats", class: "buttons", role: "group", "aria-label": "Report formats" });
  for (const f of formats) {
    group.append(el("button", { type: "button", id: "report-" + f.format, dataset: { format: f.format },
      text: f.text, onclick: () => fetchFile($("report-status"), $("report-actions"),
        (p) => "/api/v1/compliance/reports/soc2?format=" + f.format + "&" + periodQuery(p),
        (p) => fileName("soc2", p, f.ext), generating) }));
  }
  return group;
}

function populationForm() {
  const pick = el("select", { id: "report-population" },
    populations.map((n) => el("option", { value: n, text: n.replaceAll("_", " ") })));
  return el("div", { class: "buttons" },
    el("label", { for: "report-population", text: "Population" }), pick,
    el("button", { type: "button", id: "report-csv", class: "secondary", text: "Download as CSV",
      onclick: () => fetchFile($("report-status"), $("report-actions"),
        (p) => "/api/v1/compliance/reports/soc2?format=csv&population=" + encodeURIComponent(pick.value) + "&" +
          periodQuery(p),
        (p) => fileName("soc2", p, "-" + pick.value + ".csv"), generating) }));
}

function exportPart() {
  const pick = el("select", { id: "export-format" },
    exports.map((x) => el("option", { value: x.format, text: x.text })));
  const ext = () => exports.find((x) => x.format === pick.value).ext;
  return el("div", { id: "export-part" },
    el("h3", { text: "Export the audit trail" }),
    el("p", { class: "note", text: "Every event the log received in the period, for archiving or another tool. " +
      "The export is itself on record in the trail." }),
    el("div", { id: "export-actions", class: "buttons" },
      el("label", { for: "export-format", text: "Format" }), pick,
      el("button", { type: "button", id: "export-trail", text: "Export",
        onclick: () => fetchFile($("export-status"), $("export-actions"),
          (p) => "/api/v1/compliance/audit-trail/export?format=" + encodeURIComponent(pick.value) + "&" +
            periodQuery(p),
          (p) => fileName("attest-trail", p, ext()), "Exporting… this can take several seconds.") })),
    el("p", { id: "export-status", role: "status" }),
    el("p", { class: "note" }, "Check an evidence bundle offline with ",
      el("code", { text: "attest verify --bundle FILE.zip --public-key KEY --from FROM --to TO" }),
      ", giving the period asked for."));
}

function build(sec) {
  const p = auditPeriod();
  const inputs = [
    el("label", { for: "report-from" }, "First day", el("input", { id: "report-from", type: "date", required: true })),
    el("label", { for: "report-to" }, "Last day", el("input", { id: "report-to", type: "date", required: true })),
  ];
  sec.replaceChildren(
    el("h2", { id: "reports-title", text: "Reports" }),
    el("p", { text: "A SOC 2 report of the period: each criterion in scope with its controls, their results and " +
      "samples of the populations, pinned to a signed checkpoint of the audit log." }),
    el("form", { id: "report-period", class: "inline", "aria-label": "Report period", onsubmit: (e) => e.preventDefault() },
      inputs),
    el("p", { id: "report-period-note", class: "note", text: p
      ? "Your audit period bounds the report: " + day(new Date(p.from)) + " to " +
        day(new Date(new Date(p.to).getTime() - 1)) + " (UTC)."
      : "Whole days in UTC; a period ending today ends now. A report covers at most 366 days." }),
    el("div", { id: "report-actions" },
      el("h3", { text: "SOC 2 report" }),
      reportButtons(),
      populationForm()),
    el("p", { id: "report-status", role: "status" }),
    el("h3", { text: "Verify a bundle offline" }),
    el("p", {}, "Unzip the signed bundle into a directory, then run ",
      el("code", { id: "report-verify", text: "attest report verify --dir DIR --key KEY" }),
      ". It checks the manifest's signature and every file's SHA-256, and that nothing was added."),
    el("p", { id: "report-key-line", class: "note", hidden: true }, "KEY is this organisation's log verifier key: ",
      el("code", { id: "report-key" })),
  );
  if (can("audit.export")) {
    sec.append(exportPart());
  } else if (!p && ((session.me && session.me.elevatable) || []).includes("audit.export")) {
    sec.append(el("p", { id: "export-hint", class: "note", text: "Exporting the audit trail in bulk needs an " +
      "approved elevation to audit.export." }));
  }
  defaults();
}

// defaults fills the period: the last 90 days, or an auditor's period,
// whose bounds the date pickers keep to.
function defaults() {
  const f = $("report-from"), t = $("report-to");
  const p = auditPeriod();
  if (p) {
    const from = new Date(p.from), last = new Date(new Date(p.to).getTime() - 1);
    f.min = t.min = day(from);
    f.max = t.max = day(last);
    f.value = day(from);
    t.value = day(last);
    return;
  }
  const today = new Date();
  f.max = t.max = day(today);
  f.value = day(new Date(today.getTime() - 90 * DAY));
  t.value = day(today);
}

async function showKey() {
  if (!can("audit.log.read")) return;
  try {
    const k = await api("GET", "/api/v1/audit/public-key?format=json");
    $("report-key").textContent = k.verifier_key;
    $("report-key-line").hidden = false;
  } catch (_) {
    // The key is a help, not the page: without it the line stays hidden.
  }
}

let built = false;

export default {
  id: "reports",
  title: "Reports",
  needs: ["compliance.read"],
  async show(sec) {
    // The export part depends on what is held now, which an elevation
    // changes: build afresh each time.
    if (!built || !!$("export-part") !== can("audit.export")) {
      build(sec);
      built = true;
      await showKey();
    }
  },
};
