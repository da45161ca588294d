// Issues: the projects the member can see, a project's issues with their attachments, and a form
// that files a new issue with files (uploaded through tus first).
import { api, enc } from "./api.js";
import { h, mount, formatSize, formatTime, toast, icon } from "./dom.js";
import { tusUpload } from "./tus.js";

function attachmentLink(a) {
  const url = "/api/v1/attachments/" + a.attachmentId + "/" + enc(a.fileName);
  if ((a.contentType || "").startsWith("image/")) {
    const img = h("img", { src: "/api/v1/attachments/" + a.attachmentId + "/preview?size=256", alt: a.fileName, loading: "lazy" });
    const link = h("a", { class: "att-image", href: url, download: a.fileName, "aria-label": "Download " + a.fileName }, img);
    img.addEventListener("error", () => link.replaceWith(chip(a, url)));
    return link;
  }
  return chip(a, url);
}

function chip(a, url) {
  return h("a", { class: "att-file", href: url, download: a.fileName },
    icon("file"), h("span", {}, a.fileName), h("span", { class: "muted small" }, formatSize(a.fileSize)));
}

export async function showIssues(ctx, rest) {
  const projects = (await api("GET", "/api/http/projects")).data;
  const key = rest[0] || (projects[0] && projects[0].key);
  mount(ctx.sidebar,
    h("h2", { class: "side-title" }, "Projects"),
    projects.length === 0 ? h("p", { class: "muted small" }, "No projects yet.") : null,
    h("ul", { class: "side-list" }, projects.map((p) =>
      h("li", {}, h("a", { href: "#/issues/" + enc(p.key), "aria-current": p.key === key ? "page" : null },
        h("span", { class: "key" }, p.key), h("span", { class: "grow" }, p.name))))));
  if (!key) {
    mount(ctx.main, h("div", { class: "empty" }, h("h1", {}, "No projects"),
      h("p", {}, "You are not a member of any project yet.")));
    return;
  }
  const project = projects.find((p) => p.key === key) || { key, name: key };
  const base = "/api/http/projects/key:" + enc(key) + "/planning/issues";
  let issues = [];
  for (let skip = 0; ; ) {
    const page = await api("GET", base + "?$top=1000&$skip=" + skip);
    issues = issues.concat(page.data);
    if (!page.next) break;
    skip = Number(page.next);
  }
  const title = h("input", { id: "issue-title", required: true, autocomplete: "off" });
  const status = h("input", { id: "issue-status", value: "Open", autocomplete: "off" });
  const files = h("input", { id: "issue-files", type: "file", multiple: true });
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Uploading the issue's files" });
  const submit = h("button", { type: "submit", class: "primary" }, icon("plus"), "File issue");
  const form = h("form", { class: "panel form-grid issue-form", "aria-labelledby": "new-issue-title" },
    h("h2", { id: "new-issue-title" }, "New issue"),
    h("div", { class: "field" }, h("label", { for: "issue-title" }, "Title"), title),
    h("div", { class: "field" }, h("label", { for: "issue-status" }, "Status"), status),
    h("div", { class: "field" }, h("label", { for: "issue-files" }, "Attachments"), files),
    h("div", { class: "field end" }, submit),
    progress);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!title.value.trim()) {
      title.focus();
      return;
    }
    submit.disabled = true;
    try {
      const attachments = [];
      const chosen = [...files.files];
      const total = chosen.reduce((n, f) => n + f.size, 0) || 1;
      let done = 0;
      progress.hidden = chosen.length === 0;
      for (const file of chosen) {
        const { attachmentId } = await tusUpload(file, {
          onProgress: (sent) => { progress.value = ((done + sent) * 100) / total; },
        });
        done += file.size;
        attachments.push({ className: "FileAttachment", id: attachmentId, filename: file.name, sizeBytes: file.size });
      }
      const issue = await api("POST", base, { title: title.value.trim(), status: status.value.trim() || "Open", attachments });
      toast("Filed " + issue.key);
      await showIssues(ctx, [key]);
    } catch (err) {
      toast(err.message, "error");
      submit.disabled = false;
    }
  });
  mount(ctx.main,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, project.name),
      h("span", { class: "muted small" }, key + " · " + issues.length + (issues.length === 1 ? " issue" : " issues")))),
    h("section", { class: "panel", "aria-labelledby": "issues-title" },
      h("h2", { id: "issues-title" }, "Issues"),
      issues.length === 0 ? h("p", { class: "muted" }, "No issues yet.") :
        h("ul", { class: "issue-list" }, issues.slice().reverse().map((i) =>
          h("li", { dataset: { key: i.key } },
            h("div", { class: "issue-head" },
              h("span", { class: "key" }, i.key),
              h("strong", { class: "grow" }, i.title),
              h("span", { class: "badge" }, i.status),
              h("span", { class: "muted small" }, formatTime(i.createdUtc))),
            i.attachments.length ? h("div", { class: "attachments" }, i.attachments.map(attachmentLink)) : null)))),
    form);
}
