// Where the login page may send a member back to: a path on this server, never another site.
// The server applies the same rule (web::safe_next) to the links it makes.

/** `next` if it is a same-origin path such as `/oauth/auth?…` or `/#/files`, else `/`. */
export function safeNext(next, origin = location.origin) {
  if (typeof next !== "string" || next === "" || next.length > 4096) return "/";
  if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (/[\u0000-\u001f\u007f\\]/.test(next)) return "/";
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin) return "/";
  return url.pathname + url.search + url.hash;
}

/** The login page's address that comes back to `here` afterwards. */
export function loginUrl(here = location.pathname + location.search + location.hash) {
  return "/login?next=" + encodeURIComponent(here);
}
