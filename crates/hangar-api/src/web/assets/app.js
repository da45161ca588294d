// The web UI's shell: who is logged in, the sections, and a router over `location.hash`
// (`#/files/{space}/{dir…}`, `#/channels/{id}`, `#/issues/{project}`, `#/tokens`, `#/admin`).
import { api } from "./api.js";
import { h, mount, toast } from "./dom.js";
import { showFiles } from "./files.js";
import { showChannels } from "./chat.js";
import { showTokens } from "./tokens.js";
import { showIssues } from "./issues.js";
import { showAdmin } from "./admin.js";
import { loginUrl } from "./next.js";

const ctx = { me: null, main: null, sidebar: null };

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const parts = hash.split("/").filter((p) => p !== "").map(decodeURIComponent);
  return { section: parts[0] || "files", rest: parts.slice(1) };
}

let rendering = 0;

/** Shows the view the hash names. Each view renders into fresh elements that replace the shown ones
 * only if no later navigation started meanwhile, so a slow view never overwrites a newer one. */
async function render(focus) {
  const seq = ++rendering;
  const { section, rest } = route();
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const views = { files: showFiles, channels: showChannels, issues: showIssues, tokens: showTokens, admin: showAdmin };
  const view = views[section] || showFiles;
  const target = { me: ctx.me, main: ctx.main.cloneNode(false), sidebar: ctx.sidebar.cloneNode(false) };
  try {
    await view(target, rest);
  } catch (e) {
    if (e.status === 401) return;
    mount(target.main, h("div", { class: "empty" }, h("h1", {}, "Something went wrong"), h("p", {}, e.message)));
  }
  if (seq !== rendering) return;
  document.body.dataset.section = section;
  ctx.main.replaceWith(target.main);
  ctx.sidebar.replaceWith(target.sidebar);
  ctx.main = target.main;
  ctx.sidebar = target.sidebar;
  if (focus) {
    const heading = ctx.main.querySelector("h1");
    (heading || ctx.main).setAttribute("tabindex", "-1");
    (heading || ctx.main).focus({ preventScroll: true });
  }
}

async function start() {
  ctx.main = document.getElementById("main");
  ctx.sidebar = document.getElementById("sidebar");
  try {
    ctx.me = await api("GET", "/api/v1/auth/me");
  } catch (e) {
    if (e.status !== 401) location.assign(loginUrl());
    return;
  }
  document.getElementById("who-name").textContent = ctx.me.displayName || ctx.me.username;
  if (ctx.me.role === "admin") document.querySelector('[data-section="admin"]').hidden = false;
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/api/v1/auth/logout");
    } catch (e) {
      toast(e.message, "error");
    }
    location.assign("/login");
  });
  window.addEventListener("hashchange", () => render(true));
  await render(false);
}

start();
