// For administrators: members (create, disable) and spaces (create, add members, delete).
import { api, enc } from "./api.js";
import { h, mount, formatSize, formatTime, toast, askForm, confirmAction, icon } from "./dom.js";

export async function showAdmin(ctx) {
  mount(ctx.sidebar);
  if (ctx.me.role !== "admin") {
    mount(ctx.main, h("div", { class: "empty" }, h("h1", {}, "Administrators only")));
    return;
  }
  const [members, spaces] = await Promise.all([api("GET", "/api/v1/members"), api("GET", "/api/v1/spaces")]);
  const act = (fn) => async () => {
    try {
      if ((await fn()) !== false) await showAdmin(ctx);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const newMember = act(async () => {
    const a = await askForm("New member", [
      { name: "username", label: "Username", required: true },
      { name: "displayName", label: "Display name" },
      { name: "password", label: "Password (8 characters or more)", type: "password", required: true },
    ], "Create");
    if (!a) return false;
    await api("POST", "/api/v1/members", { username: a.username.trim(), password: a.password, displayName: a.displayName || undefined });
    toast("Member " + a.username + " created");
  });
  const newSpace = act(async () => {
    const a = await askForm("New space", [
      { name: "name", label: "Name", required: true },
      { name: "quota", label: "Quota in GiB (empty for the default)", type: "number", min: 0 },
    ], "Create");
    if (!a) return false;
    const body = { name: a.name.trim() };
    if (a.quota) body.quotaBytes = Math.round(Number(a.quota) * 1073741824);
    await api("POST", "/api/v1/spaces", body);
    toast("Space " + a.name + " created");
  });
  mount(ctx.main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Administration"))),
    h("section", { class: "panel", "aria-labelledby": "members-title" },
      h("div", { class: "panel-head" }, h("h2", { id: "members-title" }, "Members"),
        h("button", { type: "button", onclick: newMember }, icon("plus"), "New member")),
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["Username", "Name", "Role", "Since"].map((c) => h("th", { scope: "col" }, c)),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, members.data.map((m) => h("tr", {},
          h("th", { scope: "row" }, m.username), h("td", {}, m.displayName || ""), h("td", {}, m.role),
          h("td", {}, formatTime(m.createdUtc)),
          h("td", { class: "c-actions" }, m.username === ctx.me.username ? null :
            h("button", { type: "button", class: "ghost danger", "aria-label": "Disable " + m.username,
              onclick: act(async () => {
                if (!(await confirmAction("Disable " + m.username + "? Their sessions and tokens end.", "Disable"))) return false;
                await api("PATCH", "/api/v1/members/" + enc(m.username), { disabled: true });
              }) }, "Disable")))))))),
    h("section", { class: "panel", "aria-labelledby": "spaces-title" },
      h("div", { class: "panel-head" }, h("h2", { id: "spaces-title" }, "Spaces"),
        h("button", { type: "button", onclick: newSpace }, icon("plus"), "New space")),
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["Name", "Id", "Used", "Quota", "Members"].map((c) => h("th", { scope: "col" }, c)),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, spaces.data.map((s) => h("tr", {},
          h("th", { scope: "row" }, h("a", { href: "#/files/" + enc(s.id) }, s.name)),
          h("td", { class: "mono small" }, s.id),
          h("td", {}, formatSize(s.usedBytes)),
          h("td", {}, s.quotaBytes ? formatSize(s.quotaBytes) : "unlimited"),
          h("td", {}, (s.members || []).join(", ")),
          h("td", { class: "c-actions" }, h("div", { class: "row-actions" },
            h("button", { type: "button", class: "ghost", "aria-label": "Add a member to " + s.name,
              onclick: act(async () => {
                const a = await askForm("Add a member to " + s.name, [{ name: "username", label: "Username", required: true }], "Add");
                if (!a) return false;
                await api("POST", "/api/v1/spaces/" + enc(s.id) + "/members", { username: a.username.trim() });
              }) }, "Add member"),
            h("button", { type: "button", class: "ghost danger", "aria-label": "Delete space " + s.name,
              onclick: act(async () => {
                if (!(await confirmAction("Delete the space " + s.name + " and all its files?"))) return false;
                await api("DELETE", "/api/v1/spaces/" + enc(s.id));
              }) }, "Delete"))))))))));
}
