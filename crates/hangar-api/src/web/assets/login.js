// The login page: POST /api/v1/auth/login, then back to `next` (a path on this server) or the UI.
import { safeNext } from "./next.js";

const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next") || "/");
const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
if (next.startsWith("/oauth/")) document.getElementById("why").hidden = false;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch("/api/v1/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value.trim(), password: form.password.value }),
    });
    if (response.ok) {
      location.assign(next);
      return;
    }
    let text = "Login failed (" + response.status + ")";
    try {
      const body = await response.json();
      if (response.status === 401) text = "Wrong username or password.";
      else if (body.errorText) text = body.errorText;
    } catch {}
    error.textContent = text;
    error.hidden = false;
    form.password.select();
  } catch (e) {
    error.textContent = "The server cannot be reached: " + e.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});
document.getElementById("username").focus();
