// The access page's users: the list with each account's status, roles,
// second factor and last sign-in; creating an account, which hands back
// its enrolment link; and one account's detail with its roles and
// sessions and what may be done to it.

import { api, el, fill, table, can, readOnly, when, message, session } from "./lib.js";
import {
  facts, field, select, checks, checked, form, button, status, value, me, eligible, roles, grantText, factorCell, enrolLink,
  sessionCells, sessionColumns,
} from "./access-parts.js";

const enc = encodeURIComponent;

function userRow(u) {
  return [
    el("a", { href: "#access/user/" + enc(u.id), text: u.email, dataset: { user: u.id } }),
    u.name, [u.status, "access-" + u.status], u.roles.map(grantText).join(", "), factorCell(u.factors),
    u.last_login_at ? when(u.last_login_at) : "never",
  ];
}

// roleChoices are the roles an account may be created with by the
// signed-in person, the least first: member alone, unless they manage
// roles now. The auditor's is granted later, with its period.
function roleChoices(rs) {
  if (!can("roles.manage")) return ["member"];
  return ["member", ...rs.list.map((r) => r.name).filter((n) => n !== "member" && n !== "auditor" &&
    (n !== "owner" || can("tenant.ownership")))];
}

function createForm(rs, shown, reload) {
  const fields = [
    field("Email", { id: "access-new-email", type: "email", autocomplete: "off", required: true }),
    field("Name", { id: "access-new-name", autocomplete: "off", required: true }),
    select("Role", "access-new-role", roleChoices(rs)),
  ];
  return form("access-create-user", "Create an account", fields, "Create the account", async (line) => {
    const r = await api("POST", "/api/v1/users", {
      email: value("access-new-email"), name: value("access-new-name"), role: value("access-new-role"),
    });
    document.getElementById("access-new-email").value = "";
    document.getElementById("access-new-name").value = "";
    shown.replaceChildren(enrolLink(r.enrolment.token, r.enrolment.expires_at));
    message(line, "Created " + r.user.email + ".");
    await reload();
  });
}

// elevateHint tells someone who could manage accounts once elevated how.
function elevateHint(p, what) {
  if (can(p) || !eligible(p) || readOnly()) return null;
  return el("p", { class: "note" }, what + " needs " + p + ", held only while elevated: ",
    el("a", { href: "#access/elevations", text: "request an elevation" }),
    ", which another admin approves. Alone in the organisation? Make a second owner on the host with " +
    "attest user enrol-link --tenant " + (session.me && session.me.tenant) + " --owner, or work with an admin API key.");
}

export async function usersView(box) {
  const list = table("access-users", "Users of the tenant", ["Email", "Name", "Status", "Roles", "Second factor", "Last sign-in"]);
  const shown = el("div");
  const load = async () => fill(list, (await api("GET", "/api/v1/users")).users.map(userRow));
  box.append(el("h3", { text: "Users" }), list);
  if (can("users.manage") && !readOnly()) {
    box.append(shown, createForm(await roles(), shown, load));
  } else {
    box.append(elevateHint("users.manage", "Creating and changing accounts") || "");
  }
  await load();
  return load;
}

// accountFacts are an account's details, as term and description pairs.
function accountFacts(u) {
  const rows = [["Name", u.name], ["Status", u.status + (u.disabled_reason ? " (" + u.disabled_reason + ")" : "")],
    ["Second factor", factorCell(u.factors)], ["Created", when(u.created_at)],
    ["Last sign-in", u.last_login_at ? when(u.last_login_at) : "never"], ["Account id", u.id]];
  if (u.external_id) rows.push(["External id", u.external_id]);
  if (u.disabled_at) rows.push(["Disabled", when(u.disabled_at)]);
  if (u.locked_until) rows.push(["Sign-in", "locked after failed attempts until " + when(u.locked_until)]);
  return facts("access-user-facts", rows);
}

