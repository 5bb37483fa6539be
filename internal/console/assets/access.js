// The access page: who may do what in the tenant. Its parts are users,
// roles, elevations, access reviews and the signed-in person's own
// account, each at its own address (#access/users, #access/user/<id>,
// #access/roles, #access/elevations, #access/reviews,
// #access/review/<id>, #access/me). Everyone signed in sees the page,
// since everyone has an account and may ask for an elevation; each part
// shows only to those who may read it, and each button only to those the
// server would let act.

import { $, el, can, live, session } from "./lib.js";
import { usersView, userView, rolesView } from "./access-users.js";
import elevationsView from "./access-elevations.js";
import { reviewsView, reviewView } from "./access-reviews.js";
import meView from "./access-me.js";

// views are the page's parts; those with a title are tabs, the others
// are a tab's detail and mark it as current. The page opens on the first
// tab that may be shown and has something for the person to do there.
const views = [
  { id: "users", title: "Users", may: () => can("users.read"), show: usersView },
  { id: "user", tab: "users", may: () => can("users.read"), show: userView },
  { id: "roles", title: "Roles", may: () => can("roles.read"), show: rolesView },
  { id: "elevations", title: "Elevations", may: () => true, show: elevationsView,
    lands: () => can("elevation.approve") || (session.me.elevatable || []).length > 0 },
  { id: "reviews", title: "Access reviews", may: () => can("reviews.read"), show: reviewsView },
  { id: "review", tab: "reviews", may: () => can("reviews.read"), show: reviewView },
  { id: "me", title: "My account", may: () => true, show: meView },
];

// refresh reloads the lists of the part on show, after a change notice.
let refresh = null;

function build(sec) {
  sec.replaceChildren(
    el("h2", { id: "access-title", text: "Access" }),
    el("nav", { id: "access-tabs", class: "access-tabs", "aria-label": "Parts of the access page" }),
    el("div", { id: "access-view" }),
  );
}

function tabs(current) {
  $("access-tabs").replaceChildren(...views.filter((v) => v.title && v.may()).map((v) =>
    el("a", { href: "#access/" + v.id, id: "access-tab-" + v.id, text: v.title,
      "aria-current": v.id === current.id || v.id === current.tab ? "page" : "false" })));
}

live.addEventListener("change", () => {
  if (refresh && !$("access").hidden) refresh().catch(() => {});
});

export default {
  id: "access",
  title: "Access",
  needs: [],
  async show(sec, rest) {
    if (!$("access-view")) build(sec);
    const [name, ...arg] = (rest || "").split("/");
    const open = views.filter((v) => v.may());
    const v = open.find((x) => x.id === name && (x.title || arg.length)) ||
      open.find((x) => x.title && (!x.lands || x.lands()));
    tabs(v);
    // Each showing renders into a box of its own, so that one still
    // loading when the person moves on writes into nothing on show.
    const box = el("div", { id: "access-" + v.id + "-view" });
    $("access-view").replaceChildren(box);
    refresh = null;
    try {
      const r = await v.show(box, decodeURIComponent(arg.join("/")));
      if (box.isConnected) refresh = r || null;
    } catch (err) {
      box.append(el("p", { id: "access-error", class: "error", role: "alert", text: err.message }));
    }
  },
};
