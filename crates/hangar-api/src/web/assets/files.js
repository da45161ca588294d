// The file browser: the spaces the member can see, a directory's entries with image previews,
// uploads by drag and drop or file picker through tus (into the directory shown), download,
// rename/move, delete, and share links.
import { api, pathId, enc } from "./api.js";
import { h, mount, formatSize, formatTime, toast, askForm, confirmAction, showSecret, icon } from "./dom.js";
import { tusUpload } from "./tus.js";

let spacesCache = null;

async function spaces() {
  if (!spacesCache) spacesCache = (await api("GET", "/api/v1/spaces")).data;
  return spacesCache;
}

function dirHref(spaceId, dir) {
  const parts = dir ? dir.split("/").map(enc) : [];
  return "#/files/" + [enc(spaceId), ...parts].join("/");
}

function renderSidebar(ctx, list, current) {
  mount(
    ctx.sidebar,
    h("h2", { class: "side-title" }, "Spaces"),
    list.length === 0 ? h("p", { class: "muted small" }, "No spaces yet.") : null,
    h("ul", { class: "side-list" },
      list.map((s) =>
        h("li", {},
          h("a", { href: dirHref(s.id, ""), "aria-current": s.id === current ? "page" : null },
            icon("folder"),
            h("span", { class: "grow" }, s.name),
            h("span", { class: "count" }, formatSize(s.usedBytes)))))),
  );
}

export async function showFiles(ctx, rest) {
  const list = await spaces();
  const spaceId = rest[0] || (list[0] && list[0].id);
  renderSidebar(ctx, list, spaceId);
  if (!spaceId) {
    mount(ctx.main, h("div", { class: "empty" },
      h("h1", {}, "No spaces"),
      h("p", {}, ctx.me.role === "admin"
        ? "Create a space in Admin, then upload files to it."
        : "An administrator has not added you to a space yet.")));
    return;
  }
  const space = list.find((s) => s.id === spaceId) || { id: spaceId, name: spaceId };
  const dir = rest.slice(1).join("/");
  await new Browser(ctx, space, dir).show();
}

class Browser {
  constructor(ctx, space, dir) {
    this.ctx = ctx;
    this.space = space;
    this.dir = dir;
    this.entries = [];
    this.next = null;
  }

  base() {
    return "/api/v1/space/" + enc(this.space.id) + "/storage";
  }

  fileUrl(entry, suffix = "") {
    return this.base() + "/" + entry.id + suffix;
  }

  async load(more) {
    const query = new URLSearchParams({ limit: "200" });
    if (this.dir) query.set("dir", pathId(this.dir));
    if (more && this.next) query.set("cursor", this.next);
    const page = await api("GET", this.base() + "?" + query);
    this.entries = more ? this.entries.concat(page.data) : page.data;
    this.next = page.next;
  }

  async show() {
    await this.load(false);
    const crumbs = [h("a", { href: dirHref(this.space.id, "") }, this.space.name)];
    let acc = "";
    for (const part of this.dir ? this.dir.split("/") : []) {
      acc = acc ? acc + "/" + part : part;
      crumbs.push(h("span", { class: "sep", "aria-hidden": "true" }, "/"), h("a", { href: dirHref(this.space.id, acc) }, part));
    }
    crumbs[crumbs.length - 1].setAttribute("aria-current", "page");
    const picker = h("input", { type: "file", id: "file-picker", multiple: true, class: "visually-hidden" });
    picker.addEventListener("change", () => {
      this.upload([...picker.files]);
      picker.value = "";
    });
    this.progress = h("ul", { class: "uploads", "aria-label": "Uploads" });
    this.table = h("div", { class: "table-wrap" });
    this.drop = h("section", { class: "dropzone", "aria-label": "Files; drop files here to upload them to this folder" },
      this.table,
      h("p", { class: "drop-hint" }, icon("upload"), "Drop files anywhere on the list to upload them here"));
    this.wireDrop(this.drop);
    this.quota = h("span", { class: "muted small" });
    this.renderQuota();
    this.links = h("section", { class: "panel", "aria-labelledby": "links-title" });
    mount(this.ctx.main,
      h("div", { class: "page-head" },
        h("div", {},
          this.dir ? h("nav", { class: "crumbs", "aria-label": "Folder" }, crumbs) : null,
          h("h1", {}, this.dir ? this.dir.split("/").pop() : this.space.name),
          this.quota),
        h("div", { class: "toolbar" },
          picker,
          h("label", { for: "file-picker", class: "button primary" }, icon("upload"), "Upload files"))),
      this.progress,
      this.drop,
      this.links);
    this.renderTable();
    await this.renderLinks();
  }

