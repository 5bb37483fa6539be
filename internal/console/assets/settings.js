// The settings page: sign-in and session policy, audit log retention and
// legal hold, API keys, and the compliance scope with its alert webhook.
// Each part shows only to those who may read it, and is read-only unless
// the person holds, now, the permission that changes it. The API's
// validation errors go next to the field they name.

import { $, api, el, fill, table, can, readOnly, when, message, session } from "./lib.js";

// may reports whether the person may change what perm guards: never an
// auditor.
const may = (perm) => can(perm) && !readOnly();

// hint says, to a person who could elevate to perm but holds it not now,
// why the part is read-only.
function hint(perm) {
  const later = ((session.me && session.me.elevatable) || []).includes(perm);
  if (may(perm) || readOnly() || !later) return null;
  return el("p", { class: "note hint", text: "Read-only for now: changing this needs an approved elevation to " +
    perm + "." });
}

// field is a labelled input with a place for its error, named by the API
// field it carries.
function field(part, name, label, input) {
  input.id = part + "-" + name;
  input.name = name;
  const err = el("span", { id: input.id + "-error", class: "field-error", dataset: { field: name } });
  input.setAttribute("aria-describedby", err.id);
  return el("div", { class: "field" }, el("label", { for: input.id, text: label }), input, err);
}

function number(min, max, editable) {
  return el("input", { type: "number", min: String(min), max: String(max), step: "1", inputmode: "numeric",
    readOnly: !editable });
}

