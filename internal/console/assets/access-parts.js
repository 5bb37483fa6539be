// Pieces the access page's views share: labelled fields, forms whose
// button runs an action and shows its outcome, the tenant's people and
// roles by name, and how a second factor or an audit period reads.

import { api, el, can, session, message, when } from "./lib.js";

let seq = 0;

// field makes an input (or select or textarea, by attrs.tag) with its
// label, joined by for and id, in a box that lays them out.
export function field(label, attrs) {
  const { tag, ...rest } = attrs || {};
  const id = rest.id || "access-f" + ++seq;
  const input = el(tag || "input", { ...rest, id });
  return el("div", { class: "access-field" }, el("label", { for: id, text: label }), input);
}

// select makes a select of options, each [value, text] or a value.
export function select(label, id, options, attrs) {
  const box = field(label, { tag: "select", id, ...attrs });
  box.querySelector("select").append(...options.map((o) => {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    return el("option", { value, text });
  }));
  return box;
}

// checks makes a fieldset of checkboxes, one per value, each labelled.
export function checks(legend, id, values, hint) {
  return el("fieldset", { id, class: "access-checks" }, el("legend", { text: legend }),
    hint ? el("p", { class: "note", text: hint }) : null,
    values.map((v) => {
      const cid = id + "-" + ++seq;
      return el("span", { class: "access-check" },
        el("input", { type: "checkbox", id: cid, value: v }), el("label", { for: cid, text: v }));
    }));
}

// checked lists the values ticked in a fieldset made by checks.
export function checked(fs) {
  return [...fs.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
}

// status makes the line a view's outcomes and errors go to.
export function status(id) {
  return el("p", { id, class: "note", role: "status" });
}

// button makes a button that runs action, disabled while it runs, and
// puts an error it throws into the status line line.
export function button(text, line, action, attrs) {
  const b = el("button", { type: "button", text, ...attrs });
  b.addEventListener("click", () => run(b, line, action));
  return b;
}

async function run(b, line, action) {
  b.disabled = true;
  message(line, "");
  try {
    await action();
  } catch (err) {
    message(line, err.message, true);
  } finally {
    b.disabled = false;
  }
}

// form makes a labelled form of fields whose button (and Enter in a
// field) runs action; its outcome goes to the form's own status line.
export function form(id, title, fields, label, action) {
  const line = status(id + "-status");
  const b = button(label, line, () => action(line), { id: id + "-submit" });
  const f = el("form", { id, class: "inline access-form", "aria-label": title }, fields, b);
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!b.disabled) b.click();
  });
  return el("div", { class: "access-block" }, el("h4", { text: title }), f, line);
}

// value reads a form control's trimmed value by id.
export function value(id) {
  const e = document.getElementById(id);
  return e ? e.value.trim() : "";
}

// me is the signed-in person's user id.
export function me() {
  return (session.me && session.me.user && session.me.user.id) || "";
}

// eligible reports whether the signed-in person could hold p: now, or
// once elevated.
export function eligible(p) {
  return can(p) || ((session.me && session.me.elevatable) || []).includes(p);
}

// people reads the tenant's users by id, for naming them, when the
// signed-in person may read them; else an empty directory.
export async function people() {
  if (!can("users.read")) return new Map();
  const d = await api("GET", "/api/v1/users");
  return new Map(d.users.map((u) => [u.id, u]));
}

// who names a user id: "you", the email the directory knows, or the id.
export function who(dir, id) {
  if (id && id === me()) return "you";
  const u = dir.get(id);
  return u ? u.email : id || "";
}

// roles reads the tenant's roles by name with the permission list, when
// the signed-in person may read them.
export async function roles() {
  if (!can("roles.read")) return { byName: new Map(), list: [], permissions: [] };
  const d = await api("GET", "/api/v1/roles");
  return { byName: new Map(d.roles.map((r) => [r.name, r])), list: d.roles, permissions: d.permissions };
}

// facts makes a list of terms and their descriptions, each a pair of a
// name and a string or an element.
export function facts(id, rows) {
  return el("dl", { id, class: "access-facts" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

// day is the date part of an RFC 3339 time.
export function day(s) {
  return s ? String(s).slice(0, 10) : "";
}

// grantText reads a grant: the role, and an auditor's period.
export function grantText(g) {
  return g.period_end ? g.role + " (audit period " + day(g.period_start) + " to " + day(g.period_end) + ")" : g.role;
}

// factorCell shows an account's factors; one without a second factor
// (an app or a passkey) is marked as the problem it is.
export function factorCell(factors) {
  const fs = factors || [];
  if (!fs.includes("totp") && !fs.includes("webauthn")) {
    return el("span", { class: "access-problem", text: "none" + (fs.includes("recovery") ? " (recovery codes only)" : "") });
  }
  return el("span", { text: fs.join(", ") });
}

// enrolLink shows an enrolment link for its person to be sent.
export function enrolLink(token, expires) {
  const link = location.origin + "/#enrol/" + encodeURIComponent(token);
  const line = status("access-enrol-status");
  const copy = button("Copy the link", line, async () => {
    await navigator.clipboard.writeText(link);
    message(line, "Copied.");
  }, { class: "secondary" });
  return el("div", { id: "access-enrol", class: "access-block access-notice" },
    el("p", { text: "Send this enrolment link to its person: it sets up their password and authenticator app, " +
      "works once and expires " + when(expires) + "." }),
    el("p", {}, el("code", { id: "access-enrol-link", text: link })),
    el("p", {}, copy), line);
}

// sessionCells are the cells of a session row, before its action.
export function sessionCells(s) {
  return [when(s.created_at), when(s.last_active_at), when(s.expires_at), s.factor, s.ip, s.user_agent,
    s.elevated ? "yes" : ""];
}

// sessionColumns name the cells sessionCells gives, and the action.
export const sessionColumns = ["Started", "Last active", "Expires", "Factor", "Address", "Browser", "Elevated", "Action"];
