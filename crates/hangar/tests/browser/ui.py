"""The web UI in a real browser (driven by tests/web_ui.rs): Debian's Chromium through Playwright.

Argument: a JSON object with the server's base URL, a member's name and password, a space, a channel,
a bearer token, a second origin (served here) allowed by --cors-origins, an OAuth application with
its redirect URI on that origin, and where to put screenshots. Exits non-zero on the first failure.
"""

import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import sys
import threading
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

cfg = json.loads(sys.argv[1])
BASE = cfg["base"]
SHOTS = cfg["screenshots"]
WORK = cfg["work"]
expect.set_options(timeout=30_000)


def step(text):
    print("ok:", text, flush=True)


class OtherOrigin(http.server.BaseHTTPRequestHandler):
    """The second origin: a bare page (no CSP) from which scripts call the API, and the OAuth
    application's redirect target."""

    def do_GET(self):
        body = b"<!doctype html><html><head><title>Elsewhere</title></head><body><p>another origin</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


other = http.server.ThreadingHTTPServer(("127.0.0.1", cfg["otherPort"]), OtherOrigin)
threading.Thread(target=other.serve_forever, daemon=True).start()


def unlabelled(page):
    """Form controls a screen reader could not name."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.outerHTML)"""
    )


def row(page, name):
    return page.locator(f'tr[data-name="{name}"]')


def wait_images(page):
    page.wait_for_function("() => [...document.images].every(i => i.complete)")


