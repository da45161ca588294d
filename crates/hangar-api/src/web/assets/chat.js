// Channels: the member's channels, a channel's messages with their attachments (image previews,
// downloads), and a composer that uploads files through tus and posts them with the message.
import { api, enc } from "./api.js";
import { h, mount, formatSize, formatTime, toast, askForm, icon } from "./dom.js";
import { tusUpload } from "./tus.js";

async function renderSidebar(ctx, current) {
  const channels = (await api("GET", "/api/v1/channels")).data;
  mount(ctx.sidebar,
    h("div", { class: "side-head" },
      h("h2", { class: "side-title" }, "Channels"),
      h("button", { type: "button", class: "icon-button", "aria-label": "New channel", title: "New channel",
        onclick: () => newChannel() }, icon("plus"))),
    channels.length === 0 ? h("p", { class: "muted small" }, "No channels yet.") : null,
    h("ul", { class: "side-list" }, channels.map((c) =>
      h("li", {}, h("a", { href: "#/channels/" + c.id, "aria-current": String(c.id) === current ? "page" : null },
        icon("hash"), h("span", { class: "grow" }, c.name))))));
  return channels;
}

async function newChannel() {
  const answer = await askForm("New channel", [
    { name: "name", label: "Name", required: true },
    { name: "members", label: "Members (usernames, separated by commas)", hint: "You are a member of the channels you create." },
  ], "Create");
  if (!answer || !answer.name.trim()) return;
  const members = answer.members.split(",").map((m) => m.trim()).filter(Boolean);
  try {
    const channel = await api("POST", "/api/v1/channels", { name: answer.name.trim(), members });
    location.hash = "#/channels/" + channel.id;
  } catch (e) {
    toast(e.message, "error");
  }
}

export async function showChannels(ctx, rest) {
  const channels = await renderSidebar(ctx, rest[0]);
  const id = rest[0] || (channels[0] && String(channels[0].id));
  if (!id) {
    mount(ctx.main, h("div", { class: "empty" }, h("h1", {}, "No channels"),
      h("p", {}, "Start a conversation with New channel."),
      h("button", { type: "button", class: "primary", onclick: () => newChannel() }, icon("plus"), "New channel")));
    return;
  }
  if (!rest[0]) {
    await renderSidebar(ctx, id);
  }
  const channel = channels.find((c) => String(c.id) === id) || (await api("GET", "/api/v1/channels/" + enc(id)));
  await new ChannelView(ctx, channel).show();
}

function attachmentView(a) {
  const url = "/api/v1/attachments/" + a.attachmentId + "/" + enc(a.fileName);
  if ((a.contentType || "").startsWith("image/")) {
    const img = h("img", { src: "/api/v1/attachments/" + a.attachmentId + "/preview?size=256", alt: a.fileName, loading: "lazy" });
    const figure = h("a", { class: "att-image", href: url, download: a.fileName, "aria-label": "Download " + a.fileName }, img);
    img.addEventListener("error", () => figure.replaceWith(fileChip(a, url)));
    return figure;
  }
  return fileChip(a, url);
}

function fileChip(a, url) {
  return h("a", { class: "att-file", href: url, download: a.fileName },
    icon("file"), h("span", {}, a.fileName), h("span", { class: "muted small" }, formatSize(a.fileSize)));
}

class ChannelView {
  constructor(ctx, channel) {
    this.ctx = ctx;
    this.channel = channel;
    this.files = [];
  }

  async show() {
    this.list = h("ol", { class: "messages", "aria-label": "Messages" });
    const text = h("textarea", { id: "message-text", rows: 2, placeholder: "Write a message…" });
    const picker = h("input", { type: "file", id: "message-files", multiple: true, class: "visually-hidden" });
    this.chosen = h("ul", { class: "chosen", "aria-label": "Files to send" });
    picker.addEventListener("change", () => {
      this.files.push(...picker.files);
      picker.value = "";
      this.renderChosen();
    });
    const send = h("button", { type: "submit", class: "primary" }, "Send");
    const form = h("form", { class: "composer", "aria-label": "New message" },
      h("label", { for: "message-text", class: "visually-hidden" }, "Message"),
      text,
      this.chosen,
      h("div", { class: "composer-bar" },
        picker,
        h("label", { for: "message-files", class: "button ghost" }, icon("paperclip"), "Attach files"),
        h("span", { class: "grow" }),
        send));
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!text.value.trim() && this.files.length === 0) return;
      send.disabled = true;
      try {
        await this.post(text.value);
        text.value = "";
        this.files = [];
        this.renderChosen();
        await this.load();
      } catch (err) {
        toast(err.message, "error");
      } finally {
        send.disabled = false;
        text.focus();
      }
    });
    mount(this.ctx.main,
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, h("span", { class: "muted" }, "# "), this.channel.name),
          h("span", { class: "muted small" }, (this.channel.members || []).length + " members"))),
      h("div", { class: "chat" }, this.list, form));
    await this.load();
  }

  renderChosen() {
    mount(this.chosen, this.files.map((f, i) => h("li", {},
      icon("file"), h("span", { class: "grow" }, f.name), h("span", { class: "muted small" }, formatSize(f.size)),
      h("progress", { max: 100, value: 0, "aria-label": "Uploading " + f.name, hidden: true }),
      h("button", { type: "button", class: "icon-button", "aria-label": "Remove " + f.name,
        onclick: () => { this.files.splice(i, 1); this.renderChosen(); } }, "×"))));
  }

  async post(text) {
    const attachments = [];
    const bars = [...this.chosen.querySelectorAll("progress")];
    for (const [i, file] of this.files.entries()) {
      const bar = bars[i];
      if (bar) bar.hidden = false;
      const { attachmentId } = await tusUpload(file, {
        onProgress: (sent, total) => { if (bar) bar.value = total ? (sent * 100) / total : 100; },
      });
      attachments.push({ className: "FileAttachment", id: attachmentId, filename: file.name, sizeBytes: file.size });
    }
    await api("POST", "/api/v1/channels/" + this.channel.id + "/messages", { text, attachments });
  }

  async load() {
    let messages = [];
    let cursor = "";
    // Every page, oldest first (channels here are small; the API pages by 500 at most).
    for (;;) {
      const page = await api("GET", "/api/v1/channels/" + this.channel.id + "/messages?limit=500" + (cursor ? "&cursor=" + enc(cursor) : ""));
      messages = messages.concat(page.data);
      if (!page.next) break;
      cursor = page.next;
    }
    if (messages.length === 0) {
      mount(this.list, h("li", { class: "empty small" }, "No messages yet. Say hello."));
      return;
    }
    mount(this.list, messages.map((m) =>
      h("li", { class: "message" },
        h("div", { class: "avatar", "aria-hidden": "true" }, (m.author || "?").slice(0, 1).toUpperCase()),
        h("div", { class: "body" },
          h("div", { class: "meta" }, h("strong", {}, m.author), " ",
            h("time", { datetime: new Date(m.createdUtc).toISOString(), class: "muted small" }, formatTime(m.createdUtc))),
          m.text ? h("p", { class: "text" }, m.text) : null,
          m.attachments.length ? h("div", { class: "attachments" }, m.attachments.map(attachmentView)) : null))));
    // After the view is attached (it may render detached first).
    requestAnimationFrame(() => { this.list.scrollTop = this.list.scrollHeight; });
  }
}
