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
  return body;
}

const pages = ["overview", "controls"];

// page shows one page, named by the location's fragment.
async function page() {
  const name = pages.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
  for (const p of pages) show(p, p === name);
  try {
    if (name === "overview") await overview();
    if (name === "controls") await controlList();
  } catch (err) {
    $(name + "-error").textContent = err.message;
  }
}

async function controlList() {
  $("controls-error").textContent = "";
  const d = await api("GET", "/api/v1/compliance/controls");
  const body = fill($("control-list"), d.controls.map((c) => [
    [c.id + " " + c.name], [c.owner], [c.frequency], [c.status + (c.excepted ? " (excepted)" : ""), c.status],
    [String(c.latest ? c.latest.findings.length : 0)],
  ]));
  d.controls.forEach((c, i) => {
    const first = body.rows[i].cells[0];
    first.textContent = "";
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.dataset.control = c.id;
    b.textContent = c.id + " " + c.name;
    b.addEventListener("click", () => controlDetail(c.id));
    first.appendChild(b);
  });
}

async function controlDetail(id) {
  const c = await api("GET", "/api/v1/compliance/controls/" + encodeURIComponent(id) + "?limit=20");
  $("detail-title").textContent = c.id + " " + c.name;
  $("detail-description").textContent = c.description;
  $("detail-status").textContent = c.status;
  $("detail-status").className = c.status;
  $("detail-effectiveness").textContent =
    c.effectiveness == null ? "no runs" : (100 * c.effectiveness).toFixed(1) + "% of " + c.runs + " runs";
  const latest = (c.history || [])[0];
  $("detail-remediation").textContent = latest && latest.remediation ? "What to do: " + latest.remediation : "";
  const list = $("detail-findings");
  list.replaceChildren();
  for (const f of (latest && latest.findings) || []) {
    const li = document.createElement("li");
    li.textContent = f.resource + ": " + f.problem;
    list.appendChild(li);
  }
  fill($("detail-history"), (c.history || []).map((h) => [
    [h.checked_at], [h.status, h.status], [String(h.findings.length)], [h.sha256],
  ]));
  show("control-detail", true);
}

$("refresh-controls").addEventListener("click", () => page());
window.addEventListener("hashchange", () => page());

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
  await page();
}

// A browser that already holds a session goes straight to the overview.
api("GET", "/api/v1/me").then(signedIn, () => {
  show("signin", true);
  $("tenant").focus();
});
