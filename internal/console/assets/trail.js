// The audit trail: a search of the tenant's log with every filter of
// GET /api/v1/compliance/audit-trail, whose pages load as the results
// scroll into view, and each event's detail with its inclusion proof. The
// page checks the proof itself, against the signed checkpoint and a
// verifier key the person may replace with their own, by running attest's
// Go verifier (package inclusion) compiled to WebAssembly: the checks are
// attest verify's, not JavaScript written for the page.

import { $, api, el, table, message, readOnly, auditPeriod, when, live } from "./lib.js";

// The page keeps at most this many result rows; older ones leave the top
// as new pages arrive at the bottom, so that scrolling through millions of
// events stays light.
const MAX_ROWS = 2000;

const CATEGORIES = ["authentication", "authorization", "data_access", "data_change", "configuration", "admin",
  "security", "system"];
const RESULTS = ["success", "failure", "denied", "error"];

// The search form's fields, one for each filter of the query API. Times
// are entered in the browser's zone and sent in UTC.
const FIELDS = [
  { name: "occurred_from", label: "Occurred from", type: "datetime-local" },
  { name: "occurred_to", label: "Occurred before", type: "datetime-local" },
  { name: "received_from", label: "Received from", type: "datetime-local" },
  { name: "received_to", label: "Received before", type: "datetime-local" },
  { name: "actor_id", label: "Actor id" },
  { name: "action", label: "Action", placeholder: "user.login" },
  { name: "action_prefix", label: "Action starts with", placeholder: "user." },
  { name: "category", label: "Category", options: CATEGORIES },
  { name: "target_type", label: "Target type" },
  { name: "target_id", label: "Target id" },
  { name: "outcome", label: "Outcome", options: RESULTS },
  { name: "source", label: "Source" },
  { name: "client_ip", label: "Client IP", placeholder: "10.0.0.7" },
  { name: "q", label: "Text in action or target name" },
  { name: "limit", label: "Events per page", type: "number", value: "100", min: "1", max: "1000" },
  { name: "order", label: "Order", options: [["desc", "Newest first"], ["asc", "Oldest first"]], required: true },
];

const state = {
  gen: 0, // bumped by each search; answers to an older one are dropped
  params: null, // the search's query parameters, cursor aside
  next: "", // the cursor of the next page, "" at the end
  pages: 0,
  loaded: 0,
  dropped: 0,
  treeSize: 0,
  loading: false,
  failed: false,
  // items holds the records on the page by sequence, for the auditor's
  // detail, which the single-event read does not serve.
  items: new Map(),
};

let built = false;
let observer = null;

function input(f) {
  const id = "trail-" + f.name.replace(/_/g, "-");
  let control;
  if (f.options) {
    const opts = f.options.map((o) => (Array.isArray(o) ? o : [o, o]));
    control = el("select", { id, name: f.name },
      f.required ? null : el("option", { value: "", text: "any" }),
      opts.map(([v, t]) => el("option", { value: v, text: t })));
  } else {
    control = el("input", { id, name: f.name, type: f.type || "text", value: f.value, min: f.min, max: f.max,
      placeholder: f.placeholder, step: f.type === "datetime-local" ? "1" : undefined, autocomplete: "off" });
  }
  return el("label", { for: id }, f.label, control);
}

function build(sec) {
  const period = auditPeriod();
  sec.replaceChildren(
    el("h2", { id: "trail-title", text: "Audit trail" }),
    el("div", { id: "trail-search" },
      el("form", { id: "trail-form", class: "inline", novalidate: true, "aria-label": "Search the audit trail",
        onsubmit: (e) => { e.preventDefault(); search(); } },
        FIELDS.map(input),
        el("button", { type: "submit", id: "trail-submit", text: "Search" }),
        el("button", { type: "button", id: "trail-clear", class: "secondary", text: "Clear", onclick: clear })),
      period ? el("p", { class: "note", id: "trail-period",
        text: "Your grant bounds the search to events that occurred from " + when(period.from) + " to " +
          when(period.to) + "." }) : null,
      el("p", { id: "trail-error", class: "error", role: "alert" }),
      el("p", { id: "trail-count", class: "note", role: "status" }),
      table("trail-results", "Audit trail events",
        ["Sequence", "Occurred", "Actor", "Action", "Target", "Outcome", "Source"]),
      el("p", { id: "trail-sentinel", class: "trail-sentinel" },
        el("button", { type: "button", id: "trail-more", class: "secondary", text: "Load more", hidden: true,
          onclick: () => loadPage(true) }))),
    el("div", { id: "trail-detail", hidden: true }));
  applyPeriod();
  observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage(false);
  }, { rootMargin: "0px 0px 400px 0px" });
  observer.observe($("trail-sentinel"));
  built = true;
}

