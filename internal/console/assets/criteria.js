// The criteria page: the Trust Services Criteria by category, each with
// the standing the dashboard scores for it, and a view per criterion
// (#criteria/<id>) with its text and the controls that support it. A
// customer tenant's criteria that only the operator's instance-wide
// controls support are marked inherited: the operator meets them.

import { $, api, el, fill, table, show, live, auditPeriod, message } from "./lib.js";

let built = false;
let current = "";

const categoryNames = {
  security: "Security", availability: "Availability", confidentiality: "Confidentiality",
  processing_integrity: "Processing integrity", privacy: "Privacy",
};

function categoryName(c) {
  return categoryNames[c] || c;
}

function pct(x) {
  return x == null ? "" : (100 * x).toFixed(1) + "%";
}

function build(sec) {
  sec.replaceChildren(
    el("h2", { id: "criteria-title", text: "Criteria" }),
    el("p", { id: "criteria-note", class: "formula" }),
    el("div", { id: "criterion-detail", hidden: true },
      el("p", {}, el("a", { href: "#criteria", text: "All criteria" })),
      el("h3", { id: "criterion-title", tabindex: "-1" }),
      el("p", { id: "criterion-series", class: "formula" }),
      el("p", { id: "criterion-summary" }),
      el("p", { id: "criterion-status" }),
      el("h4", { text: "Controls that support it" }),
      table("criterion-controls", "Controls supporting the criterion", ["Control", "Owner", "Frequency", "Status"]),
      el("p", { id: "criterion-empty", class: "note" })),
    el("div", { id: "criteria-list" }),
    el("p", { id: "criteria-error", class: "error", role: "alert" }),
  );
  built = true;
}

// load reads the catalog's criteria, the dashboard's scores of those in
// scope (over an auditor's period, for an auditor) and the controls.
async function load() {
  const p = auditPeriod();
  const q = p ? "?from=" + encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to) : "";
  const [cat, dash, ctl] = await Promise.all([
    api("GET", "/api/v1/compliance/criteria"),
    api("GET", "/api/v1/compliance/dashboard" + q),
    api("GET", "/api/v1/compliance/controls"),
  ]);
  const scores = new Map((dash.criteria || []).map((s) => [s.criterion, s]));
  const inherited = new Set(dash.inherited || []);
  const controls = new Map(ctl.controls.map((c) => [c.id, { ...c, excepted: !!c.excepted }]));
  // A control of a scored criterion stands as the dashboard scores it: it
  // passes unless the dashboard names it failing, without evidence or
  // excepted.
  for (const s of scores.values()) {
    for (const id of s.controls) if (controls.has(id)) controls.get(id).status = "pass";
  }
  for (const [list, excepted] of [[dash.failing, false], [dash.no_evidence, false], [dash.excepted, true]]) {
    for (const it of list || []) {
      const c = controls.get(it.id);
      if (c) Object.assign(c, { status: it.status, excepted });
    }
  }
  const cats = new Map((dash.categories || []).map((c) => [c.category, c]));
  return { criteria: cat.criteria, categories: cat.categories, scores, inherited, controls, cats, dash };
}

// standing is a criterion's status as words and a class.
function standing(d, cr) {
  if (d.inherited.has(cr.id)) return ["inherited from the operator", "inherited"];
  const s = d.scores.get(cr.id);
  if (!s) return ["not in scope", "out"];
  return [s.status, s.status];
}

// supporting lists the controls of the tenant that support criterion id:
// those the dashboard scores, or for a criterion out of scope those whose
// catalog entry names it.
function supporting(d, id) {
  const s = d.scores.get(id);
  const ids = s ? s.controls : [...d.controls.values()].filter((c) => (c.criteria || []).includes(id)).map((c) => c.id);
  return ids.map((x) => d.controls.get(x)).filter(Boolean);
}

function criterionLink(cr) {
  return el("a", { href: "#criteria/" + encodeURIComponent(cr.id), dataset: { criterion: cr.id }, text: cr.id });
}

