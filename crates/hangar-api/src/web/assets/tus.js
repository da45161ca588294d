// A small tus 1.0 client (SPEC §9.1): create the upload, send it in chunks with PATCH, and after a
// failure (or a reload of the page) ask the server with HEAD where it stands and go on from there.
// Upload URLs are kept in localStorage under the file's fingerprint, so a page reloaded mid-upload
// continues when the same file is chosen again.

const VERSION = "1.0.0";
const CHUNK = 8 * 1024 * 1024;
const RETRIES = [500, 1500, 4000, 10000];

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function fingerprint(file, target) {
  return "hangar-tus:" + [target || "attachment", file.name, file.size, file.lastModified].join("|");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One request with XMLHttpRequest (fetch reports no upload progress). */
function send(method, url, headers, body, onSent) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Tus-Resumable", VERSION);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onSent) xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error("network error"));
    xhr.onabort = () => reject(new Error("aborted"));
    xhr.send(body ?? null);
  });
}

function failure(xhr) {
  let text = "upload failed (" + xhr.status + ")";
  try {
    const body = JSON.parse(xhr.responseText);
    if (body.errorText) text = body.errorText;
  } catch {}
  const error = new Error(text);
  error.status = xhr.status;
  return error;
}

/** The path of a `Location` the server answered (always on this origin). */
function samePath(location) {
  const url = new URL(location, window.location.href);
  return url.pathname;
}

/**
 * Uploads `file`. `target` is absent for an attachment, or `space:{spaceId}:{pathId}` for a file of
 * a space's storage. `onProgress(sentBytes, totalBytes)` is called as bytes leave. Resolves with
 * `{attachmentId}` (null for storage files).
 */
export async function tusUpload(file, { target, onProgress } = {}) {
  const key = fingerprint(file, target);
  const progress = (n) => onProgress && onProgress(Math.min(n, file.size), file.size);
  let url = localStorage.getItem(key);
  let offset = 0;
  let attachmentId = null;
  if (url) {
    const head = await send("HEAD", url, {}).catch(() => null);
    if (head && head.status === 200) {
      offset = Number(head.getResponseHeader("Upload-Offset") || 0);
      attachmentId = head.getResponseHeader("Hangar-Attachment-Id");
    } else {
      localStorage.removeItem(key);
      url = null;
    }
  }
  if (!url) {
    const metadata = ["filename " + b64(file.name)];
    if (file.type) metadata.push("filetype " + b64(file.type));
    if (target) metadata.push("target " + b64(target));
    const created = await send("POST", "/api/v1/tus", {
      "Upload-Length": String(file.size),
      "Upload-Metadata": metadata.join(","),
    });
    if (created.status !== 201) throw failure(created);
    url = samePath(created.getResponseHeader("Location"));
    attachmentId = created.getResponseHeader("Hangar-Attachment-Id");
    if (file.size > 0) localStorage.setItem(key, url);
  }
  progress(offset);
  let failures = 0;
  while (offset < file.size) {
    const end = Math.min(offset + CHUNK, file.size);
    try {
      const answer = await send(
        "PATCH",
        url,
        { "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset) },
        file.slice(offset, end),
        (sent) => progress(offset + sent),
      );
      if (answer.status === 204) {
        offset = Number(answer.getResponseHeader("Upload-Offset"));
        failures = 0;
        progress(offset);
        continue;
      }
      if (answer.status !== 409 && answer.status < 500) {
        localStorage.removeItem(key);
        throw failure(answer);
      }
    } catch (e) {
      if (e.status) throw e;
      if (failures >= RETRIES.length) throw e;
    }
    // A lost connection or an offset mismatch: wait, then ask the server where the upload stands.
    await sleep(RETRIES[Math.min(failures, RETRIES.length - 1)]);
    failures += 1;
    const head = await send("HEAD", url, {}).catch(() => null);
    if (head && head.status === 200) {
      offset = Number(head.getResponseHeader("Upload-Offset"));
    } else if (head && head.status === 404) {
      localStorage.removeItem(key);
      throw new Error("the upload expired on the server: start again");
    }
  }
  localStorage.removeItem(key);
  progress(file.size);
  return { attachmentId: attachmentId ? Number(attachmentId) : null };
}