// localValue is an RFC 3339 time as a datetime-local input shows it.
function localValue(iso) {
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" +
    p(d.getMinutes()) + ":" + p(d.getSeconds());
}

// applyPeriod fills an auditor's occurred-time bounds with their period
// and keeps the inputs within it.
function applyPeriod() {
  const period = auditPeriod();
  if (!period) return;
  for (const id of ["trail-occurred-from", "trail-occurred-to"]) {
    $(id).min = localValue(period.from);
    $(id).max = localValue(period.to);
  }
  if (!$("trail-occurred-from").value) $("trail-occurred-from").value = localValue(period.from);
  if (!$("trail-occurred-to").value) $("trail-occurred-to").value = localValue(period.to);
}

function clear() {
  $("trail-form").reset();
  applyPeriod();
  search();
}

// params reads the form into query parameters, leaving out empty fields.
// An auditor's occurred-time bounds are clamped to their period, as the
// server does too.
function params() {
  const q = new URLSearchParams();
  for (const f of FIELDS) {
    let v = $("trail-" + f.name.replace(/_/g, "-")).value.trim();
    if (v && f.type === "datetime-local") {
      const d = new Date(v);
      if (isNaN(d)) throw new Error(f.label + ": not a date and time");
      v = d.toISOString();
    }
    if (v) q.set(f.name, v);
  }
  const period = auditPeriod();
  if (period) {
    const from = q.get("occurred_from"), to = q.get("occurred_to");
    if (!from || new Date(from) < new Date(period.from)) q.set("occurred_from", period.from);
    if (!to || new Date(to) > new Date(period.to)) q.set("occurred_to", period.to);
  }
  return q;
}

// localInput writes an RFC 3339 time as a datetime-local input's value, in
// the browser's zone.
function localInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" +
    pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// fillForm sets the form's fields from a search's query parameters, as a
// link to a search carries them; fields it does not name are emptied.
function fillForm(q) {
  $("trail-form").reset();
  for (const f of FIELDS) {
    const v = q.get(f.name);
    if (v === null) continue;
    $("trail-" + f.name.replace(/_/g, "-")).value = f.type === "datetime-local" ? localInput(v) : v;
  }
}

// search starts a new query from the form's filters, and puts them in the
// location, so that the search can be bookmarked, shared or gone back to.
async function search() {
  message($("trail-error"), "", true);
  let q;
  try {
    q = params();
  } catch (err) {
    message($("trail-error"), err.message, true);
    return;
  }
  history.replaceState(null, "", "#trail/search?" + q.toString());
  state.gen++;
  Object.assign(state, { params: q, next: "", pages: 0, loaded: 0, dropped: 0, treeSize: 0, loading: false,
    failed: false });
  state.items.clear();
  $("trail-results").tBodies[0].replaceChildren();
  count();
  await loadPage(true);
}

// loadPage loads the next page of the current search; by the sentinel's
// coming into view (asked false), or on request, which also retries after
// an error. It goes on while the sentinel stays in view.
async function loadPage(asked) {
  if (!state.params || state.loading || (state.pages > 0 && !state.next) || (state.failed && !asked)) return;
  const gen = state.gen;
  const q = new URLSearchParams(state.params);
  if (state.next) q.set("cursor", state.next);
  state.loading = true;
  try {
    const page = await api("GET", "/api/v1/compliance/audit-trail?" + q);
    if (gen !== state.gen) return;
    if (state.failed) message($("trail-error"), "", true); // a retry that worked
    state.failed = false;
    state.next = page.next_cursor || "";
    state.pages++;
    state.treeSize = page.tree_size;
    append(page.items || []);
    count();
  } catch (err) {
    if (gen !== state.gen) return;
    state.failed = true;
    message($("trail-error"), err.message, true);
    count();
    return;
  } finally {
    if (gen === state.gen) state.loading = false;
  }
  if (state.next && inView($("trail-sentinel"))) loadPage(false);
}

