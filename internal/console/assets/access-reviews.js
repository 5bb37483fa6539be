// The access page's reviews: campaigns that freeze who holds which role
// into items, each kept or revoked by its reviewer with a reason before
// the deadline; starting one, deciding the items that are the signed-in
// person's to decide, and exporting a campaign as evidence.

import { api, el, fill, table, can, readOnly, when, message, download } from "./lib.js";
import { facts, field, select, checks, checked, form, button, status, value, me, people, who, roles, day } from "./access-parts.js";

const enc = encodeURIComponent;

function campaignRow(c) {
  return [el("a", { href: "#access/review/" + enc(c.id), text: c.name, dataset: { review: c.id } }),
    [c.status, "access-" + c.status], c.roles.length ? c.roles.join(", ") : "every role", when(c.started_at),
    when(c.deadline), c.decided_count + " of " + c.item_count, c.on_deadline];
}

function createForm(dir, rs, load) {
  const users = [["", "the default"], ...[...dir.values()].filter((u) => u.status === "active").map((u) => [u.id, u.email])];
  const scope = checks("Roles to review", "access-review-roles", rs.list.map((r) => r.name), "None ticked reviews every role.");
  const escalate = select("Hand undecided items at the deadline to", "access-review-escalate", users.slice(1));
  escalate.hidden = true;
  const onDeadline = select("At the deadline, undecided items", "access-review-on-deadline",
    [["revoke", "are revoked"], ["escalate", "go to another reviewer for a week"]]);
  onDeadline.querySelector("select").addEventListener("change", (e) => { escalate.hidden = e.target.value !== "escalate"; });
  const fields = [
    field("Name", { id: "access-review-name", autocomplete: "off", placeholder: "e.g. 2026 Q1 access review" }),
    field("Deadline (7 to 180 days away; empty for 14)", { id: "access-review-deadline", type: "date" }),
    users.length > 1 ? select("Reviewer of every item", "access-review-reviewer", users) : null,
    onDeadline, escalate, rs.list.length ? scope : null,
  ];
  return form("access-create-review", "Start an access review", fields, "Start the review", async (line) => {
    const body = { name: value("access-review-name"), on_deadline: value("access-review-on-deadline") };
    if (value("access-review-deadline")) body.deadline = value("access-review-deadline") + "T23:59:59Z";
    if (value("access-review-reviewer")) body.reviewer = value("access-review-reviewer");
    if (body.on_deadline === "escalate") body.escalate_to = value("access-review-escalate");
    if (rs.list.length) body.roles = checked(scope);
    const r = await api("POST", "/api/v1/reviews", body);
    document.getElementById("access-review-name").value = "";
    message(line, "Started " + r.campaign.name + " with " + r.campaign.item_count + " items.");
    await load();
  });
}

export async function reviewsView(box) {
  const list = table("access-reviews", "Access review campaigns", ["Campaign", "Status", "Roles", "Started", "Deadline",
    "Decided", "At the deadline"]);
  const due = el("p", { id: "access-review-due", class: "note" });
  box.append(el("h3", { text: "Access reviews" }), due, list);
  const load = async () => {
    const d = await api("GET", "/api/v1/reviews");
    due.textContent = "The next quarterly review is due " + when(d.next_due) + ".";
    fill(list, d.campaigns.map(campaignRow));
    if (d.campaigns.length === 0) list.tBodies[0].append(el("tr", {}, el("td", { colspan: "7", text: "No campaigns yet." })));
  };
  if (can("reviews.manage") && !readOnly()) {
    const [dir, rs] = await Promise.all([people(), roles()]);
    box.append(createForm(dir, rs, load));
  }
  await load();
  return load;
}

// mayDecide reports whether the signed-in person may decide an item: its
// reviewer or a manager of reviews, never the person it is about.
function mayDecide(c, it) {
  return c.status === "open" && !it.decision && !readOnly() && it.user_id !== me() &&
    (it.reviewer_id === me() || can("reviews.manage"));
}

// mayRevoke reports whether the server would let the signed-in person
// take the role away: a role with privileged permissions needs
// roles.manage now, and the owner role ownership too.
function mayRevoke(it, rs) {
  const r = rs.byName.get(it.role);
  if (it.role === "owner" && !can("tenant.ownership")) return false;
  return !(r && r.privileged.length > 0) || can("roles.manage");
}

function decideCell(c, it, i, rs, line, reload) {
  if (!mayDecide(c, it)) return "";
  const id = "access-decide-reason-" + i;
  const decide = (verdict) => button(verdict === "keep" ? "Keep" : "Revoke", line, async () => {
    const r = await api("POST", "/api/v1/reviews/" + enc(c.id) + "/items/" + enc(it.user_id) + "/" + enc(it.role) +
      "/decision", { decision: verdict, reason: value(id) });
    await reload();
    message(document.getElementById("access-review-status"), (verdict === "keep" ? "Kept " : "Revoked ") +
      it.role + " of " + it.user_email + "; " + r.campaign.decided_count + " of " + r.campaign.item_count + " decided.");
  }, { class: verdict === "revoke" ? "danger" : "", dataset: { [verdict]: it.user_id + "/" + it.role } });
  return el("span", { class: "access-decide" }, field("Reason for " + it.user_email + " as " + it.role,
    { id, autocomplete: "off", maxlength: "500", class: "access-reason" }), decide("keep"),
  mayRevoke(it, rs) ? decide("revoke") : null);
}

export async function reviewView(box, id) {
  const [d, dir, rs] = await Promise.all([api("GET", "/api/v1/reviews/" + enc(id)), people(), roles()]);
  const c = d.campaign;
  const line = status("access-review-status");
  const reload = async () => {
    box.replaceChildren();
    await reviewView(box, id);
  };
  const exp = (format) => button("Export " + format.toUpperCase(), line, () =>
    download("/api/v1/reviews/" + enc(c.id) + "/export?format=" + format, "access-review-" + c.id + "." + format),
  { class: "secondary", id: "access-review-export-" + format });
  const rows = [["Status", c.status], ["Roles", c.roles.length ? c.roles.join(", ") : "every role"],
    ["Started", when(c.started_at) + " by " + who(dir, c.created_by)], ["Deadline", when(c.deadline)],
    ["At the deadline", c.on_deadline + (c.escalate_to ? " to " + who(dir, c.escalate_to) : "")],
    ["Decided", c.decided_count + " of " + c.item_count]];
  if (c.escalated_at) rows.push(["Extended", when(c.escalated_at)]);
  if (c.completed_at) rows.push(["Completed", when(c.completed_at)]);
  const items = table("access-review-items", "Items of " + c.name, ["Person", "Role", "Reviewer", "Decision", "Reason",
    "Decided by", "Decided", "Action"]);
  box.append(el("p", {}, el("a", { href: "#access/reviews", text: "All reviews" })),
    el("h3", { id: "access-review-title", text: c.name, tabindex: "-1" }),
    facts("access-review-facts", rows),
    el("p", {}, exp("csv"), " ", exp("json")), line, items);
  fill(items, d.items.map((it, i) => [it.user_email + (it.user_name ? " (" + it.user_name + ")" : ""), it.role,
    who(dir, it.reviewer_id), [it.decision || "undecided", "access-" + (it.decision || "undecided")], it.reason,
    it.decided_by ? who(dir, it.decided_by) : "", it.decided_at ? day(it.decided_at) : "",
    decideCell(c, it, i, rs, line, reload)]));
}