// clearErrors empties the field errors of part.
function clearErrors(part) {
  for (const e of $(part).querySelectorAll(".field-error")) e.textContent = "";
  for (const i of $(part).querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
}

// failed shows an API error: next to the field the problem names when the
// part has one, else in the part's status line.
function failed(part, err) {
  const name = err.problem && err.problem.field;
  const slot = name ? $(part).querySelector('.field-error[data-field="' + CSS.escape(name) + '"]') : null;
  if (slot) {
    slot.textContent = err.message;
    slot.setAttribute("role", "alert");
    const input = $(part + "-" + name);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    message($(part + "-status"), "Not saved: see the field marked.", true);
    return;
  }
  message($(part + "-status"), err.message, true);
}

// save runs change, showing the outcome in part's status line.
async function save(part, button, change, done) {
  clearErrors(part);
  button.disabled = true;
  message($(part + "-status"), "Saving…", false);
  try {
    await change();
    message($(part + "-status"), done, false);
  } catch (err) {
    failed(part, err);
  } finally {
    button.disabled = false;
  }
}

function status(part) {
  return el("p", { id: part + "-status", role: "status" });
}

function noForm(e) {
  e.preventDefault();
}

// Sessions.

const policyFields = [
  ["idle_minutes", "Idle timeout (minutes)", 1, 1440],
  ["absolute_hours", "Longest session (hours)", 1, 720],
  ["max_sessions", "Sessions per person", 1, 100],
  ["inactive_days", "Disable accounts unused for (days)", 30, 3650],
];

async function sessionsPart() {
  const edit = may("tenant.settings.manage");
  const p = await api("GET", "/api/v1/settings/sessions");
  const form = el("form", { id: "sessions-form", class: "grid", onsubmit: noForm, "aria-label": "Session policy" });
  for (const [name, label, min, max] of policyFields) {
    const input = number(min, max, edit);
    input.value = String(p[name]);
    form.append(field("sessions", name, label, input));
  }
  const limit = el("select", { disabled: !edit },
    el("option", { value: "end_oldest", text: "ends the oldest session" }),
    el("option", { value: "refuse", text: "is refused" }));
  limit.value = p.on_limit;
  form.append(field("sessions", "on_limit", "At the limit, a new sign-in", limit));
  if (edit) {
    const button = el("button", { type: "button", id: "sessions-save", text: "Save session policy" });
    button.addEventListener("click", () => save("sessions", button, async () => {
      const body = { on_limit: limit.value };
      for (const [name] of policyFields) body[name] = Number($("sessions-" + name).value);
      await api("PUT", "/api/v1/settings/sessions", body);
    }, "Session policy saved."));
    form.append(el("div", { class: "actions" }, button));
  }
  return el("div", { id: "sessions", class: "part" },
    el("h3", { text: "Sign-in and sessions" }),
    el("p", { class: "note", text: "Every person signs in with a password and a second factor (an authenticator " +
      "app or a passkey); the second factor cannot be turned off. Privileged permissions need an approved " +
      "elevation and a fresh code." }),
    hint("tenant.settings.manage"), form, status("sessions"));
}

// Retention and legal hold.

async function retentionPart() {
  const edit = may("audit.retention.manage");
  const r = await api("GET", "/api/v1/retention");
  const form = el("form", { id: "retention-form", class: "grid", onsubmit: noForm, "aria-label": "Retention" });
  const days = number(365, 36500, edit), hot = number(1, 36500, edit);
  days.value = String(r.retention_days);
  hot.value = String(r.hot_days);
  form.append(field("retention", "retention_days", "Keep events for (days)", days),
    field("retention", "hot_days", "Keep in the database for (days), then archive", hot));
  if (edit) {
    const button = el("button", { type: "button", id: "retention-save", text: "Save retention" });
    button.addEventListener("click", () => save("retention", button, async () => {
      await api("PUT", "/api/v1/retention", { retention_days: Number(days.value), hot_days: Number(hot.value) });
      await reload("retention", retentionPart);
    }, "Retention saved."));
    form.append(el("div", { class: "actions" }, button));
  }
  const facts = el("p", { class: "note", text: (r.default ? "The default policy. " : "Set " + when(r.updated_at) + ". ") +
    r.entries + " events in the log; " + r.archived_below + " archived in " + r.segments + " segments; " +
    r.expired_below + " expired, their hashes kept so that proofs still verify." });
  const hold = el("p", { id: "retention-hold", class: r.legal_hold ? "error" : "",
    text: r.legal_hold ? "Under legal hold: " + r.hold_reason + ". Nothing is deleted while it lasts."
      : "No legal hold." });
  return el("div", { id: "retention", class: "part" },
    el("h3", { text: "Audit log retention" }), hint("audit.retention.manage"), form, facts,
    el("h4", { text: "Legal hold" }), hold, edit ? holdForm(r.legal_hold) : null, status("retention"));
}

function holdForm(held) {
  const reason = el("input", { autocomplete: "off" });
  const button = el("button", { type: "button", id: "retention-hold-set", class: held ? "secondary" : "danger",
    text: held ? "Release the legal hold" : "Set a legal hold" });
  button.addEventListener("click", () => save("retention", button, async () => {
    await api("PUT", "/api/v1/retention/legal-hold", { hold: !held, reason: reason.value });
    await reload("retention", retentionPart);
  }, held ? "Legal hold released." : "Legal hold set."));
  return el("form", { id: "hold-form", class: "grid", onsubmit: noForm, "aria-label": "Legal hold" },
    field("retention", "reason", held ? "Why it is released" : "Why (the matter it is for)", reason),
    el("div", { class: "actions" }, button));
}

// API keys.

const keyRoles = [
  ["reader", "reader: reads the log"],
  ["ingest", "ingest: sends events"],
  ["authz", "authz: asks whether a user may act"],
  ["scim", "scim: an identity provider's provisioning"],
  ["admin", "admin: manages the organisation"],
];

const keyLives = [["24h", "1 day"], ["168h", "7 days"], ["720h", "30 days"], ["2160h", "90 days"]];

function keyState(k) {
  if (k.revoked_at) return ["revoked " + when(k.revoked_at), "fail"];
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return ["expired", "fail"];
  return ["active", "pass"];
}

async function listKeys() {
  const edit = may("apikeys.manage");
  const d = await api("GET", "/api/v1/apikeys");
  const keys = d.api_keys || [];
  // The server answers which roles the person may hand out here; the form
  // offers those alone.
  const sel = document.querySelector("#settings select[data-key-roles]");
  if (sel && d.creatable_roles) {
    const keep = sel.value;
    sel.replaceChildren(...keyRoles.filter(([v]) => d.creatable_roles.includes(v))
      .map(([v, t]) => el("option", { value: v, text: t })));
    if (d.creatable_roles.includes(keep)) sel.value = keep;
    $("keys-create").disabled = sel.options.length === 0;
  }
  const body = fill($("key-list"), keys.map((k) => {
    const row = [k.name, k.role, when(k.created_at), k.expires_at ? when(k.expires_at) : "never", keyState(k)];
    if (edit) row.push(k.revoked_at ? "" : revokeButton(k));
    return row;
  }));
  if (keys.length === 0) {
    body.append(el("tr", {}, el("td", { colSpan: edit ? 6 : 5, class: "note", text: "No API keys yet." })));
  }
}

// revokeButton asks once more before it revokes.
function revokeButton(k) {
  const b = el("button", { type: "button", class: "secondary", dataset: { key: k.id }, text: "Revoke",
    "aria-label": "Revoke " + k.name });
  b.addEventListener("click", async () => {
    if (!b.dataset.armed) {
      b.dataset.armed = "1";
      b.className = "danger";
      b.textContent = "Confirm revoke";
      return;
    }
    b.disabled = true;
    try {
      await api("DELETE", "/api/v1/apikeys/" + encodeURIComponent(k.id));
      message($("keys-status"), "Revoked " + k.name + ".", false);
      await listKeys();
    } catch (err) {
      b.disabled = false;
      message($("keys-status"), err.message, true);
    }
  });
  return b;
}

function keyForm() {
  const name = el("input", { autocomplete: "off", maxLength: 128 });
  const role = el("select", { dataset: { keyRoles: "1" } }, keyRoles.map(([v, t]) => el("option", { value: v, text: t })));
  const life = el("select", {}, keyLives.map(([v, t]) => el("option", { value: v, text: t })));
  life.value = "720h";
  const secret = el("input", { id: "key-secret", readOnly: true, autocomplete: "off", spellcheck: false });
  const shown = el("div", { id: "key-new", hidden: true },
    el("label", { for: "key-secret", text: "The new key" }), secret,
    el("p", { class: "note", text: "Copy it now: it is not shown again. Requests send it as Authorization: " +
      "Bearer KEY." }));
  const button = el("button", { type: "button", id: "keys-create", text: "Create key" });
  button.addEventListener("click", () => save("keys", button, async () => {
    shown.hidden = true;
    secret.value = "";
    const k = await api("POST", "/api/v1/apikeys", { name: name.value, role: role.value, expires: life.value });
    secret.value = k.key;
    shown.hidden = false;
    name.value = "";
    await listKeys();
    secret.focus();
    secret.select();
  }, "Key created."));
  return el("div", {},
    el("h4", { text: "New key" }),
    el("form", { id: "keys-form", class: "grid", onsubmit: noForm, "aria-label": "New API key" },
      field("keys", "name", "Name", name), field("keys", "role", "Role", role),
      field("keys", "expires", "Expires after", life),
      el("div", { class: "actions" }, button)),
    shown);
}

async function keysPart() {
  const edit = may("apikeys.manage");
  const cols = ["Name", "Role", "Created", "Expires", "Status"];
  const part = el("div", { id: "keys", class: "part" },
    el("h3", { text: "API keys" }),
    el("p", { class: "note", text: "Keys let machines call attest: producers send events, tools read the log." }),
    hint("apikeys.manage"),
    table("key-list", "API keys", edit ? [...cols, "Revoke"] : cols),
    edit ? keyForm() : null, status("keys"));
  return part;
}

// Compliance scope and webhook.

const categories = [
  ["security", "Security (always in scope)"],
  ["availability", "Availability"],
  ["confidentiality", "Confidentiality"],
  ["processing_integrity", "Processing integrity"],
  ["privacy", "Privacy"],
];

async function compliancePart() {
  const edit = may("compliance.manage");
  const s = await api("GET", "/api/v1/compliance/settings");
  const inScope = new Set(s.categories || []);
  const boxes = categories.map(([v, t]) => {
    const box = el("input", { type: "checkbox", id: "compliance-cat-" + v, value: v,
      checked: v === "security" || inScope.has(v), disabled: v === "security" || !edit });
    return el("div", { class: "check" }, box, el("label", { for: box.id, text: t }));
  });
  const cats = el("fieldset", { id: "compliance-categories" }, el("legend", { text: "Trust Services categories in scope" }),
    ...boxes, el("span", { id: "compliance-categories-error", class: "field-error", dataset: { field: "categories" } }));
  const url = el("input", { type: "url", autocomplete: "off", readOnly: !edit });
  url.value = s.webhook_url || "";
  const form = el("form", { id: "compliance-form", class: "grid", onsubmit: noForm, "aria-label": "Compliance settings" },
    cats, field("compliance", "webhook_url", "Alert webhook URL (https)", url));
  const secretState = el("p", { id: "compliance-secret-state", class: "note",
    text: "Webhook secret: " + (s.webhook_secret_set ? "set" : "not set") + "." });
  if (edit) {
    const secret = el("input", { type: "password", autocomplete: "new-password" });
    form.append(field("compliance", "webhook_secret", "New webhook secret (16 to 256 characters; empty keeps it)",
      secret), secretState);
    const button = el("button", { type: "button", id: "compliance-save", text: "Save compliance settings" });
    button.addEventListener("click", () => save("compliance", button, async () => {
      const body = { categories: boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value),
        webhook_url: url.value.trim() };
      if (secret.value) body.webhook_secret = secret.value;
      const saved = await api("PUT", "/api/v1/compliance/settings", body);
      secret.value = "";
      $("compliance-secret-state").textContent = "Webhook secret: " + (saved.webhook_secret_set ? "set" : "not set") + ".";
    }, "Compliance settings saved."));
    form.append(el("div", { class: "actions" }, button));
  } else {
    form.append(secretState);
  }
  return el("div", { id: "compliance", class: "part" },
    el("h3", { text: "Compliance scope and alert webhook" }),
    el("p", { class: "note", text: "Alerts of controls that change status are posted to the webhook, signed with " +
      "its secret, which is never shown." }),
    form, status("compliance"));
}