// privileged reports whether an account's roles carry a permission held
// only elevated: such an account's enrolment link is an owner's to issue.
function privileged(u, rs) {
  return u.roles.some((g) => g.role === "owner" || g.role === "admin" ||
    ((rs.byName.get(g.role) || {}).privileged || []).length > 0);
}

export async function userView(box, id) {
  const [u, rs] = await Promise.all([api("GET", "/api/v1/users/" + enc(id)), roles()]);
  const line = status("access-user-status");
  const isOwner = u.roles.some((g) => g.role === "owner");
  // Owners are out of reach of anyone not elevated to ownership.
  const reach = !readOnly() && (!isOwner || can("tenant.ownership"));
  const again = async (note, shownNode) => {
    box.replaceChildren();
    await userView(box, id);
    if (shownNode) document.getElementById("access-user-extra").replaceChildren(shownNode);
    if (note) message(document.getElementById("access-user-status"), note);
  };

  box.append(el("p", {}, el("a", { href: "#access/users", text: "All users" })),
    el("h3", { id: "access-user-title", text: u.email, tabindex: "-1" }), accountFacts(u), line,
    el("div", { id: "access-user-extra" }));

  if (can("users.manage") && reach) box.append(accountActions(u, rs, line, again));
  else box.append(elevateHint("users.manage", "Changing this account") || "");

  const grants = table("access-user-roles", "Roles of " + u.email, ["Role", "Audit period", "Action"]);
  box.append(el("h4", { text: "Roles" }), grants);
  const mayRoles = can("roles.manage") && !readOnly();
  fill(grants, u.roles.map((g) => [g.role, g.period_end ? when(g.period_start) + " to " + when(g.period_end) : "",
    mayRoles && (g.role !== "owner" || can("tenant.ownership"))
      ? button("Revoke " + g.role, line, async () => {
        await api("DELETE", "/api/v1/users/" + enc(u.id) + "/roles/" + enc(g.role));
        await again("Revoked " + g.role + ".");
      }, { class: "danger", dataset: { revokeRole: g.role } })
      : ""]));
  if (mayRoles && u.id !== me()) box.append(grantForm(u, rs, again));
  else if (u.id !== me()) box.append(elevateHint("roles.manage", "Granting and revoking roles") || "");

  const sessions = table("access-user-sessions", "Sessions of " + u.email, sessionColumns);
  box.append(el("h4", { text: "Sessions" }), sessions);
  const d = await api("GET", "/api/v1/users/" + enc(u.id) + "/sessions");
  fill(sessions, d.sessions.map((s) => [...sessionCells(s),
    can("users.manage") && reach && !s.current
      ? button("End", line, async () => {
        await api("DELETE", "/api/v1/users/" + enc(u.id) + "/sessions/" + enc(s.id));
        await again("Ended the session.");
      }, { class: "danger", dataset: { endSession: s.id } })
      : (s.current ? "this session" : "")]));
  if (d.sessions.length === 0) sessions.tBodies[0].append(el("tr", {}, el("td", { colspan: "8", text: "No live sessions." })));
}

function accountActions(u, rs, line, again) {
  const self = u.id === me();
  const reason = field("Reason (recorded)", { id: "access-user-reason", autocomplete: "off", maxlength: "500" });
  const post = (what, done) => async () => {
    const body = value("access-user-reason") ? { reason: value("access-user-reason") } : undefined;
    const r = await api("POST", "/api/v1/users/" + enc(u.id) + "/" + what, body);
    await again(done(r));
  };
  const acts = [];
  if (u.status === "active" && !self) {
    acts.push(button("Disable", line, post("disable", () => "Disabled: its sessions and API keys have ended."),
      { id: "access-disable", class: "danger" }));
  }
  if (u.status === "disabled") acts.push(button("Enable", line, post("enable", () => "Enabled."), { id: "access-enable" }));
  if (u.locked_until) {
    acts.push(button("Unlock", line, post("unlock", (r) => r.unlocked ? "Unlocked." : "The account was not locked."),
      { id: "access-unlock", class: "secondary" }));
  }
  if (u.status === "active" && (!privileged(u, rs) || can("tenant.ownership"))) {
    acts.push(button("Issue an enrolment link", line, async () => {
      const r = await api("POST", "/api/v1/users/" + enc(u.id) + "/enrolment");
      await again("Issued a new enrolment link; earlier unused ones no longer work.", enrolLink(r.token, r.expires_at));
    }, { id: "access-issue-enrolment", class: "secondary" }));
  }
  return el("div", { class: "access-block" }, el("h4", { text: "Account" }),
    el("div", { class: "inline access-form" }, u.status === "active" && !self ? reason : null, acts));
}