  renderQuota() {
    const used = formatSize(this.space.usedBytes || 0);
    this.quota.textContent = this.space.quotaBytes
      ? used + " of " + formatSize(this.space.quotaBytes) + " used"
      : used + " used";
  }

  wireDrop(zone) {
    let depth = 0;
    zone.addEventListener("dragenter", (e) => {
      e.preventDefault();
      depth += 1;
      zone.classList.add("over");
    });
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("over");
    });
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove("over");
      const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
      if (files.length) this.upload(files);
    });
  }

  renderTable() {
    if (this.entries.length === 0) {
      mount(this.table, h("div", { class: "empty small" }, icon("folder"), h("p", {}, "This folder is empty."),
        h("p", { class: "muted" }, "Drop files here, or use Upload files.")));
      return;
    }
    const rows = this.entries.map((e) => this.row(e));
    const more = this.next
      ? h("button", { type: "button", class: "ghost", onclick: async () => { await this.load(true); this.renderTable(); } }, "Show more")
      : null;
    mount(this.table,
      h("table", { class: "files" },
        h("caption", { class: "visually-hidden" }, "Files in " + (this.dir || this.space.name)),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col", class: "c-name" }, "Name"),
          h("th", { scope: "col", class: "c-size" }, "Size"),
          h("th", { scope: "col", class: "c-date" }, "Modified"),
          h("th", { scope: "col", class: "c-actions" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, rows)),
      more);
  }

  row(entry) {
    const isDir = entry.kind === "dir";
    let thumb;
    if (isDir) {
      thumb = h("span", { class: "thumb dir" }, icon("folder"));
    } else if ((entry.type || "").startsWith("image/")) {
      const img = h("img", { src: this.fileUrl(entry, "/preview?size=64"), alt: "", loading: "lazy", width: 36, height: 36 });
      img.addEventListener("error", () => img.replaceWith(icon("file")));
      thumb = h("span", { class: "thumb" }, img);
    } else {
      thumb = h("span", { class: "thumb" }, icon("file"));
    }
    const name = isDir
      ? h("a", { href: dirHref(this.space.id, entry.path), class: "name" }, entry.name)
      : h("a", { href: this.fileUrl(entry), download: entry.name, class: "name" }, entry.name);
    const button = (label, iconName, action, cls = "") =>
      h("button", { type: "button", class: "icon-button " + cls, "aria-label": label + " " + entry.name, title: label, onclick: action }, icon(iconName));
    return h("tr", { dataset: { name: entry.name, kind: entry.kind } },
      h("td", { class: "c-name" }, h("div", { class: "name-cell" }, thumb, h("div", { class: "name-text" }, name,
        !isDir ? h("span", { class: "sub" }, entry.type || "") : null))),
      h("td", { class: "c-size" }, isDir ? "—" : formatSize(entry.size)),
      h("td", { class: "c-date" }, h("time", { datetime: new Date(entry.lastModifiedUtc || 0).toISOString() }, formatTime(entry.lastModifiedUtc))),
      h("td", { class: "c-actions" }, h("div", { class: "row-actions" },
        !isDir ? h("a", { class: "icon-button", href: this.fileUrl(entry), download: entry.name, "aria-label": "Download " + entry.name, title: "Download" }, icon("download")) : null,
        button("Rename", "rename", () => this.rename(entry)),
        !isDir ? button("Share", "share", () => this.share(entry)) : null,
        button("Delete", "trash", () => this.remove(entry), "danger"))));
  }

  async refresh() {
    spacesCache = null;
    const list = await spaces();
    this.space = list.find((s) => s.id === this.space.id) || this.space;
    renderSidebar(this.ctx, list, this.space.id);
    this.renderQuota();
    await this.load(false);
    this.renderTable();
  }

  async upload(files) {
    const jobs = files.map((file) => {
      const path = this.dir ? this.dir + "/" + file.name : file.name;
      const bar = h("progress", { max: 100, value: 0, "aria-label": "Uploading " + file.name });
      const status = h("span", { class: "status" }, "waiting");
      const item = h("li", { class: "upload" }, h("span", { class: "up-name" }, file.name), bar, status);
      this.progress.append(item);
      return { file, path, bar, status, item };
    });
    for (const job of jobs) {
      try {
        await tusUpload(job.file, {
          target: "space:" + this.space.id + ":" + pathId(job.path),
          onProgress: (sent, total) => {
            const pct = total ? Math.round((sent * 100) / total) : 100;
            job.bar.value = pct;
            job.status.textContent = pct + "% · " + formatSize(sent) + " of " + formatSize(total);
          },
        });
        job.bar.value = 100;
        job.status.textContent = "done";
        job.item.classList.add("done");
        setTimeout(() => job.item.remove(), 3000);
      } catch (e) {
        job.status.textContent = e.message;
        job.item.classList.add("failed");
        toast("Upload of " + job.file.name + " failed: " + e.message, "error");
      }
    }
    await this.refresh();
    const done = jobs.filter((j) => j.item.classList.contains("done")).length;
    if (done) toast(done === 1 ? "Uploaded " + jobs[0].file.name : "Uploaded " + done + " files");
  }

  async rename(entry) {
    const answer = await askForm("Rename or move", [
      { name: "to", label: "New path in " + this.space.name, value: entry.path, required: true,
        hint: "Use / to move it into another folder, e.g. archive/" + entry.name },
    ], "Rename");
    if (!answer || answer.to === entry.path) return;
    try {
      await api("POST", this.fileUrl(entry, "/move"), { to: answer.to.trim() });
      toast("Renamed to " + answer.to);
      await this.refresh();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async remove(entry) {
    const what = entry.kind === "dir" ? "the folder " + entry.name + " and everything in it" : entry.name;
    if (!(await confirmAction("Delete " + what + "?"))) return;
    try {
      await api("DELETE", this.fileUrl(entry, entry.kind === "dir" ? "?recursive=true" : ""));
      toast("Deleted " + entry.name);
      await this.refresh();
      await this.renderLinks();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async share(entry) {
    const answer = await askForm("Share " + entry.name, [
      { name: "days", label: "Expires after (days, empty for never)", type: "number", min: 1, value: "7" },
      { name: "password", label: "Password (optional)", type: "password" },
      { name: "max", label: "Most downloads (optional)", type: "number", min: 1 },
    ], "Create link");
    if (!answer) return;
    const body = { spaceId: this.space.id, pathId: entry.id };
    if (answer.days) body.expiresAt = Date.now() + Number(answer.days) * 86400000;
    if (answer.password) body.password = answer.password;
    if (answer.max) body.maxDownloads = Number(answer.max);
    try {
      const link = await api("POST", "/api/v1/share-links", body);
      showSecret("Share link created", link.url, "Anyone with this link can download " + entry.name + ". It is shown only once.");
      await this.renderLinks();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async renderLinks() {
    const all = (await api("GET", "/api/v1/share-links")).data.filter((l) => l.spaceId === this.space.id);
    if (all.length === 0) {
      mount(this.links);
      this.links.hidden = true;
      return;
    }
    this.links.hidden = false;
    mount(this.links,
      h("h2", { id: "links-title" }, "Share links in this space"),
      h("ul", { class: "link-list" }, all.map((l) =>
        h("li", { dataset: { path: l.path } },
          icon("share"),
          h("span", { class: "grow" }, h("strong", {}, l.path),
            h("span", { class: "muted small" },
              " · " + l.downloads + (l.maxDownloads ? "/" + l.maxDownloads : "") + " downloads" +
              (l.expiresAt ? " · expires " + formatTime(l.expiresAt) : "") +
              (l.hasPassword ? " · password" : "") + (l.active ? "" : " · inactive"))),
          h("button", { type: "button", class: "ghost danger", "aria-label": "Revoke link to " + l.path,
            onclick: async () => {
              try {
                await api("DELETE", "/api/v1/share-links/" + l.id);
                toast("Link revoked");
                await this.renderLinks();
              } catch (e) {
                toast(e.message, "error");
              }
            } }, "Revoke")))));
  }
}