// parts lists the page's parts: the permission that reads each, and how
// to make it.
const parts = [
  ["sessions", "tenant.settings.read", sessionsPart],
  ["retention", "audit.log.read", retentionPart],
  ["keys", "apikeys.read", keysPart],
  ["compliance", "compliance.read", compliancePart],
];

// reload makes part afresh in its place.
async function reload(id, make) {
  const fresh = await make();
  $(id).replaceWith(fresh);
  if (id === "keys") await listKeys();
}

// placeholder stands for a part that could not be read.
function placeholder(id, err) {
  return el("div", { id, class: "part" }, el("p", { class: "error", role: "alert", text: err.message }));
}

export default {
  id: "settings",
  title: "Settings",
  needs: ["tenant.settings.read", "compliance.read", "apikeys.read"],
  async show(sec) {
    delete sec.dataset.ready;
    sec.replaceChildren(el("h2", { id: "settings-title", text: "Settings" }));
    if (readOnly()) sec.append(el("p", { class: "note", text: "Read-only: an auditor sees the settings and changes none." }));
    const made = await Promise.all(parts.filter(([, perm]) => can(perm)).map(([id, , make]) =>
      make().catch((err) => placeholder(id, err))));
    sec.append(...made);
    if ($("key-list")) await listKeys().catch((err) => message($("keys-status"), err.message, true));
    sec.dataset.ready = "1";
  },
};