function inView(node) {
  if ($("trail").hidden || $("trail-search").hidden) return false;
  const r = node.getBoundingClientRect();
  return r.top < window.innerHeight + 400 && r.bottom > 0;
}

function actorText(a) {
  if (!a) return "";
  const who = a.name || a.email || "";
  return who && a.id ? who + " (" + a.id + ")" : who || a.id || a.type || "";
}

function targetText(t) {
  if (!t) return "";
  const what = [t.type, t.id].filter(Boolean).join(" ");
  return t.name ? what + ": " + t.name : what;
}

// clip shortens a long text for a table cell; the event's page shows it
// whole.
function clip(text, n) {
  return text.length <= n ? text : text.slice(0, n - 1) + "…";
}

function row(item) {
  const ev = item.event || {};
  const o = ev.outcome || {};
  const seq = String(item.sequence);
  return el("tr", { dataset: { sequence: seq } },
    el("td", {}, el("a", { href: "#trail/" + encodeURIComponent(seq), text: seq })),
    el("td", {}, el("time", { datetime: ev.occurred_at, text: when(ev.occurred_at) })),
    el("td", { text: actorText(ev.actor) }),
    el("td", { text: ev.action || "" }),
    el("td", { text: targetText(ev.target) }),
    el("td", { class: RESULTS.includes(o.result) ? o.result : undefined, title: o.reason || undefined,
      text: (o.result || "") + (o.reason ? ": " + clip(o.reason, 80) : "") }),
    el("td", { text: (ev.source && ev.source.name) || "" }));
}

// append adds a page's rows, then takes rows off the top beyond MAX_ROWS,
// scrolling by their height so that what the person reads stays put.
function append(items) {
  const body = $("trail-results").tBodies[0];
  const frag = document.createDocumentFragment();
  for (const it of items) {
    frag.append(row(it));
    state.items.set(String(it.sequence), it);
  }
  body.append(frag);
  state.loaded += items.length;
  const extra = body.rows.length - MAX_ROWS;
  if (extra <= 0) return;
  const keep = body.rows[extra];
  const before = keep.getBoundingClientRect().top;
  for (let i = 0; i < extra; i++) {
    state.items.delete(body.rows[0].dataset.sequence);
    body.rows[0].remove();
  }
  state.dropped += extra;
  window.scrollBy(0, keep.getBoundingClientRect().top - before);
}

function count() {
  const c = $("trail-count");
  const rows = $("trail-results").tBodies[0].rows.length;
  let text = state.loaded + (state.loaded === 1 ? " event" : " events") + " shown";
  if (state.dropped > 0) {
    text += "; the first " + state.dropped + " have left the page to keep it light (search again to return to them)";
  }
  if (state.pages > 0) {
    text += state.next ? "; more load as you scroll" : "; that is every match";
    text += ". The search reads the log as it stood at " + state.treeSize + " entries.";
  }
  c.textContent = state.params ? text : "";
  Object.assign(c.dataset, { search: state.gen, loaded: state.loaded, rows, pages: state.pages,
    more: state.next ? "yes" : "no" });
  $("trail-more").hidden = !(state.next || state.failed);
}

// ---- the detail of one event -------------------------------------------

let current = null; // { seq, rec, proof } of the detail on show

function field(dl, name, value) {
  if (value === undefined || value === null || value === "") return;
  let text = Array.isArray(value) ? value.join(", ") : String(value);
  // A time is shown as recorded, in UTC, and as the tables show it, in the
  // reader's own zone.
  if (/_at$/.test(name) && typeof value === "string" && !isNaN(Date.parse(value))) text += " (" + when(value) + ")";
  dl.append(el("dt", { text: name }), el("dd", { text }));
}

// fields lists an object's members as name and text, nested objects under
// dotted names; details and original are shown whole, as JSON, apart.
function fields(dl, obj, prefix) {
  for (const [k, v] of Object.entries(obj || {})) {
    const name = prefix ? prefix + "." + k : k;
    if (!prefix && (k === "details" || k === "original")) continue;
    if (v && typeof v === "object" && !Array.isArray(v)) fields(dl, v, name);
    else field(dl, name, typeof v === "boolean" ? (v ? "yes" : "no") : v);
  }
}

function pretty(v) {
  return JSON.stringify(v, null, 2);
}

