// The console's script. Every value the API answers is put on the page as
// text, never as markup. The session lives in an HttpOnly cookie the
// script never sees; requests that change something carry the CSRF header.

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { "Attest-CSRF": "1" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  if ((resp.headers.get("Content-Type") || "").includes("json")) {
    data = await resp.json();
  }
  if (!resp.ok) {
    const msg = (data && (data.detail || data.title)) || resp.statusText;
    throw new Error(msg);
  }
  return data;
}

function show(id, on) {
  $(id).hidden = !on;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function fill(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const [text, cls] of r) cell(tr, text, cls);
    body.appendChild(tr);
  }
}

let loginToken = "";

$("password-step").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    const r = await api("POST", "/api/v1/auth/login", {
      tenant: $("tenant").value, email: $("email").value, password: $("password").value,
    });
    $("password").value = "";
    loginToken = r.login_token;
    show("password-step", false);
    show("totp-step", true);
    $("code").focus();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
});

$("totp-step").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    await api("POST", "/api/v1/auth/login/totp", { login_token: loginToken, code: $("code").value, session: "cookie" });
    loginToken = "";
    $("code").value = "";
    await signedIn();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
});

$("signout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    location.reload();
  }
});

async function overview() {
  const d = await api("GET", "/api/v1/compliance/dashboard");
  $("readiness").textContent = d.readiness.toFixed(1);
  $("formula").textContent = d.formula;
  fill($("categories"), (d.categories || []).map((c) => [
    [c.category], [c.readiness.toFixed(1)], [c.status, c.status],
  ]));
  fill($("failing"), (d.failing || []).map((c) => [
    [c.id + " " + c.name], [c.owner], [c.remediation || ""],
  ]));
}

async function signedIn() {
  const me = await api("GET", "/api/v1/me");
  $("who").textContent = (me.user && (me.user.email || me.user.name)) || "";
  show("signin", false);
  show("nav", true);
  show("overview", true);
  try {
    await overview();
  } catch (err) {
    $("overview-error").textContent = err.message;
  }
}

// A browser that already holds a session goes straight to the overview.
api("GET", "/api/v1/me").then(signedIn, () => {
  show("signin", true);
  $("tenant").focus();
});
