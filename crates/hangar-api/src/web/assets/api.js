// Calls to Hangar's public HTTP API with the session cookie. The browser adds `Origin` and
// `Sec-Fetch-Site: same-origin` to every call, which is what the server's CSRF check asks of
// cookie-authenticated changes (SPEC §11).
import { loginUrl } from "./next.js";

export class ApiError extends Error {
  constructor(status, code, text) {
    super(text || "request failed (" + status + ")");
    this.status = status;
    this.code = code;
  }
}

/** `api("GET", "/api/v1/spaces")`: the parsed JSON answer, or throws ApiError. A 401 sends the member
 * to the login page, which comes back here. */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && !path.startsWith("/api/v1/auth/login")) {
    location.assign(loginUrl());
    throw new ApiError(401, "unauthorized", "log in again");
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, json && json.error, json && json.errorText);
  }
  return json;
}

/** The canonical pathId of a storage path: URL-safe base64 of its UTF-8 bytes, without padding. */
export function pathId(path) {
  const bytes = new TextEncoder().encode(path);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export const enc = encodeURIComponent;