// leafText decodes the leaf's base64 to the JSON the log hashed.
function leafText(b64) {
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    try {
      return pretty(JSON.parse(text));
    } catch (_) {
      return text;
    }
  } catch (_) {
    return b64;
  }
}

let publicKey = null;

async function verifierKey() {
  if (!publicKey) publicKey = await api("GET", "/api/v1/audit/public-key?format=json");
  return publicKey;
}

async function detail(seq) {
  $("trail-search").hidden = true;
  const box = $("trail-detail");
  box.hidden = false;
  const title = el("h3", { id: "trail-event-title", tabindex: "-1", text: "Event " + seq });
  const status = el("p", { id: "trail-detail-error", class: "error", role: "alert" });
  const back = state.params ? "#trail/search?" + state.params.toString() : "#trail";
  box.replaceChildren(el("p", {}, el("a", { href: back, id: "trail-back", text: "Back to the results" })),
    title, status);
  title.focus();
  current = { seq };
  if (!/^(0|[1-9][0-9]*)$/.test(seq)) {
    message(status, "There is no event " + seq + ": events are numbered 0, 1, 2 and on.", true);
    return;
  }
  try {
    await load(seq, status);
  } catch (err) {
    if (current && current.seq === seq) message(status, err.message, true);
  }
}

async function load(seq, status) {
  const box = $("trail-detail");
  let rec, proof;
  if (readOnly()) {
    // An auditor's grant reads the log through the period-bounded search
    // alone: the detail is the record the search answered, its proof the
    // inclusion proof of its leaf hash.
    rec = state.items.get(seq);
    if (!rec) {
      message(status, "Open this event from the search results: your grant reads events through the search, " +
        "which keeps to your audit period.", true);
      return;
    }
    proof = await api("GET", "/api/v1/audit/proofs/inclusion?sequence=" + encodeURIComponent(seq))
      .catch(() => null);
  } else {
    rec = await api("GET", "/api/v1/audit/events/" + encodeURIComponent(seq));
    proof = rec.proof || null;
  }
  if (!current || current.seq !== seq) return;
  current = { seq, rec, proof };
  render(box, rec, proof);
}

function render(box, rec, proof) {
  const ev = rec.event || {};
  const dl = el("dl", { id: "trail-fields", class: "trail-fields" });
  field(dl, "sequence", rec.sequence);
  field(dl, "leaf hash", rec.leaf_hash);
  const { sequence, ...rest } = ev;
  if (sequence !== rec.sequence) field(dl, "event's own sequence", sequence);
  fields(dl, rest, "");
  if (rec.erased && rec.erased.length) field(dl, "erased", rec.erased);
  box.append(
    el("h4", { text: "Fields" }), dl,
    el("h4", { text: "Details" }),
    el("pre", { id: "trail-details", text: ev.details === undefined ? "none" : pretty(ev.details) }));
  if (rec.original !== undefined) {
    box.append(el("h4", { text: "Original record" }), el("pre", { id: "trail-original", text: pretty(rec.original) }));
  }
  if (rec.leaf) {
    box.append(el("details", {}, el("summary", { text: "The leaf the log hashed (personal values as commitments)" }),
      el("pre", { id: "trail-leaf", text: leafText(rec.leaf) })));
  }
  box.append(el("h4", { text: "Inclusion in the signed log" }));
  if (!proof) {
    box.append(el("p", { id: "trail-no-proof", class: "note", role: "status",
      text: "No signed checkpoint covers this event yet; one is signed within seconds, and this view then " +
        "shows its proof." }));
    return;
  }
  const pdl = el("dl", { class: "trail-fields", id: "trail-proof" });
  field(pdl, "tree size", proof.tree_size);
  field(pdl, "root hash", proof.root_hash);
  field(pdl, "proof hashes", proof.hashes.length);
  box.append(pdl,
    el("details", {}, el("summary", { text: "The signed checkpoint" }),
      el("pre", { id: "trail-checkpoint", text: proof.checkpoint || "" })),
    el("label", { for: "trail-vk", text: "Verifier key to trust" }),
    el("input", { id: "trail-vk", class: "trail-vk", autocomplete: "off", spellcheck: "false" }),
    el("p", { id: "trail-vk-note", class: "note" }),
    el("p", {}, el("button", { type: "button", id: "trail-verify", text: "Verify in this browser", onclick: verify })),
    el("div", { id: "trail-verify-result", role: "status" }));
  verifierKey().then((k) => {
    if (!$("trail-vk") || $("trail-vk").value) return;
    $("trail-vk").value = k.verifier_key;
    $("trail-vk-note").textContent = "Filled in with the key this server publishes (key id " + k.key_id +
      "). For a check that does not rest on this server, paste the key you hold from attest audit public-key.";
  }).catch((err) => message($("trail-vk-note"), "The server's key could not be read: " + err.message, true));
}

