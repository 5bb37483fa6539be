// The access page's elevations: privileged permissions are held only for
// a while, after another person approves. Anyone whose roles carry some
// asks here; approvers see every request and decide those of others;
// the requester activates an approved one with a fresh code, and the page
// reloads holding the permissions.

import { api, el, fill, table, can, readOnly, session, when, message } from "./lib.js";
import { field, checks, checked, form, button, status, value, me, eligible, people, who } from "./access-parts.js";

const enc = encodeURIComponent;

// privileged are the permissions people hold only while elevated
// (internal/access/people.go).
const privileged = ["users.manage", "roles.manage", "apikeys.manage", "audit.retention.manage", "privacy.erase",
  "audit.export", "tenant.settings.manage", "tenants.manage", "tenant.ownership"];

function requestForm(reload) {
  const perms = checks("Permissions", "access-elevate-perms", session.me.elevatable,
    "Tick those you need; none ticked asks for all of them.");
  const fields = [
    perms,
    field("Reason", { id: "access-elevate-reason", autocomplete: "off", maxlength: "500", required: true,
      placeholder: "e.g. onboarding a new engineer" }),
    field("Minutes (1 to 240)", { id: "access-elevate-minutes", type: "number", min: "1", max: "240", value: "60" }),
  ];
  return form("access-elevate", "Request an elevation", fields, "Request", async (line) => {
    const minutes = Number(value("access-elevate-minutes"));
    const r = await api("POST", "/api/v1/elevations", {
      permissions: checked(perms), reason: value("access-elevate-reason"), minutes: minutes || undefined,
    });
    document.getElementById("access-elevate-reason").value = "";
    message(line, "Requested " + r.permissions.join(", ") + " for " + r.minutes +
      " minutes: it waits for another person's approval.");
    await reload();
  });
}

// mayApprove reports whether the signed-in person may approve el: not
// their own, pending, not decided by them yet, and every permission one
// they could hold themselves (nobody grants what they could not hold).
function mayApprove(el) {
  return can("elevation.approve") && !readOnly() && el.user_id !== me() && el.status === "pending" &&
    !el.approvers.includes(me()) && el.permissions.every(eligible);
}

function activateForm(id, line) {
  return form("access-activate", "Activate the approved elevation", [
    field("Code from your authenticator app", { id: "access-activate-code", inputmode: "numeric",
      autocomplete: "one-time-code", required: true }),
  ], "Activate", async (own) => {
    await api("POST", "/api/v1/elevations/" + enc(id) + "/activate", { code: value("access-activate-code") });
    message(own, "Activated: reloading with the permissions.");
    message(line, "");
    // The session now holds more: every page and button reads it afresh.
    location.reload();
  });
}

export default async function elevationsView(box) {
  const line = status("access-elevations-status");
  const list = table("access-elevations", "Elevations", ["Requested", "Person", "Permissions", "Reason", "Minutes",
    "Approved by", "Status", "Action"]);
  const activation = el("div", { id: "access-activation" });
  const dir = await people();

  box.append(el("h3", { text: "Elevations" }));
  if (session.me.elevated_until) {
    const held = session.me.permissions.filter((p) => privileged.includes(p));
    box.append(el("p", { id: "access-elevated", class: "access-notice" },
      "You are elevated until " + when(session.me.elevated_until) + ", holding " + held.join(", ") + "."));
  }
  const load = async () => {
    const d = await api("GET", "/api/v1/elevations");
    const rows = d.elevations;
    fill(list, rows.map((x) => [
      el("span", { dataset: { elevation: x.id }, text: when(x.requested_at) }),
      who(dir, x.user_id), x.permissions.join(", "), x.reason, String(x.minutes),
      approvals(dir, x), [x.status + (x.expires_at && x.status === "active"
        ? " until " + when(x.expires_at) : ""), "access-" + x.status],
      actions(x, line, load, activation),
    ]));
    if (rows.length === 0) list.tBodies[0].append(el("tr", {}, el("td", { colspan: "8", text: "No elevations." })));
  };
  const elevatable = (session.me.elevatable || []).length > 0 && !readOnly();
  if (elevatable) box.append(requestForm(load));
  box.append(el("h4", { text: can("elevation.approve") ? "Requests of the tenant" : "Your requests" }), list, line,
    activation, button("Refresh", line, load, { id: "access-elevations-refresh", class: "secondary" }));
  if (!elevatable && !can("elevation.approve")) {
    box.append(el("p", { class: "note", text: "No role of yours carries a permission held only while elevated." }));
  }
  await load();
  return load;
}

// approvals names who approved and, while pending, how many approvals
// the request still needs.
function approvals(dir, x) {
  const names = x.approvers.map((a) => who(dir, a)).join(", ");
  const left = x.approvals_needed - x.approvers.length;
  if (x.status !== "pending" || left <= 0) return names;
  return (names ? names + "; " : "") + "needs " + left + " more";
}

function actions(x, line, load, activation) {
  const out = el("span", { class: "access-actions" });
  const decide = (verb, done) => button(verb[0].toUpperCase() + verb.slice(1), line, async () => {
    await api("POST", "/api/v1/elevations/" + enc(x.id) + "/" + verb);
    message(line, done);
    await load();
  }, { dataset: { [verb]: x.id }, class: verb === "deny" ? "danger" : "" });
  if (mayApprove(x)) out.append(decide("approve", "Approved."));
  if (can("elevation.approve") && !readOnly() && x.user_id !== me() && x.status === "pending" &&
    !x.approvers.includes(me())) {
    out.append(decide("deny", "Denied."));
  }
  if (x.user_id === me() && x.status === "approved" && !readOnly()) {
    out.append(button("Activate", line, async () => {
      activation.replaceChildren(activateForm(x.id, line));
      document.getElementById("access-activate-code").focus();
    }, { dataset: { activate: x.id } }));
  }
  return out;
}
