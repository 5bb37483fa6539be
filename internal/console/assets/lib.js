// Helpers every page of the console shares. Values the API answers are put
// on the page as text, never as markup: el() sets text, and nothing here
// writes innerHTML.

export const $ = (id) => document.getElementById(id);

// ApiError carries the HTTP status and the problem document's detail.
export class ApiError extends Error {
  constructor(status, message, problem, retryAfter) {
    super(message);
    this.status = status;
    this.problem = problem || {};
    // retryAfter is the Retry-After header's seconds, when the server
    // throttled the request.
    this.retryAfter = Number(retryAfter) || 0;
  }
}

// lastInput is when the person last pressed a key, clicked, touched or
// scrolled a wheel here, or loaded the page.
let lastInput = Date.now();
for (const kind of ["keydown", "pointerdown", "wheel", "touchmove"]) {
  window.addEventListener(kind, () => { lastInput = Date.now(); }, { capture: true, passive: true });
}

// personAsked reports whether a request now follows the person's own
// doing: within a few seconds of their last input. Any other request,
// such as a page's reload after a change notice, is sent as background,
// so that an open page does not keep an idle session alive.
function personAsked() {
  return Date.now() - lastInput < 5000;
}

// api calls attest's API with the session cookie. Every request carries
// the CSRF header, which the server demands of cookie sessions for any
// request that changes something. A FormData body is sent as multipart.
// With { background: true } the request is marked as no person's doing,
// such as a reload after a change notice, so that it does not keep the
// session from timing out.
export async function api(method, path, body, { background = false } = {}) {
  const opts = { method, credentials: "same-origin", headers: { "Attest-CSRF": "1" } };
  if (background || !personAsked()) opts.headers["Attest-Background"] = "1";
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  if ((resp.headers.get("Content-Type") || "").includes("json")) {
    data = await resp.json();
  }
  if (!resp.ok) {
    const msg = (data && (data.detail || data.title)) || resp.statusText || "HTTP " + resp.status;
    throw new ApiError(resp.status, msg, data, resp.headers.get("Retry-After"));
  }
  return data;
}

// el makes an element. attrs sets properties (text sets textContent, on*
// adds a listener, dataset entries go to data-*); children are elements or
// strings, strings becoming text nodes.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

export function show(id, on) {
  $(id).hidden = !on;
}

function cell(row, item) {
  const td = document.createElement("td");
  if (item instanceof Node) {
    td.append(item);
  } else {
    const [text, cls] = Array.isArray(item) ? item : [item];
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
  }
  row.appendChild(td);
}

// fill replaces a table's body with rows, each a list of cells: a string,
// [text, class], or an element. With no rows, the body holds one row
// saying empty, when given.
export function fill(table, rows, empty) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (rows.length === 0 && empty) {
    const td = el("td", { class: "empty", text: empty });
    td.colSpan = table.tHead ? table.tHead.rows[0].cells.length : 1;
    body.appendChild(el("tr", {}, td));
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of r) cell(tr, c);
    body.appendChild(tr);
  }
  return body;
}

// table makes a table with a header row of the given column names and an
// empty body, labelled for assistive technology.
export function table(id, label, columns) {
  return el("table", { id, "aria-label": label },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
    el("tbody"));
}

// session holds who is signed in: /api/v1/me's answer.
export const session = { me: null };

// can reports whether the signed-in person holds permission p now. Pages
// show no button the server would refuse.
export function can(p) {
  return !!session.me && (session.me.permissions || []).includes(p);
}

// auditPeriod is the signed-in person's audit period when they hold an
// auditor's grant, else null: their pages are bounded to it.
export function auditPeriod() {
  const roles = (session.me && session.me.user && session.me.user.roles) || [];
  const g = roles.find((r) => r.period_start && r.period_end);
  return g ? { from: g.period_start, to: g.period_end } : null;
}

// readOnly reports whether the signed-in person changes nothing: an
// auditor, whose grant bounds them to a period.
export function readOnly() {
  return auditPeriod() !== null;
}

// live carries the server's change notices (server-sent events) to pages:
// listen for "change", whose detail names what changed.
export const live = new EventTarget();

// when formats an RFC 3339 time for reading, in the browser's zone, which
// it names.
export function when(s) {
  if (!s) return "";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(undefined, { timeZoneName: "short" });
}

// download asks the browser to save what path answers, with the session
// cookie, as name.
export async function download(path, name) {
  const resp = await fetch(path, { credentials: "same-origin", headers: { "Attest-CSRF": "1" } });
  if (!resp.ok) {
    let msg = resp.statusText;
    try {
      const p = await resp.json();
      msg = p.detail || p.title || msg;
    } catch (_) { /* not a problem document */ }
    throw new ApiError(resp.status, msg);
  }
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// message puts text into a page's status line, as an error or not.
export function message(node, text, isError) {
  node.textContent = text || "";
  node.className = isError ? "error" : "note";
  node.setAttribute("role", isError ? "alert" : "status");
}
