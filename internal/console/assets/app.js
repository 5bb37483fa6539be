// The console's shell: sign-in, the navigation and the page switch. Each
// page is a module exporting { id, title, needs, show(section, rest) }:
// needs lists the permissions of which the person must hold one to see
// it, and show renders the page into its section each time it is opened,
// rest being what follows "#id/" in the location.

import { $, api, el, show, session, can, auditPeriod, live, when } from "./lib.js";
import overview from "./overview.js";
import controls from "./controls.js";
import criteria from "./criteria.js";
import trail from "./trail.js";
import access from "./access.js";
import reports from "./reports.js";
import settings from "./settings.js";
import signin from "./signin.js";

const pages = [overview, controls, criteria, trail, access, reports, settings];

function visible(p) {
  return !p.needs || p.needs.length === 0 || p.needs.some(can);
}

function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const p = pages.find((x) => x.id === name && visible(x)) || pages.find(visible);
  return [p, rest.join("/")];
}

// open shows the page the location names, hiding the others.
async function open() {
  if (!session.me) return;
  const [p, rest] = route();
  for (const x of pages) {
    show(x.id, x === p);
    const link = $("go-" + x.id);
    if (link) link.setAttribute("aria-current", x === p ? "page" : "false");
  }
  if (!p) return;
  const sec = $(p.id);
  try {
    await p.show(sec, rest);
  } catch (err) {
    const line = sec.querySelector(".page-error") || sec.appendChild(el("p", { class: "error page-error", role: "alert" }));
    line.textContent = err.message;
  }
}

function buildNav() {
  const links = $("nav-links");
  links.replaceChildren(...pages.filter(visible).map((p) =>
    el("a", { href: "#" + p.id, id: "go-" + p.id, text: p.title })));
  const me = session.me;
  $("who").textContent = ((me.user && (me.user.email || me.user.name)) || "") +
    (me.elevated_until ? " (elevated until " + new Date(me.elevated_until).toLocaleTimeString() + ")" : "");
  const period = auditPeriod();
  const banner = $("period");
  if (period) {
    banner.textContent = "Read-only: your auditor's grant covers " + when(period.from) + " to " + when(period.to) +
      "; every page is bounded to that period.";
  }
  banner.hidden = !period;
}

// notice passes a change notice to the pages, at most once a second: a
// notice that comes sooner waits, and those that pile up meanwhile make
// one.
let lastNotice = 0;
let noticeWaiting = false;
function notice() {
  if (noticeWaiting) return;
  const wait = lastNotice + 1000 - Date.now();
  if (wait > 0) {
    noticeWaiting = true;
    setTimeout(() => { noticeWaiting = false; notice(); }, wait);
    return;
  }
  lastNotice = Date.now();
  live.dispatchEvent(new CustomEvent("change"));
}

// stream listens to the server's change notices and passes them to the
// pages; EventSource reconnects by itself when the connection drops,
// naming the last notice's id, and the server then announces what changed
// meanwhile. An auditor's grant is bounded to its period, and gets no
// stream of what changes now. A stream opened again after a restart has
// no last id to name: the page reads the API again once it opens.
let source = null;
function stream(reopened) {
  if (source || typeof EventSource === "undefined" || !can("compliance.read") || auditPeriod()) return;
  source = new EventSource("/api/v1/stream", { withCredentials: true });
  source.addEventListener("change", () => notice());
  if (reopened) source.addEventListener("open", () => notice(), { once: true });
  // The server ends the stream when the session ends: the page goes back
  // to the sign-in.
  source.addEventListener("end", (e) => {
    source.close();
    source = null;
    let reason = "";
    try {
      reason = JSON.parse(e.data).reason;
    } catch (_) { /* no reason given */ }
    // A session or permission gone reloads the page, which signs in again
    // or shows what the person may still see.
    if (reason === "shutting down") setTimeout(() => stream(true), 3000);
    else location.reload();
  });
  source.addEventListener("open", () => { $("live").textContent = "live"; });
  source.addEventListener("error", () => {
    $("live").textContent = source && source.readyState === EventSource.CLOSED ? "not live: reload to retry" : "reconnecting";
  });
}

export async function signedIn() {
  session.me = await api("GET", "/api/v1/me");
  if (location.hash.startsWith("#enrol/")) {
    const n = $("notice");
    n.textContent = "You are signed in as " + ((session.me.user && session.me.user.email) || "someone") +
      ": an enrolment link sets up another account. Sign out, then open the link again.";
    n.hidden = false;
  }
  show("signin", false);
  show("nav", true);
  buildNav();
  stream();
  await open();
}

$("signout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    location.hash = "";
    location.reload();
  }
});
// An enrolment link opened in a tab that runs the console already starts
// the page afresh: signed out, it sets the account up; signed in, it says
// to sign out first.
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#enrol/")) {
    location.reload();
    return;
  }
  open();
});

// A browser that already holds a session goes straight to its page; one
// that does not signs in, or enrols when the location carries a link.
api("GET", "/api/v1/me").then(signedIn, () => signin.start(signedIn));