def login(page, username, password):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=cfg["chromium"], args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" and not any(t in m.text for t in ("401", "404", "net::ERR_FAILED"))
            else None,
        )

        # Not logged in: the UI sends the browser to the login page.
        page.goto(BASE + "/")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        assert unlabelled(page) == [], unlabelled(page)
        login(page, cfg["username"], "not-the-password")
        expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
        page.screenshot(path=f"{SHOTS}/login.png")
        login(page, cfg["username"], cfg["password"])
        expect(page.locator("#who-name")).to_have_text(cfg["username"])
        step("log in (a wrong password is refused first)")

        page.goto(f"{BASE}/#/files/{cfg['space']}")
        expect(row(page, "hero-banner.png")).to_be_visible()
        expect(row(page, "brand")).to_be_visible()

        # Upload by drag and drop: a `drop` event carrying a DataTransfer, onto the file list. Over
        # 8 MiB, so that the tus client sends it in two PATCH requests.
        dropped = secrets.token_bytes(9 * 1024 * 1024 + 123)
        transfer = page.evaluate_handle(
            """([name, b64]) => {
                const bin = atob(b64);
                const bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, {type: 'application/octet-stream'}));
                return dt;
            }""",
            ["dropped.bin", base64.b64encode(dropped).decode()],
        )
        # The second chunk's first attempt is lost on the way: the client asks the server (HEAD)
        # where the upload stands and goes on from there.
        lost = []

        def lose_once(route):
            offset = route.request.headers.get("upload-offset")
            if route.request.method == "PATCH" and offset not in (None, "0") and not lost:
                lost.append(offset)
                route.abort()
            else:
                route.continue_()

        page.route("**/api/v1/tus/*", lose_once)
        page.dispatch_event(".dropzone", "dragenter", {"dataTransfer": transfer})
        page.dispatch_event(".dropzone", "drop", {"dataTransfer": transfer})
        expect(page.get_by_label("Uploading dropped.bin")).to_be_visible()
        expect(row(page, "dropped.bin").locator(".c-size")).to_have_text("9.0 MiB")
        page.unroute("**/api/v1/tus/*")
        assert lost == [str(8 * 1024 * 1024)], lost
        step("upload by drag and drop (resumed after a lost chunk), listed with its size")

        # Upload with the file picker (its label is the Upload files button).
        picked = b"Picked with the file picker.\n" * 10
        page.get_by_label("Upload files").set_input_files(
            files=[{"name": "picked.txt", "mimeType": "text/plain", "buffer": picked}]
        )
        expect(row(page, "picked.txt").locator(".c-size")).to_have_text(f"{len(picked)} B")
        step("upload with the file picker, listed with its size")
        expect(page.locator(".upload")).to_have_count(0)
        page.evaluate("document.getElementById('toasts').replaceChildren()")
        wait_images(page)
        assert unlabelled(page) == [], unlabelled(page)
        page.screenshot(path=f"{SHOTS}/files.png")

        # Download, byte for byte.
        with page.expect_download() as info:
            page.get_by_label("Download dropped.bin").click()
        with open(info.value.path(), "rb") as f:
            assert f.read() == dropped, "the downloaded bytes differ"
        assert info.value.suggested_filename == "dropped.bin", info.value.suggested_filename
        step("download, byte-exact")

        # Rename, with the keyboard in the dialog.
        page.get_by_label("Rename dropped.bin").click()
        field = page.get_by_label("New path in Design team")
        expect(field).to_be_focused()
        field.fill("dropped-renamed.bin")
        field.press("Enter")
        expect(row(page, "dropped-renamed.bin")).to_be_visible()
        expect(row(page, "dropped.bin")).to_have_count(0)
        step("rename")

        # A share link, opened without any cookie; then revoked.
        page.get_by_label("Share dropped-renamed.bin").click()
        page.get_by_label("Expires after (days, empty for never)").fill("2")
        page.get_by_role("button", name="Create link").click()
        url = page.locator("#secret-value").input_value()
        assert "/s/" in url, url
        page.get_by_role("button", name="Done").click()
        expect(page.locator('.link-list li[data-path="dropped-renamed.bin"]')).to_be_visible()
        stranger = browser.new_context()
        assert stranger.cookies() == []
        answer = stranger.request.get(url)
        assert answer.status == 200, answer.status
        assert answer.body() == dropped, "the share link's bytes differ"
        page.get_by_label("Revoke link to dropped-renamed.bin").click()
        expect(page.locator('.link-list li[data-path="dropped-renamed.bin"]')).to_have_count(0)
        assert stranger.request.get(url).status == 404
        stranger.close()
        step("share link: opened in a fresh context, then revoked")

        # Narrow screen.
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        expect(row(page, "picked.txt")).to_be_visible()
        wait_images(page)
        page.screenshot(path=f"{SHOTS}/files-narrow.png")
        page.set_viewport_size({"width": 1280, "height": 800})

        # A channel: read, then post a message with an attachment.
        page.goto(f"{BASE}/#/channels/{cfg['channel']}")
        expect(page.get_by_text("The banner drafts are in the Design space.")).to_be_visible()
        report = b"Quarterly report\n" + secrets.token_bytes(2000)
        page.get_by_label("Message", exact=True).fill("Here is the report")
        page.get_by_label("Attach files").set_input_files(
            files=[{"name": "report.txt", "mimeType": "text/plain", "buffer": report}]
        )
        expect(page.locator(".chosen li")).to_have_count(1)
        page.get_by_role("button", name="Send").click()
        message = page.locator(".message", has_text="Here is the report")
        expect(message.locator(".att-file")).to_contain_text("report.txt")
        with page.expect_download() as info:
            message.locator(".att-file").click()
        with open(info.value.path(), "rb") as f:
            assert f.read() == report, "the attachment's bytes differ"
        assert unlabelled(page) == [], unlabelled(page)
        page.screenshot(path=f"{SHOTS}/channel.png")
        step("post a message with an attachment, download it back")

        # Issues of a project: read one with its picture, file one with an attachment.
        page.goto(f"{BASE}/#/issues/LAUNCH")
        expect(page.get_by_text("Landing page mock-up")).to_be_visible()
        expect(page.locator('.issue-list li[data-key="LAUNCH-T-1"] img')).to_be_visible()
        page.get_by_label("Title").fill("Upload button is hidden on phones")
        page.get_by_label("Attachments").set_input_files(
            files=[{"name": "phone.txt", "mimeType": "text/plain", "buffer": b"seen on a 390 px screen"}]
        )
        page.get_by_role("button", name="File issue").click()
        filed = page.locator('.issue-list li[data-key="LAUNCH-T-2"]')
        expect(filed).to_contain_text("Upload button is hidden on phones")
        expect(filed.locator(".att-file")).to_contain_text("phone.txt")
        page.evaluate("document.getElementById('toasts').replaceChildren()")
        wait_images(page)
        assert unlabelled(page) == [], unlabelled(page)
        page.screenshot(path=f"{SHOTS}/issues.png")
        step("issues: read with attachments, file one with a file")

        # Tokens: create (shown once), list, revoke.
        page.goto(f"{BASE}/#/tokens")
        page.get_by_label("Name").fill("laptop CLI")
        page.get_by_role("button", name="Create token").click()
        token = page.locator("#secret-value").input_value()
        assert token.startswith("hgr_"), token
        page.get_by_role("button", name="Done").click()
        expect(page.locator('tr[data-name="laptop CLI"]')).to_be_visible()
        assert unlabelled(page) == [], unlabelled(page)
        page.screenshot(path=f"{SHOTS}/tokens.png")
        page.get_by_label("Revoke token laptop CLI").click()
        page.get_by_role("button", name="Revoke", exact=True).click()
        expect(page.locator('tr[data-name="laptop CLI"]')).to_have_count(0)
        step("tokens: create, list, revoke")

        # Everything by keyboard: from the top of the files page, Tab reaches the upload button.
        page.goto(f"{BASE}/#/files/{cfg['space']}")
        expect(row(page, "picked.txt")).to_be_visible()
        page.locator("body").focus()
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "file-picker":
                break
        else:
            raise AssertionError("Tab never reached the file picker")
        step("keyboard: Tab reaches the upload control")

        # Log out: the session ends, the UI asks for a login again.
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login"))
        page.goto(f"{BASE}/#/files")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        step("log out")

        # OAuth code flow through the login page, back to the consent page, then to the app.
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": cfg["clientId"], "redirect_uri": cfg["redirect"],
            "state": "st-42", "code_challenge": challenge, "code_challenge_method": "S256",
        })
        page.goto(f"{BASE}/oauth/auth?{query}")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Foauth%2Fauth"))
        expect(page.locator("#why")).to_be_visible()
        login(page, cfg["username"], cfg["password"])
        expect(page.get_by_role("heading", name="Authorize application")).to_be_visible()
        assert urllib.parse.urlparse(page.url).path == "/oauth/auth", page.url
        expect(page.get_by_text("Calendar sync")).to_be_visible()
        page.screenshot(path=f"{SHOTS}/consent.png")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(cfg["redirect"] + "?*")
        back = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))
        assert back.get("state") == "st-42", back
        form = urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": back["code"],
            "redirect_uri": cfg["redirect"], "code_verifier": verifier,
        }).encode()
        request = urllib.request.Request(BASE + "/oauth/token", data=form, method="POST")
        basic = base64.b64encode(f"{cfg['clientId']}:{cfg['clientSecret']}".encode()).decode()
        request.add_header("Authorization", "Basic " + basic)
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request) as r:
            assert json.load(r)["access_token"].startswith("hgr_")
        step("OAuth consent through the login page, code exchanged")

        # The login page never sends anyone to another site.
        for evil in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]:
            fresh = browser.new_context()
            tab = fresh.new_page()
            tab.goto(BASE + "/login?next=" + urllib.parse.quote(evil, safe=""))
            login(tab, cfg["username"], cfg["password"])
            tab.wait_for_url(BASE + "/")
            fresh.close()
        step("login: no open redirect through next")

        # An administrator's page: members and spaces; a new space made there.
        admin_context = browser.new_context(viewport={"width": 1280, "height": 800})
        tab = admin_context.new_page()
        tab.goto(BASE + "/login")
        login(tab, "admin", cfg["adminPassword"])
        tab.wait_for_url(BASE + "/")
        tab.goto(BASE + "/#/admin")
        expect(tab.locator("#members-title")).to_be_visible()
        expect(tab.get_by_role("row", name=re.compile("Design team"))).to_be_visible()
        tab.get_by_role("button", name="New space").click()
        tab.get_by_label("Name").fill("Marketing")
        tab.get_by_label("Name").press("Enter")
        expect(tab.get_by_role("row", name=re.compile("Marketing"))).to_be_visible()
        assert unlabelled(tab) == [], unlabelled(tab)
        tab.evaluate("document.getElementById('toasts').replaceChildren()")
        tab.screenshot(path=f"{SHOTS}/admin.png")
        admin_context.close()
        step("admin: members and spaces listed, a space created")

        # CORS from a page of another origin (SPEC §9.9).
        elsewhere = browser.new_context()
        # A session cookie in this browser too, which a cross-origin call must not be able to use.
        assert elsewhere.request.post(BASE + "/api/v1/auth/login", data={
            "username": cfg["username"], "password": cfg["password"]}).status == 200
        assert elsewhere.cookies(), "no session cookie"
        tab = elsewhere.new_page()
        tab.goto(cfg["otherOrigin"] + "/")
        pid = base64.urlsafe_b64encode(b"picked.txt").rstrip(b"=").decode()
        result = tab.evaluate(
            """async ([base, space, pid, token]) => {
                const r = await fetch(`${base}/api/v1/space/${space}/storage/${pid}`,
                                      {headers: {Authorization: 'Bearer ' + token}});
                return {status: r.status, etag: r.headers.get('ETag'),
                        disposition: r.headers.get('Content-Disposition'), text: await r.text()};
            }""",
            [BASE, cfg["space"], pid, cfg["token"]],
        )
        assert result["status"] == 200, result
        assert result["etag"], result
        assert result["disposition"] and "picked.txt" in result["disposition"], result
        assert result["text"].encode() == picked
        posted = tab.evaluate(
            """async ([base, channel, token]) => {
                const r = await fetch(`${base}/api/v1/channels/${channel}/messages`, {method: 'POST',
                    headers: {Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'},
                    body: JSON.stringify({text: 'from another origin, with a token'})});
                return r.status;
            }""",
            [BASE, cfg["channel"], cfg["token"]],
        )
        assert posted == 201, posted
        with_cookie = tab.evaluate(
            """async ([base, channel]) => {
                const out = {};
                try {
                    const r = await fetch(`${base}/api/v1/auth/me`, {credentials: 'include'});
                    out.me = r.status;
                } catch (e) { out.me = 'blocked'; }
                try {
                    const r = await fetch(`${base}/api/v1/channels/${channel}/messages`, {method: 'POST',
                        credentials: 'include', headers: {'Content-Type': 'text/plain'},
                        body: JSON.stringify({text: 'forged with a cookie'})});
                    out.post = r.status;
                } catch (e) { out.post = 'blocked'; }
                return out;
            }""",
            [BASE, cfg["channel"]],
        )
        assert with_cookie["me"] in ("blocked", 401), with_cookie
        assert with_cookie["post"] in ("blocked", 401, 403, 415), with_cookie
        check = urllib.request.Request(f"{BASE}/api/v1/channels/{cfg['channel']}/messages")
        check.add_header("Authorization", "Bearer " + cfg["token"])
        with urllib.request.urlopen(check) as r:
            texts = [m["text"] for m in json.load(r)["data"]]
        assert "forged with a cookie" not in texts, texts
        assert "from another origin, with a token" in texts, texts
        elsewhere.close()
        step("CORS: bearer calls work and expose ETag/Content-Disposition; cookie calls are refused")

        assert problems == [], problems
        browser.close()
    other.shutdown()


main()