// ---- verification in the browser ---------------------------------------

let verifierReady = null;

// verifier loads attest's WebAssembly verifier once: the Go release's
// loader, a script the policy allows as attest's own, then verify.wasm.
function verifier() {
  if (!verifierReady) {
    verifierReady = (async () => {
      if (typeof window.Go !== "function") {
        await new Promise((resolve, reject) => {
          const s = el("script", { src: "/assets/wasm_exec.js" });
          s.addEventListener("load", resolve);
          s.addEventListener("error", () => reject(new Error("the verifier's loader did not load")));
          document.head.append(s);
        });
      }
      const go = new window.Go();
      const { instance } = await WebAssembly.instantiateStreaming(fetch("/assets/verify.wasm"), go.importObject);
      go.run(instance).catch(() => {});
      if (typeof window.attestVerifyInclusion !== "function") throw new Error("the verifier did not start");
      return window.attestVerifyInclusion;
    })();
    verifierReady.catch(() => { verifierReady = null; });
  }
  return verifierReady;
}

async function verify() {
  const out = $("trail-verify-result");
  const { rec, proof } = current || {};
  if (!rec || !proof) return;
  $("trail-verify").disabled = true;
  out.replaceChildren(el("p", { class: "note", text: "Verifying…" }));
  let r;
  try {
    const fn = await verifier();
    r = JSON.parse(fn(JSON.stringify({
      sequence: rec.sequence, leaf: rec.leaf || undefined, leaf_hash: rec.leaf_hash, tree_size: proof.tree_size,
      hashes: proof.hashes, checkpoint: proof.checkpoint || "", verifier_key: $("trail-vk").value,
    })));
  } catch (err) {
    r = { ok: false, reason: "the verifier could not run: " + err.message };
  } finally {
    $("trail-verify").disabled = false;
  }
  const dl = el("dl", { class: "trail-fields", id: "trail-verify-fields" });
  field(dl, "leaf hash", r.leaf_hash);
  field(dl, "leaf bytes checked", r.leaf_hash ? (r.leaf_checked ? "yes, they hash to it"
    : "no: the search answers the leaf hash, not the leaf") : "");
  field(dl, "tree size", r.tree_size);
  field(dl, "root", r.root);
  field(dl, "log", r.origin);
  field(dl, "signer", r.signer);
  field(dl, "key hash", r.key_hash);
  field(dl, "key id", r.key_id);
  field(dl, "proof hashes", r.proof_hashes);
  out.replaceChildren(
    el("p", { id: "trail-verdict", class: "verdict " + (r.ok ? "ok" : "error"),
      text: (r.ok ? "Verified: " : "Not verified: ") + r.reason }),
    dl);
}

// A change notice brings the proof to a detail shown without one.
live.addEventListener("change", () => {
  if (!built || $("trail").hidden || !current || !current.rec || current.proof) return;
  detail(current.seq).catch(() => {});
});

export default {
  id: "trail",
  title: "Audit trail",
  needs: ["audit.log.read"],
  async show(sec, rest) {
    if (!built) build(sec);
    const asked = rest.startsWith("search?") ? new URLSearchParams(rest.slice("search?".length)) : null;
    if (rest && !asked) {
      await detail(decodeURIComponent(rest));
      return;
    }
    const back = current && current.seq;
    current = null;
    $("trail-detail").hidden = true;
    $("trail-detail").replaceChildren();
    $("trail-search").hidden = false;
    // A link to a search runs it, unless it is the search on show, which a
    // step back from an event returns to where it was.
    if (asked && (!state.params || asked.toString() !== state.params.toString())) {
      fillForm(asked);
      await search();
      return;
    }
    if (!state.params) {
      await search();
      return;
    }
    const link = back && document.querySelector('#trail-results tr[data-sequence="' + CSS.escape(back) + '"] a');
    if (link) link.focus();
  },
};
