// The member's personal tokens: list, create (shown once), revoke.
import { api } from "./api.js";
import { h, mount, formatTime, toast, showSecret, confirmAction, icon } from "./dom.js";

export async function showTokens(ctx) {
  mount(ctx.sidebar);
  const tokens = (await api("GET", "/api/v1/me/tokens")).data;
  const name = h("input", { id: "token-name", required: true, placeholder: "e.g. laptop CLI", autocomplete: "off" });
  const scope = h("select", { id: "token-scope" },
    h("option", { value: "**" }, "Read and write"),
    h("option", { value: "read" }, "Read only"));
  const days = h("input", { id: "token-days", type: "number", min: 1, placeholder: "never", inputmode: "numeric" });
  const form = h("form", { class: "panel form-grid", "aria-labelledby": "new-token-title" },
    h("h2", { id: "new-token-title" }, "New token"),
    h("div", { class: "field" }, h("label", { for: "token-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "token-scope" }, "Scope"), scope),
    h("div", { class: "field" }, h("label", { for: "token-days" }, "Expires after (days)"), days),
    h("div", { class: "field end" }, h("button", { type: "submit", class: "primary" }, icon("key"), "Create token")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      name.focus();
      return;
    }
    const body = { name: name.value.trim(), scope: scope.value };
    if (days.value) body.expires = Date.now() + Number(days.value) * 86400000;
    try {
      const created = await api("POST", "/api/v1/me/tokens", body);
      showSecret("Token created", created.token, "Copy it now: it is shown only once. Use it as `Authorization: Bearer …`.");
      await showTokens(ctx);
    } catch (err) {
      toast(err.message, "error");
    }
  });
  const rows = tokens.map((t) => h("tr", { dataset: { name: t.name } },
    h("th", { scope: "row" }, t.name),
    h("td", {}, t.scope === "**" ? "everything" : t.scope),
    h("td", {}, formatTime(t.createdUtc)),
    h("td", {}, t.lastUsedUtc ? formatTime(t.lastUsedUtc) : "never"),
    h("td", {}, t.expires ? formatTime(t.expires) : "never"),
    h("td", { class: "c-actions" }, h("button", { type: "button", class: "ghost danger", "aria-label": "Revoke token " + t.name,
      onclick: async () => {
        if (!(await confirmAction("Revoke the token " + t.name + "?", "Revoke"))) return;
        try {
          await api("DELETE", "/api/v1/me/tokens/" + t.id);
          toast("Token revoked");
          await showTokens(ctx);
        } catch (err) {
          toast(err.message, "error");
        }
      } }, "Revoke"))));
  mount(ctx.main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Personal tokens"),
      h("p", { class: "muted small" }, "For the hangar command-line client, scripts and integrations."))),
    form,
    h("section", { class: "panel", "aria-labelledby": "tokens-title" },
      h("h2", { id: "tokens-title" }, "Your tokens"),
      tokens.length === 0 ? h("p", { class: "muted" }, "No tokens yet.") :
        h("div", { class: "table-wrap" }, h("table", { class: "grid" },
          h("thead", {}, h("tr", {}, ["Name", "Scope", "Created", "Last used", "Expires"].map((c) => h("th", { scope: "col" }, c)),
            h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
          h("tbody", {}, rows)))));
}
