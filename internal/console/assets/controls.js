// The controls page: every control of the tenant with its status, and a
// detail panel per control: what it checks, the criteria it supports, its
// findings, remediation and history, the evidence a manual control needs
// and has, and the exceptions asked for it. Those who manage compliance,
// and are no auditor, submit, approve and revoke evidence, request and
// decide exceptions and run the control now. Approval is a second
// person's act, so nobody is offered Approve on what they submitted.

import {
  $, api, el, fill, table, show, live, auditPeriod, readOnly, can, session, when, download, message,
} from "./lib.js";

let built = false;

// current is the id of the control open in the detail; control is its
// detail as the server last answered it.
let current = "";
let control = null;

// periodQuery bounds a query to an auditor's period, for the APIs that
// take from and to.
function periodQuery(sep) {
  const p = auditPeriod();
  return p ? sep + "from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to) : "";
}

// manages reports whether the page offers changes: the person may manage
// compliance and is not an auditor.
function manages() {
  return can("compliance.manage") && !readOnly();
}

function myID() {
  return (session.me && session.me.user && session.me.user.id) || "";
}

// explain is what a refusal says, naming the field at fault.
function explain(err) {
  const f = err.problem && err.problem.field;
  return f && !err.message.startsWith(f) ? f + ": " + err.message : err.message;
}

