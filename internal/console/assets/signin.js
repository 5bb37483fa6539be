// Signing in and enrolling. Sign-in is the password, then a second factor:
// a code from an authenticator app, a passkey, or a recovery code. An
// enrolment link (#enrol/<token>, the token staying in the browser since
// a fragment is never sent) sets up the account's password and its
// authenticator app. The server's answers, lockouts included, are shown
// as they come.

import { $, api, el, show } from "./lib.js";

let loginToken = "";
let onDone = null;

function error(text) {
  $("signin-error").textContent = text || "";
}

// explain turns an API error into what the person should read: a lockout
// says when to try again.
function explain(err) {
  if (err.status === 429 && err.retryAfter > 0) {
    const s = err.retryAfter;
    return err.message + ". Try again in " + (s < 90 ? s + " s." : Math.ceil(s / 60) + " min.");
  }
  return err.message;
}

function step(name) {
  for (const s of ["password-step", "factor-step", "enrol-step", "enrol-confirm"]) show(s, s === name);
}

async function finish(path, body) {
  await api("POST", path, { ...body, session: "cookie" });
  loginToken = "";
  for (const id of ["code", "recovery", "enrol-code", "enrol-password"]) $(id).value = "";
  await onDone();
}

function passkeysSupported() {
  return typeof PublicKeyCredential !== "undefined" && typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
}

async function passkey() {
  const begin = await api("POST", "/api/v1/auth/login/webauthn/begin", { login_token: loginToken });
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(begin.publicKey.publicKey || begin.publicKey);
  const cred = await navigator.credentials.get({ publicKey });
  if (!cred) throw new Error("the browser returned no passkey");
  await finish("/api/v1/auth/login/webauthn", { login_token: loginToken, credential: cred.toJSON() });
}

function wire() {
  $("password-step").addEventListener("submit", async (e) => {
    e.preventDefault();
    error("");
    try {
      const r = await api("POST", "/api/v1/auth/login", {
        tenant: $("tenant").value, email: $("email").value, password: $("password").value,
      });
      $("password").value = "";
      loginToken = r.login_token;
      const factors = r.factors || [];
      show("passkey", factors.includes("webauthn") && passkeysSupported());
      step("factor-step");
      $("code").focus();
    } catch (err) {
      error(explain(err));
    }
  });
  $("totp-step").addEventListener("submit", async (e) => {
    e.preventDefault();
    error("");
    try {
      await finish("/api/v1/auth/login/totp", { login_token: loginToken, code: $("code").value.trim() });
    } catch (err) {
      error(explain(err));
    }
  });
  $("recovery-step").addEventListener("submit", async (e) => {
    e.preventDefault();
    error("");
    try {
      await finish("/api/v1/auth/login/recovery", { login_token: loginToken, code: $("recovery").value.trim() });
    } catch (err) {
      error(explain(err));
    }
  });
  $("restart").addEventListener("click", () => {
    loginToken = "";
    error("");
    step("password-step");
    $("password").focus();
  });
  $("passkey").addEventListener("click", async () => {
    error("");
    try {
      await passkey();
    } catch (err) {
      error(err.name === "NotAllowedError" ? "the passkey was not used: try again, or enter a code" : explain(err));
    }
  });
  $("enrol-step").addEventListener("submit", async (e) => {
    e.preventDefault();
    error("");
    try {
      const fresh = !$("enrol-new").hidden;
      const body = { token: enrolToken(), password: $("enrol-password").value };
      if (fresh) Object.assign(body, { email: $("enrol-email").value, name: $("enrol-name").value });
      let r;
      try {
        r = await api("POST", "/api/v1/auth/enrol", body);
      } catch (err) {
        // A link for a new account needs its email and name, which a link
        // for an existing account refuses: they are asked for only then.
        if (!fresh && (err.problem.field === "email" || err.problem.field === "name")) {
          show("enrol-new", true);
          $("enrol-email").focus();
          return;
        }
        throw err;
      }
      $("enrol-password").value = "";
      $("enrol-secret").textContent = r.totp.secret;
      $("enrol-uri").textContent = r.totp.uri;
      step("enrol-confirm");
      $("enrol-code").focus();
    } catch (err) {
      error(explain(err));
    }
  });
  $("enrol-confirm").addEventListener("submit", async (e) => {
    e.preventDefault();
    error("");
    try {
      const r = await api("POST", "/api/v1/auth/enrol/totp", { token: enrolToken(), code: $("enrol-code").value.trim(), session: "cookie" });
      history.replaceState(null, "", location.pathname + "#overview");
      $("enrol-codes").replaceChildren(...(r.recovery_codes || []).map((c) => el("li", { text: c })));
      show("enrol-confirm", false);
      show("enrol-done", true);
      $("enrol-continue").focus();
    } catch (err) {
      error(explain(err));
    }
  });
  // The factor's key and the recovery codes leave the page once read.
  $("enrol-copy").addEventListener("click", async () => {
    const codes = [...$("enrol-codes").children].map((li) => li.textContent).join("\n");
    try {
      await navigator.clipboard.writeText(codes);
      $("enrol-copied").textContent = "Copied.";
    } catch (_) {
      $("enrol-copied").textContent = "The browser did not allow copying: select the codes and copy them.";
    }
  });
  $("enrol-continue").addEventListener("click", () => {
    show("enrol-done", false);
    for (const id of ["enrol-secret", "enrol-uri", "enrol-codes", "enrol-copied"]) $(id).replaceChildren();
    $("enrol-code").value = "";
    onDone();
  });
}

function enrolToken() {
  const m = location.hash.match(/^#enrol\/([A-Za-z0-9_\-.~%]+)$/);
  return m ? decodeURIComponent(m[1]) : "";
}

export default {
  // start shows the sign-in, or the enrolment when the location carries a
  // link, and calls done once a session cookie is set.
  start(done) {
    onDone = done;
    wire();
    show("signin", true);
    if (enrolToken()) {
      $("signin-title").textContent = "Set up your account";
      step("enrol-step");
      $("enrol-password").focus();
      return;
    }
    step("password-step");
    $("tenant").focus();
  },
};
