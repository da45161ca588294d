// Small DOM helpers: every text goes in as text, never as HTML.

/** `h("button", {class: "x", onclick: f}, "text", child…)`. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the children of `node`. */
export function mount(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return bytes + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < units.length - 1);
  return (value >= 10 ? value.toFixed(0) : value.toFixed(1)) + " " + units[unit];
}

export function formatTime(ms) {
  if (!ms) return "";
  const date = new Date(ms);
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: "toast " + kind }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/** A modal dialog with a form; resolves with the form's values, or null when cancelled. */
export function askForm(title, fields, submitLabel = "OK") {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog", class: "dialog-form" });
    form.append(h("h2", {}, title));
    const inputs = {};
    for (const f of fields) {
      const id = "dlg-" + f.name;
      const input = h("input", {
        id,
        name: f.name,
        type: f.type || "text",
        value: f.value ?? "",
        required: f.required,
        min: f.min,
        autocomplete: "off",
      });
      inputs[f.name] = input;
      form.append(h("label", { for: id }, f.label), input);
      if (f.hint) form.append(h("p", { class: "hint" }, f.hint));
    }
    const cancel = h("button", { type: "button" }, "Cancel");
    form.append(h("div", { class: "actions" }, cancel, h("button", { type: "submit", class: "primary" }, submitLabel)));
    const dialog = h("dialog", { "aria-label": title }, form);
    document.body.append(dialog);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", () => finish(null));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const values = {};
      for (const [name, input] of Object.entries(inputs)) values[name] = input.value;
      finish(values);
    });
    dialog.showModal();
    const first = fields.length ? inputs[fields[0].name] : form.querySelector("button.primary");
    first.focus();
    if (first.select) first.select();
  });
}

/** Asks a yes/no question in a modal dialog. */
export async function confirmAction(title, label = "Delete") {
  const answer = await askForm(title, [], label);
  return answer !== null;
}

/** Shows a secret once (a new token, a share link's URL) with a copy button. */
export function showSecret(title, text, explanation) {
  const input = h("input", { id: "secret-value", readonly: true, value: text, class: "mono" });
  const copy = h("button", { type: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch {
      document.execCommand("copy");
    }
  });
  const close = h("button", { type: "button", class: "primary" }, "Done");
  const dialog = h(
    "dialog",
    { "aria-label": title },
    h("div", { class: "dialog-form" },
      h("h2", {}, title),
      explanation ? h("p", { class: "hint" }, explanation) : null,
      h("label", { for: "secret-value" }, "Value"),
      h("div", { class: "row" }, input, copy),
      h("div", { class: "actions" }, close)),
  );
  document.body.append(dialog);
  close.addEventListener("click", () => {
    dialog.close();
    dialog.remove();
  });
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  input.focus();
  input.select();
}

const ICONS = {
  folder: "M3 6.5A1.5 1.5 0 0 1 4.5 5h4l2 2h9A1.5 1.5 0 0 1 21 8.5v9a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z",
  file: "M6 3h8l5 5v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm8 0v5h5",
  download: "M12 4v11m0 0-4.5-4.5M12 15l4.5-4.5M5 19h14",
  upload: "M12 19V8m0 0-4.5 4.5M12 8l4.5 4.5M5 5h14",
  rename: "M4 20h4L19 9l-4-4L4 16zm9-13 4 4",
  share: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  trash: "M5 7h14M10 7V4h4v3m-7 0 1 13h8l1-13",
  paperclip: "M20 11.5 12 19.5a5 5 0 0 1-7-7l8-8a3.3 3.3 0 0 1 4.7 4.7l-8 8a1.7 1.7 0 0 1-2.4-2.4l7.3-7.3",
  hash: "M9 4 7 20M17 4l-2 16M4 9h16M3 15h16",
  plus: "M12 5v14M5 12h14",
  key: "M14.5 9.5a4.5 4.5 0 1 1-3.2 7.7L10 18.5H8v2H6v2H3v-3l6.8-6.8a4.5 4.5 0 0 1 4.7-3.2z",
};

/** A 20px line icon, hidden from screen readers (the control around it carries the name). */
export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name] || ICONS.file);
  svg.append(path);
  return svg;
}