function grantForm(u, rs, again) {
  const held = new Set(u.roles.map((g) => g.role));
  const names = rs.list.map((r) => r.name).filter((n) => !held.has(n) && (n !== "owner" || can("tenant.ownership")));
  if (names.length === 0) return null;
  const period = el("div", { id: "access-grant-period", class: "inline access-form", hidden: true },
    field("Audit period from", { id: "access-grant-from", type: "date" }),
    field("Audit period to", { id: "access-grant-to", type: "date" }));
  const role = select("Role", "access-grant-role", names);
  role.querySelector("select").addEventListener("change", (e) => { period.hidden = e.target.value !== "auditor"; });
  return form("access-grant", "Grant a role", [role, period], "Grant the role", async () => {
    const r = value("access-grant-role");
    let body;
    if (r === "auditor") {
      body = { period_start: dayStart(value("access-grant-from")), period_end: dayStart(value("access-grant-to")) };
    }
    await api("PUT", "/api/v1/users/" + enc(u.id) + "/roles/" + enc(r), body);
    await again("Granted " + r + ".");
  });
}

// dayStart is midnight UTC of a date input's value, or "" without one.
function dayStart(d) {
  return d ? d + "T00:00:00Z" : "";
}

// Permissions a custom role can never carry.
const notCustom = ["tenants.manage", "tenants.read", "metrics.read", "tenant.ownership", "audit.events.write"];

export async function rolesView(box) {
  const line = status("access-roles-status");
  const list = table("access-roles", "Roles of the tenant", ["Role", "Kind", "Description", "Permissions",
    "Held only elevated", "Action"]);
  box.append(el("h3", { text: "Roles" }), list, line);
  const mayManage = can("roles.manage") && !readOnly();
  const load = async () => {
    const rs = await roles();
    fill(list, rs.list.map((r) => [r.name, r.builtin ? "built-in" : "custom", r.description || "",
      r.permissions.join(", ") || "none", r.privileged.join(", "),
      mayManage && !r.builtin
        ? button("Delete " + r.name, line, async () => {
          await api("DELETE", "/api/v1/roles/" + enc(r.name));
          message(line, "Deleted " + r.name + ".");
          await load();
        }, { class: "danger", dataset: { deleteRole: r.name } })
        : ""]));
    return rs;
  };
  const rs = await load();
  if (mayManage) box.append(roleForm(rs, load));
  else box.append(elevateHint("roles.manage", "Creating and deleting roles") || "");
  return load;
}

function roleForm(rs, load) {
  const perms = rs.permissions.filter((p) => !notCustom.includes(p));
  const fs = checks("Permissions of attest", "access-role-perms", perms);
  const fields = [
    field("Name", { id: "access-role-name", autocomplete: "off", placeholder: "e.g. support-reader" }),
    field("Description", { id: "access-role-description", autocomplete: "off" }),
    field("Platform actions, separated by spaces or commas", { id: "access-role-actions", autocomplete: "off",
      placeholder: "recording.read" }),
    fs,
  ];
  return form("access-create-role", "Create a custom role", fields, "Create the role", async (line) => {
    const actions = value("access-role-actions").split(/[\s,]+/).filter(Boolean);
    const picked = checked(fs);
    const r = await api("POST", "/api/v1/roles", {
      name: value("access-role-name"), description: value("access-role-description"), permissions: [...picked, ...actions],
    });
    await load();
    message(line, "Created " + r.name + ".");
  });
}