function categoryBlock(d, category) {
  const crs = d.criteria.filter((c) => c.category === category);
  const score = d.cats.get(category);
  const id = "criteria-" + category;
  const t = table(id, categoryName(category) + " criteria",
    ["Criterion", "Series", "What it asks", "Controls", "Passing", "Status"]);
  fill(t, crs.map((cr) => {
    const s = d.scores.get(cr.id);
    const n = d.inherited.has(cr.id) ? "operator's" : String(supporting(d, cr.id).length);
    return [criterionLink(cr), cr.series, cr.summary, n, s ? pct(s.passing) : "", standing(d, cr)];
  }));
  if (!score) {
    return el("details", { class: "out-of-scope" },
      el("summary", { text: categoryName(category) + ": not in scope (" + crs.length + " criteria)" }), t);
  }
  return el("div", { class: "category" },
    el("h3", { text: categoryName(category) }),
    el("p", {}, "Readiness ", el("strong", { text: score.readiness.toFixed(1) }), " of 100; status ",
      el("span", { class: score.status, text: score.status }),
      score.effectiveness == null ? "" : "; effectiveness over the period " + pct(score.effectiveness)),
    t);
}

function renderList(d) {
  const inScope = d.categories.filter((c) => d.cats.has(c));
  const out = d.categories.filter((c) => !d.cats.has(c));
  $("criteria-list").replaceChildren(...inScope.map((c) => categoryBlock(d, c)),
    ...(out.length ? [el("h3", { text: "Categories not in scope" })] : []), ...out.map((c) => categoryBlock(d, c)));
  $("criteria-note").textContent = "Scored from " + new Date(d.dash.from).toLocaleDateString() + " to " +
    new Date(d.dash.to).toLocaleString() + ". " + (d.inherited.size ? d.inherited.size +
    " criteria are inherited: only the operator's instance-wide controls support them, and the operator meets them. " : "") +
    "Open a criterion for the controls that support it.";
}

function renderDetail(d, id, opened) {
  const cr = d.criteria.find((c) => c.id === id);
  if (!cr) {
    message($("criteria-error"), "No criterion " + id + " in the catalog.", true);
    show("criterion-detail", false);
    return;
  }
  $("criterion-title").textContent = cr.id;
  $("criterion-series").textContent = categoryName(cr.category) + " · " + cr.series;
  $("criterion-summary").textContent = cr.summary;
  const s = d.scores.get(cr.id);
  const [words, cls] = standing(d, cr);
  const status = $("criterion-status");
  status.replaceChildren("Status: ", el("span", { id: "criterion-state", class: cls, text: words }));
  if (s) {
    status.append("; " + pct(s.passing) + " of its controls pass" +
      (s.effectiveness == null ? "" : "; effectiveness over the period " + pct(s.effectiveness)));
  }
  const cs = d.inherited.has(cr.id) ? [] : supporting(d, cr.id);
  fill($("criterion-controls"), cs.map((c) => [
    el("a", { href: "#controls/" + encodeURIComponent(c.id), dataset: { control: c.id }, text: c.id + " " + c.name }),
    c.owner, c.frequency, [c.status + (c.excepted ? " (excepted)" : ""), c.status],
  ]));
  $("criterion-empty").textContent = d.inherited.has(cr.id)
    ? "This organisation has no control of its own for it: the operator's instance-wide controls support it."
    : cs.length ? "" : "No control supports this criterion yet: it counts 0 while in scope.";
  show("criterion-detail", true);
  if (opened) $("criterion-title").focus();
}

// wanted is the criterion the address names now ("" for the list), and
// rendered counts the renderings begun: one begun later, for a click or a
// change notice, wins over one still loading, whichever answers first.
let wanted = "";
let rendered = 0;

async function render(id) {
  const mine = ++rendered;
  const d = await load();
  if (mine !== rendered) return;
  message($("criteria-error"), "", true);
  renderList(d);
  show("criteria-list", !id);
  if (id) {
    renderDetail(d, id, id !== current);
  } else {
    show("criterion-detail", false);
  }
  current = id;
}

// A change notice reloads the page when on show.
live.addEventListener("change", () => {
  if (!built || $("criteria").hidden) return;
  render(wanted).catch((err) => message($("criteria-error"), err.message, true));
});

export default {
  id: "criteria",
  title: "Criteria",
  needs: ["compliance.read"],
  async show(sec, rest) {
    if (!built) build(sec);
    wanted = rest ? decodeURIComponent(rest) : "";
    await render(wanted);
  },
};