// markInvalid flags the input of form whose field the server refused.
function markInvalid(form, fields, err) {
  for (const n of form.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  const id = err && err.problem && fields[err.problem.field];
  if (id) $(id).setAttribute("aria-invalid", "true");
}

// names caches who an account id is, as the server answers it.
const names = new Map();

function who(id) {
  if (!id) return Promise.resolve("");
  if (id === myID()) return Promise.resolve("you");
  if (id.startsWith("apikey:")) return Promise.resolve("API key " + id.slice("apikey:".length));
  if (!can("users.read")) return Promise.resolve(id);
  if (!names.has(id)) {
    names.set(id, api("GET", "/api/v1/users/" + encodeURIComponent(id)).then((u) => u.email || u.name || id, () => id));
  }
  return names.get(id);
}

// criteria is the catalog's criteria by id, read once.
let criteria = null;

function criteriaByID() {
  if (!criteria) {
    criteria = api("GET", "/api/v1/compliance/criteria").then((d) => new Map(d.criteria.map((c) => [c.id, c])));
    criteria.catch(() => { criteria = null; });
  }
  return criteria;
}

function labelled(id, text, input) {
  return el("label", { for: id }, text, input);
}

// actionButton is a row's button; label names what it acts on, for
// those who hear the page rather than see the row.
function actionButton(text, onclick, dataset, cls, label) {
  return el("button", { type: "button", class: cls, text, onclick, dataset, "aria-label": label });
}

// evidenceForm is the form that submits a file or a link as evidence.
function evidenceForm() {
  const kind = el("select", { id: "evidence-kind", onchange: () => {
    show("evidence-file-field", kind.value === "file");
    show("evidence-url-field", kind.value === "link");
  } }, el("option", { value: "file", text: "A file" }), el("option", { value: "link", text: "A link" }));
  return el("form", { id: "evidence-form", class: "inline", novalidate: true, "aria-labelledby": "evidence-form-title",
    onsubmit: (e) => { e.preventDefault(); submitEvidence(); } },
  el("h5", { id: "evidence-form-title", text: "Add evidence" }),
  labelled("evidence-kind", "Kind", kind),
  labelled("evidence-title", "Title", el("input", { id: "evidence-title", maxLength: 200 })),
  el("span", { id: "evidence-file-field" }, labelled("evidence-file", "File (at most 10 MiB)",
    el("input", { id: "evidence-file", type: "file" }))),
  el("span", { id: "evidence-url-field", hidden: true }, labelled("evidence-url", "Link (https)",
    el("input", { id: "evidence-url", type: "url", placeholder: "https://" }))),
  labelled("evidence-effective", "Effective from (UTC date)", el("input", { id: "evidence-effective", type: "date" })),
  labelled("evidence-expires", "Expires on (UTC date)", el("input", { id: "evidence-expires", type: "date" })),
  el("button", { id: "evidence-submit", type: "button", text: "Submit evidence", onclick: submitEvidence }),
  el("p", { id: "evidence-message", class: "note", role: "status" }));
}

// exceptionForm is the form that asks to accept a failure's risk.
function exceptionForm() {
  return el("form", { id: "exception-form", class: "inline", novalidate: true, "aria-labelledby": "exception-form-title",
    onsubmit: (e) => { e.preventDefault(); requestException(); } },
  el("h5", { id: "exception-form-title", text: "Request an exception" }),
  labelled("exception-reason", "Reason", el("textarea", { id: "exception-reason", rows: 2, maxLength: 2000 })),
  labelled("exception-compensating", "Compensating control (optional)",
    el("textarea", { id: "exception-compensating", rows: 2, maxLength: 2000 })),
  labelled("exception-starts", "Starts on (UTC date; empty for now)", el("input", { id: "exception-starts", type: "date" })),
  labelled("exception-expires", "Ends on (UTC date)", el("input", { id: "exception-expires", type: "date" })),
  el("button", { id: "exception-submit", type: "button", text: "Request exception", onclick: requestException }),
  el("p", { id: "exception-message", class: "note", role: "status" }));
}

function build(sec) {
  sec.replaceChildren(
    el("h2", { id: "controls-title", text: "Controls" }),
    el("p", {}, el("button", { id: "refresh-controls", type: "button", text: "Refresh", onclick: () => refresh() })),
    el("div", { id: "control-detail", hidden: true },
      el("h3", { id: "detail-title", tabindex: "-1" }),
      el("p", { id: "detail-meta", class: "formula" }),
      el("h4", { text: "What it checks" }),
      el("p", { id: "detail-description" }),
      el("p", {}, "Status: ", el("span", { id: "detail-status" }), "; effectiveness over the period: ",
        el("span", { id: "detail-effectiveness" })),
      el("p", { id: "detail-excepted" }),
      el("p", { id: "detail-run", hidden: true },
        el("button", { id: "run-control", type: "button", text: "Run now", onclick: runNow })),
      el("p", { id: "detail-message", class: "note", role: "status" }),
      el("p", { id: "detail-remediation" }),
      el("h4", { text: "Findings of the latest run" }),
      el("ul", { id: "detail-findings" }),
      el("p", { id: "detail-no-findings", class: "note", text: "None." }),
      el("h4", { text: "Criteria it supports" }),
      el("ul", { id: "detail-criteria" }),
      el("div", { id: "detail-manual", hidden: true },
        el("h4", { text: "Evidence it requires" }),
        el("p", { id: "detail-requirement" }),
        el("p", { id: "detail-max-age", class: "formula" }),
        el("h4", { text: "Evidence" }),
        table("evidence-list", "Evidence of the control",
          ["Evidence", "SHA-256", "Holds", "Submitted", "Standing", "Actions"]),
        el("p", { id: "evidence-none", class: "note", text: "No evidence submitted yet." }),
        evidenceForm()),
      el("h4", { text: "Exceptions" }),
      table("exception-list", "Exceptions of the control",
        ["Reason", "Compensating control", "Period", "Requested", "Standing", "Actions"]),
      el("p", { id: "exception-none", class: "note", text: "No exceptions asked for." }),
      exceptionForm(),
      el("h4", { text: "History" }),
      table("detail-history", "History of the control", ["Checked at", "Status", "Findings", "SHA-256"]),
    ),
    el("h3", { id: "control-list-title", text: "All controls" }),
    table("control-list", "Controls", ["Control", "Owner", "Frequency", "Status", "Findings"]),
    el("p", { id: "controls-error", class: "error", role: "alert" }),
  );
  built = true;
}

// list shows every control. The server bounds an auditor's list to the
// end of their period itself: the route takes no from or to.
async function list() {
  $("controls-error").textContent = "";
  const d = await api("GET", "/api/v1/compliance/controls");
  fill($("control-list"), d.controls.map((c) => [
    el("button", { type: "button", class: "link", dataset: { control: c.id }, text: c.id + " " + c.name,
      onclick: () => { location.hash = "#controls/" + encodeURIComponent(c.id); } }),
    c.owner, c.frequency, [c.status + (c.excepted ? " (excepted)" : ""), c.status],
    String(c.latest ? c.latest.findings.length : 0),
  ]));
}

const stateWords = {
  counting: "counts", pending_approval: "awaiting approval", expired: "expired", revoked: "revoked",
  not_yet_effective: "not yet effective", active: "in force", scheduled: "approved, not yet begun",
};

// standing says where a piece of evidence or an exception stands: its
// state, who revoked it, and who approved it or that it awaits a second
// person.
async function standing(x) {
  const words = stateWords[x.status] || x.status;
  const lines = [x.revoked_at ? words + " by " + (await who(x.revoked_by)) + ", " + when(x.revoked_at) : words];
  if (x.approved_at) lines.push("approved by " + (await who(x.approved_by)) + ", " + when(x.approved_at));
  else if (x.status !== "pending_approval") lines.push("never approved");
  return el("span", { class: "standing" }, el("span", { class: x.status, text: lines[0] }),
    ...lines.slice(1).map((l) => el("span", { text: l })));
}

// revoker is a Revoke button that opens a small form asking why, which
// the revocation needs.
function revoker(kind, id, what) {
  const rid = kind + "-revoke-reason-" + id;
  const box = el("span", { class: "revoke", hidden: true },
    labelled(rid, "Why revoke", el("input", { id: rid, maxLength: 2000 })),
    actionButton("Confirm revoke", () => decide(kind, id, "revoke", { reason: $(rid).value }),
      { confirmRevoke: id }, "danger", "Confirm revoking " + what));
  const open = actionButton("Revoke", () => {
    box.hidden = !box.hidden;
    if (!box.hidden) $(rid).focus();
  }, { revoke: id }, "secondary", "Revoke " + what);
  return [open, box];
}

// decide approves or revokes a piece of evidence or an exception, then
// reads the control again.
async function decide(kind, id, verb, body) {
  const line = $("detail-message");
  message(line, "");
  try {
    await api("POST", "/api/v1/compliance/" + kind + "/" + encodeURIComponent(id) + "/" + verb, body);
    await detail(current);
    message(line, (kind === "evidence" ? "Evidence " : "Exception ") + (verb === "approve" ? "approved." : "revoked."));
  } catch (err) {
    message(line, explain(err), true);
  }
}

function downloadButton(e) {
  return actionButton("Download", async () => {
    try {
      await download("/api/v1/compliance/evidence/" + encodeURIComponent(e.id) + "/content", e.file_name || "evidence");
    } catch (err) {
      message($("detail-message"), explain(err), true);
    }
  }, { download: e.id }, "secondary", "Download " + e.title);
}

function evidenceKind(e) {
  if (e.kind === "file") return "file: " + (e.file_name || "") + " (" + e.size + " bytes, " + (e.media_type || "") + ")";
  if (!/^https:\/\//i.test(e.url || "")) return "link: " + (e.url || "");
  return el("span", {}, "link: ", el("a", { href: e.url, rel: "noopener noreferrer", target: "_blank", text: e.url }));
}

function evidenceActions(e) {
  const open = !e.revoked_at && e.status !== "expired";
  const acts = [];
  if (e.kind === "file") acts.push(downloadButton(e));
  if (manages() && open && !e.approved_at && e.submitted_by !== myID()) {
    acts.push(actionButton("Approve", () => decide("evidence", e.id, "approve"), { approve: e.id }, "",
      "Approve " + e.title));
  }
  if (manages() && open) acts.push(...revoker("evidence", e.id, e.title));
  return el("span", { class: "actions" }, acts);
}

async function evidenceRows(es) {
  return Promise.all(es.map(async (e) => [
    el("span", { class: "standing" }, el("strong", { text: e.title }), el("span", {}, evidenceKind(e))),
    el("code", { text: e.sha256 }), when(e.effective_at) + " to " + when(e.expires_at),
    (await who(e.submitted_by)) + ", " + when(e.submitted_at), await standing(e), evidenceActions(e),
  ]));
}

function exceptionActions(x) {
  const open = !x.revoked_at && x.status !== "expired";
  const acts = [];
  if (manages() && open && !x.approved_at && x.requested_by !== myID()) {
    acts.push(actionButton("Approve", () => decide("exceptions", x.id, "approve"), { approveException: x.id }, "",
      "Approve the exception requested " + when(x.requested_at)));
  }
  if (manages() && open) acts.push(...revoker("exceptions", x.id, "the exception requested " + when(x.requested_at)));
  return el("span", { class: "actions" }, acts);
}

async function exceptionRows(xs) {
  return Promise.all(xs.map(async (x) => [
    x.reason, x.compensating || "", when(x.starts_at) + " to " + when(x.expires_at),
    (await who(x.requested_by)) + ", " + when(x.requested_at), await standing(x), exceptionActions(x),
  ]));
}

async function criteriaItems(ids) {
  const byID = await criteriaByID().catch(() => new Map());
  return ids.map((id) => {
    const cr = byID.get(id);
    return el("li", {}, el("a", { href: "#criteria/" + encodeURIComponent(id), text: id }),
      cr ? " " + cr.summary : "");
  });
}

// utcDate is the UTC calendar date of t as an input's value.
function utcDate(t) {
  return new Date(t).toISOString().slice(0, 10);
}

// dayStart reads a date input as the start of that UTC day, RFC 3339.
function dayStart(v) {
  return v ? v + "T00:00:00Z" : "";
}

// resetForms empties the forms for another control, proposing evidence
// effective today that holds as long as the control allows.
function resetForms(c) {
  for (const id of ["evidence-title", "evidence-url", "evidence-file", "exception-reason", "exception-compensating",
    "exception-starts", "exception-expires"]) $(id).value = "";
  const today = utcDate(Date.now());
  $("evidence-effective").value = today;
  $("evidence-expires").value = c.manual ? utcDate(Date.parse(dayStart(today)) + c.manual.max_age_days * 864e5) : "";
  for (const id of ["evidence-message", "exception-message", "detail-message"]) message($(id), "");
}

// openRevokes notes the revoke boxes open in the detail, with the reason
// typed in each, so that a read of the detail, such as one a change
// notice asks for, does not close them under the person typing.
function openRevokes() {
  return [...document.querySelectorAll("#control-detail .revoke:not([hidden]) input")].map((i) =>
    [i.id, i.value, i === document.activeElement]);
}

// reopen opens again the revoke boxes openRevokes noted, of the items
// that may still be revoked.
function reopen(boxes) {
  for (const [id, text, focused] of boxes) {
    const i = $(id);
    if (!i) continue;
    i.value = text;
    i.closest(".revoke").hidden = false;
    if (focused) i.focus();
  }
}

// reads counts the detail's reads, so that an answer overtaken by a
// later read is dropped.
let reads = 0;

async function detail(id) {
  const path = encodeURIComponent(id);
  const read = ++reads;
  const [c, ev, ex] = await Promise.all([
    api("GET", "/api/v1/compliance/controls/" + path + "?limit=20" + periodQuery("&")),
    api("GET", "/api/v1/compliance/evidence?control=" + path),
    api("GET", "/api/v1/compliance/exceptions?control=" + path),
  ]);
  if (read !== reads) return control;
  const opened = id !== (control && control.id);
  current = id;
  control = c;
  if (opened) resetForms(c);
  $("detail-title").textContent = c.id + " " + c.name;
  $("detail-meta").textContent = "Owner: " + c.owner + " · runs " + c.frequency + (c.manual ? " · judged on evidence people supply" : "");
  $("detail-description").textContent = c.description;
  $("detail-status").textContent = c.status;
  $("detail-status").className = c.status;
  $("detail-effectiveness").textContent =
    c.effectiveness == null ? "no runs" : (100 * c.effectiveness).toFixed(1) + "% of " + c.runs + " runs";
  $("detail-excepted").textContent = c.excepted
    ? "Under an approved exception until " + when(c.excepted.expires_at) + ": " + c.excepted.reason : "";
  show("detail-run", manages());
  const latest = c.latest || (c.history || [])[0];
  $("detail-remediation").textContent = latest && latest.remediation ? "What to do: " + latest.remediation : "";
  const findings = (latest && latest.findings) || [];
  $("detail-findings").replaceChildren(...findings.map((f) => el("li", { text: f.resource + ": " + f.problem })));
  show("detail-no-findings", findings.length === 0);
  $("detail-criteria").replaceChildren(...(await criteriaItems(c.criteria || [])));
  show("detail-manual", !!c.manual);
  const evRows = c.manual ? await evidenceRows(ev.evidence || []) : [];
  const exRows = await exceptionRows(ex.exceptions || []);
  const revoking = openRevokes();
  if (c.manual) {
    $("detail-requirement").textContent = c.manual.requirement;
    $("detail-max-age").textContent = "Each piece of evidence holds for at most " + c.manual.max_age_days +
      " days after its effective date, and counts once a second person approves it.";
    fill($("evidence-list"), evRows);
    show("evidence-none", !(ev.evidence || []).length);
  }
  fill($("exception-list"), exRows);
  show("exception-none", !(ex.exceptions || []).length);
  reopen(revoking);
  show("evidence-form", manages() && !!c.manual);
  show("exception-form", manages());
  fill($("detail-history"), (c.history || []).map((h) => [when(h.checked_at), [h.status, h.status],
    String(h.findings.length), el("code", { text: h.sha256 })]));
  show("control-detail", true);
  if (opened) $("detail-title").focus();
  return c;
}

async function refresh() {
  await list();
  if (current) await detail(current);
}

const evidenceFields = { title: "evidence-title", effective_at: "evidence-effective", expires_at: "evidence-expires",
  file: "evidence-file", url: "evidence-url" };

async function submitEvidence() {
  const form = $("evidence-form"), line = $("evidence-message");
  message(line, "Submitting…");
  const title = $("evidence-title").value, eff = dayStart($("evidence-effective").value);
  const exp = dayStart($("evidence-expires").value);
  let body;
  if ($("evidence-kind").value === "file") {
    body = new FormData();
    body.append("control", control.id);
    body.append("title", title);
    if (eff) body.append("effective_at", eff);
    if (exp) body.append("expires_at", exp);
    const f = $("evidence-file").files[0];
    if (f) body.append("file", f, f.name);
  } else {
    body = { control: control.id, title, url: $("evidence-url").value, effective_at: eff, expires_at: exp };
  }
  try {
    const e = await api("POST", "/api/v1/compliance/evidence", body);
    markInvalid(form, evidenceFields, null);
    $("evidence-title").value = $("evidence-file").value = $("evidence-url").value = "";
    await detail(current);
    message(line, "Submitted " + e.title + " (SHA-256 " + e.sha256 + "): it awaits approval by a second person.");
  } catch (err) {
    markInvalid(form, evidenceFields, err);
    message(line, explain(err), true);
  }
}

const exceptionFields = { reason: "exception-reason", compensating: "exception-compensating",
  starts_at: "exception-starts", expires_at: "exception-expires" };

async function requestException() {
  const form = $("exception-form"), line = $("exception-message");
  message(line, "Requesting…");
  const body = { control: control.id, reason: $("exception-reason").value,
    compensating: $("exception-compensating").value, expires_at: dayStart($("exception-expires").value) };
  if ($("exception-starts").value) body.starts_at = dayStart($("exception-starts").value);
  try {
    await api("POST", "/api/v1/compliance/exceptions", body);
    markInvalid(form, exceptionFields, null);
    for (const id of ["exception-reason", "exception-compensating", "exception-starts", "exception-expires"]) {
      $(id).value = "";
    }
    await detail(current);
    message(line, "Requested: the exception awaits approval by a second person.");
  } catch (err) {
    markInvalid(form, exceptionFields, err);
    message(line, explain(err), true);
  }
}

async function runNow() {
  const line = $("detail-message");
  message(line, "Running " + control.id + "…");
  try {
    const r = await api("POST", "/api/v1/compliance/controls/validate", { controls: [control.id] });
    await refresh();
    const res = (r.results || [])[0];
    message(line, control.id + " ran" + (res ? ": " + res.status : "") + ".");
  } catch (err) {
    message(line, explain(err), true);
  }
}

// A change notice refreshes the list, and the open control, when on show;
// the forms keep what is being typed.
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
      control = null;
      show("control-detail", false);
    }
  },
};
