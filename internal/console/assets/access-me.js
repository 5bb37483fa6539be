// The access page's own account: who the signed-in person is and what
// they hold, their sessions, their passkeys, new recovery codes and a new
// password. Each is theirs alone, so everyone sees it.

import { api, el, fill, table, session, when, message } from "./lib.js";
import { facts, field, form, button, status, value, grantText, factorCell, sessionCells, sessionColumns } from "./access-parts.js";

const enc = encodeURIComponent;

function summary() {
  const m = session.me;
  const rows = [["Email", m.user.email], ["Name", m.user.name], ["Organisation", m.tenant],
    ["Roles", m.user.roles.map(grantText).join(", ") || "none"], ["Second factor", factorCell(m.user.factors)],
    ["Permissions now", m.permissions.join(", ") || "none"],
    ["Held once elevated", (m.elevatable || []).join(", ") || "none"]];
  if (m.elevated_until) rows.push(["Elevated until", when(m.elevated_until)]);
  return facts("access-me-facts", rows);
}

// signedOut tells the person their sessions ended, with the way back.
function signedOut(line, text) {
  message(line, text);
  line.append(" ", el("button", { type: "button", id: "access-sign-in-again", text: "Sign in again",
    onclick: () => { location.hash = ""; location.reload(); } }));
}

async function sessions(box) {
  const line = status("access-my-sessions-status");
  const list = table("access-my-sessions", "Your sessions", sessionColumns);
  box.append(el("h4", { text: "Your sessions" }), list, line);
  const load = async () => {
    const d = await api("GET", "/api/v1/me/sessions");
    fill(list, d.sessions.map((s) => [...sessionCells(s), s.current ? "this session"
      : button("End", line, async () => {
        await api("DELETE", "/api/v1/me/sessions/" + enc(s.id));
        message(line, "Ended the session.");
        await load();
      }, { class: "danger", dataset: { endSession: s.id } })]));
  };
  await load();
  return load;
}

function passkeysSupported() {
  return typeof PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";
}

// removeButton asks once more before removing a passkey, which ends every
// session of the person's, this one too.
function removeButton(p, line) {
  const b = el("button", { type: "button", class: "danger", text: "Remove", dataset: { removePasskey: p.id } });
  b.addEventListener("click", async () => {
    if (b.dataset.confirm !== "1") {
      b.dataset.confirm = "1";
      b.textContent = "Remove, and sign out everywhere";
      message(line, "Removing a passkey ends every session of yours, this one too: press again to remove it.");
      return;
    }
    b.disabled = true;
    try {
      const r = await api("DELETE", "/api/v1/me/webauthn/" + enc(p.id));
      // Signed out, the page cannot read the list again: the passkey
      // leaves it here.
      b.closest("tr").remove();
      signedOut(line, "Removed the passkey: " + r.detail + ".");
    } catch (err) {
      message(line, err.message, true);
      b.disabled = false;
    }
  });
  return b;
}

async function passkeys(box, reloadSessions) {
  const line = status("access-passkeys-status");
  const list = table("access-passkeys", "Your passkeys", ["Name", "Added", "Last used", "Warning", "Action"]);
  box.append(el("h4", { text: "Your passkeys" }), list, line);
  const load = async () => {
    const d = await api("GET", "/api/v1/me/webauthn");
    fill(list, d.passkeys.map((p) => [p.name || "(unnamed)", when(p.created_at), p.last_used_at ? when(p.last_used_at) : "never",
      p.clone_warning ? ["its counter went backwards: it may be cloned, and no longer signs in", "access-problem"] : "",
      removeButton(p, line)]));
    if (d.passkeys.length === 0) list.tBodies[0].append(el("tr", {}, el("td", { colspan: "5", text: "No passkeys." })));
  };
  await load();
  if (!passkeysSupported()) {
    box.append(el("p", { class: "note", text: "This browser cannot register passkeys." }));
    return;
  }
  box.append(form("access-add-passkey", "Add a passkey", [
    field("Name of the passkey", { id: "access-passkey-name", autocomplete: "off", placeholder: "e.g. work laptop" }),
    field("Code from your authenticator app", { id: "access-passkey-code", inputmode: "numeric", autocomplete: "one-time-code" }),
  ], "Add the passkey", async (own) => {
    const begin = await api("POST", "/api/v1/me/webauthn/begin", { code: value("access-passkey-code") });
    document.getElementById("access-passkey-code").value = "";
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(begin.publicKey);
    let cred;
    try {
      cred = await navigator.credentials.create({ publicKey });
    } catch (err) {
      if (err.name === "NotAllowedError") throw new Error("the passkey was not made: the browser or you cancelled it");
      throw err;
    }
    const r = await api("POST", "/api/v1/me/webauthn", { name: value("access-passkey-name"), credential: cred.toJSON() });
    document.getElementById("access-passkey-name").value = "";
    message(own, "Added the passkey: " + r.detail + ".");
    session.me = await api("GET", "/api/v1/me");
    document.getElementById("access-me-facts").replaceWith(summary());
    await load();
    await reloadSessions();
  }));
}

function recoveryCodes() {
  const codes = el("div", { id: "access-recovery" });
  const block = form("access-new-codes", "New recovery codes", [
    field("Code from your authenticator app", { id: "access-codes-code", inputmode: "numeric", autocomplete: "one-time-code" }),
  ], "Make new recovery codes", async (line) => {
    const r = await api("POST", "/api/v1/me/recovery-codes", { code: value("access-codes-code") });
    document.getElementById("access-codes-code").value = "";
    codes.replaceChildren(
      el("p", { text: "Keep these somewhere safe: each signs you in once if you lose your app. They are not shown again." }),
      el("ul", { id: "access-recovery-codes", class: "codes" }, r.recovery_codes.map((c) => el("li", { text: c }))));
    message(line, "Made " + r.recovery_codes.length + " new recovery codes.");
  });
  block.insertBefore(el("p", { class: "note", text: "New codes replace the old ones, which stop working." }),
    block.querySelector("form"));
  return el("div", {}, block, codes);
}

function passwordForm() {
  return form("access-password", "Change your password", [
    field("Current password", { id: "access-password-current", type: "password", autocomplete: "current-password" }),
    field("New password", { id: "access-password-new", type: "password", autocomplete: "new-password" }),
    field("New password again", { id: "access-password-again", type: "password", autocomplete: "new-password" }),
  ], "Change the password", async (line) => {
    const cur = document.getElementById("access-password-current").value;
    const next = document.getElementById("access-password-new").value;
    if (next !== document.getElementById("access-password-again").value) {
      throw new Error("the two new passwords differ");
    }
    const r = await api("POST", "/api/v1/me/password", { current_password: cur, new_password: next });
    for (const id of ["access-password-current", "access-password-new", "access-password-again"]) {
      document.getElementById(id).value = "";
    }
    signedOut(line, "Changed your password: " + r.detail + ".");
  });
}

export default async function meView(box) {
  box.append(el("h3", { text: "My account" }), summary());
  const reloadSessions = await sessions(box);
  await passkeys(box, reloadSessions);
  box.append(recoveryCodes(), passwordForm());
  return reloadSessions;
}
