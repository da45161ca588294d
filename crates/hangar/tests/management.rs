//! The management API over real HTTP: sessions and CSRF, personal tokens, members, spaces, channels and
//! messages, projects and issues, JSON errors, and the configuration contract (SPEC §1–5, §11).

mod common;
use common::*;

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts the status and answers the JSON body.
async fn expect_json(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
}

/// The `Set-Cookie` header that sets the session cookie.
fn session_set_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hangar_session="))
        .map(str::to_string)
}

/// The value of `hangar_session=VALUE; …`.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim()
        .strip_prefix("hangar_session=")
        .unwrap()
        .to_string()
}

/// The attributes of a `Set-Cookie` header, lowercased, without the name=value pair.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// A browser-like caller authenticated only by the session cookie (no cookie store: the header is
/// sent explicitly so that every test controls it).
struct Session {
    base: String,
    http: Client,
    cookie: String,
}

impl Session {
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("cookie", format!("hangar_session={}", self.cookie))
    }
    fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }
    fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }
}

async fn login_response(server: &impl Base, username: &str, password: &str) -> Response {
    Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Logs in and answers the session.
async fn session(server: &impl Base, username: &str, password: &str) -> Session {
    let r = login_response(server, username, password).await;
    assert_eq!(r.status(), 200, "login as {username}");
    let set_cookie = session_set_cookie(&r).expect("login sets the session cookie");
    Session {
        base: server.base().to_string(),
        http: Client::new(),
        cookie: cookie_value(&set_cookie),
    }
}

fn member_password(username: &str) -> String {
    format!("{username}-password")
}

/// Names of the channels the caller sees.
async fn channel_names(user: &User) -> Vec<String> {
    let body = expect_json(user.get("/api/v1/channels").send().await.unwrap(), 200).await;
    body["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("an array, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Every string anywhere in a JSON value.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Value::Object(map) => map.iter().for_each(|(k, i)| {
            out.push(k.clone());
            all_strings(i, out)
        }),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Sessions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_sets_an_httponly_lax_session_cookie_and_me_describes_the_caller() {
    let server = Server::start();
    let admin = server.admin().await;
    let r = login_response(&server, "admin", ADMIN_PASSWORD).await;
    let set_cookie = session_set_cookie(&r).expect("Set-Cookie hangar_session=…");
    let body = expect_json(r, 200).await;
    assert_eq!(body["username"], "admin", "{body}");
    assert_eq!(body["role"], "admin", "{body}");
    assert!(body["id"].as_i64().is_some_and(|id| id > 0), "{body}");
    assert!(body.get("password").is_none() && body.get("passwordHash").is_none());

    let value = cookie_value(&set_cookie);
    assert!(
        value.len() >= 22,
        "a session id with ≥128 bits: {set_cookie}"
    );
    let attrs = cookie_attributes(&set_cookie);
    assert!(attrs.contains(&"httponly".to_string()), "{set_cookie}");
    assert!(attrs.contains(&"samesite=lax".to_string()), "{set_cookie}");
    assert!(attrs.contains(&"path=/".to_string()), "{set_cookie}");
    assert!(
        !attrs.contains(&"secure".to_string()),
        "no Secure on http: {set_cookie}"
    );

    // With the cookie: a session.
    let s = Session {
        base: server.base.clone(),
        http: Client::new(),
        cookie: value.clone(),
    };
    let me = expect_json(s.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["authenticatedBy"], "session");

    // With a bearer: a token.
    let me = expect_json(admin.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["authenticatedBy"], "token");

    // A member is a member.
    let bob = server.member("bob").await;
    let me = expect_json(bob.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "bob");
    assert_eq!(me["role"], "member");
    let bob_session = session(&server, "bob", &member_password("bob")).await;
    let me = expect_json(
        bob_session.get("/api/v1/auth/me").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(me["username"], "bob");
    assert_eq!(me["authenticatedBy"], "session");

    // Without anything: 401.
    let r = Client::new()
        .get(server.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    // A made-up cookie or token: 401.
    let fake = Session {
        base: server.base.clone(),
        http: Client::new(),
        cookie: "x".repeat(64),
    };
    expect_error(
        fake.get("/api/v1/auth/me").send().await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    let r = Client::new()
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth("hgr_0000000000000000000000000000000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // The session id never shows up in the logs.
    assert!(
        !server.output_text().contains(&value),
        "the session id is logged"
    );
}

#[tokio::test]
async fn login_refuses_wrong_credentials_and_bad_bodies() {
    let server = TestApp::start().await;
    server.member("bob").await;

    let r = login_response(&server, "admin", "not-the-password").await;
    assert!(session_set_cookie(&r).is_none(), "no cookie on failure");
    expect_error(r, 401, "bad-credentials").await;
    let r = login_response(&server, "bob", ADMIN_PASSWORD).await;
    expect_error(r, 401, "bad-credentials").await;
    let r = login_response(&server, "nobody", "whatever-password").await;
    let unknown = expect_error(r, 401, "bad-credentials").await;
    // Unknown user and wrong password are indistinguishable.
    let r = login_response(&server, "bob", "wrong-password").await;
    let wrong = expect_error(r, 401, "bad-credentials").await;
    assert_eq!(unknown["errorText"], wrong["errorText"]);

    // Malformed JSON.
    let r = Client::new()
        .post(server.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": \"admin\", \"password\": ")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    // Not JSON at all.
    let r = Client::new()
        .post(server.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body(json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, 415, "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error body");
    assert_eq!(body["httpStatusCode"], 415, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(
        body["errorText"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // The right password still works after all this.
    session(&server, "bob", &member_password("bob")).await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestApp::start().await;
    let s = session(&server, "admin", ADMIN_PASSWORD).await;
    let other = session(&server, "admin", ADMIN_PASSWORD).await;
    assert_ne!(s.cookie, other.cookie, "each login is a new session");
    expect_json(s.get("/api/v1/auth/me").send().await.unwrap(), 200).await;

    let r = s.post("/api/v1/auth/logout").send().await.unwrap();
    let cleared = session_set_cookie(&r).expect("logout clears the cookie");
    expect_json(r, 200).await;
    assert_eq!(cookie_value(&cleared), "", "{cleared}");
    assert!(
        cookie_attributes(&cleared).contains(&"max-age=0".to_string()),
        "{cleared}"
    );

    expect_error(
        s.get("/api/v1/auth/me").send().await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    expect_error(
        s.post("/api/v1/channels")
            .json(&json!({"name": "after-logout"}))
            .send()
            .await
            .unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    // Only that session ended.
    let me = expect_json(other.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["authenticatedBy"], "session");
    // Logging out without a session: 401.
    let r = Client::new()
        .post(server.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
}

// ---------------------------------------------------------------------------------------------
// 2. CSRF (SPEC §11)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cookie_authenticated_changes_from_another_site_are_refused() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let s = session(&server, "admin", ADMIN_PASSWORD).await;

    let r = s
        .post("/api/v1/channels")
        .header("origin", "http://evil.example")
        .json(&json!({"name": "forged-by-origin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    let r = s
        .post("/api/v1/channels")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "forged-by-fetch-site"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // A same-origin Sec-Fetch-Site does not excuse a foreign Origin.
    let r = s
        .post("/api/v1/channels")
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "forged-mixed"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // The same host on another port is another origin.
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let other_port: u16 = port.parse::<u16>().unwrap().wrapping_add(1).max(1);
    let r = s
        .post("/api/v1/channels")
        .header("origin", format!("http://{host}:{other_port}"))
        .json(&json!({"name": "forged-other-port"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // Other cookie-authenticated changes are protected too.
    let r = s
        .post("/api/v1/me/tokens")
        .header("origin", "http://evil.example")
        .json(&json!({"name": "stolen"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let r = s
        .post("/api/v1/auth/logout")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let kept = expect_json(
        admin
            .post("/api/v1/me/tokens")
            .json(&json!({"name": "kept"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let kept_id = kept["id"].as_i64().unwrap();
    let r = s
        .req(Method::DELETE, &format!("/api/v1/me/tokens/{kept_id}"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    // A sibling site and an opaque origin are not this server either.
    let r = s
        .post("/api/v1/channels")
        .header("sec-fetch-site", "same-site")
        .json(&json!({"name": "forged-same-site"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let r = s
        .post("/api/v1/channels")
        .header("origin", "null")
        .json(&json!({"name": "forged-null-origin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // Nothing was created or deleted, and the session still works.
    let kept_token = User {
        token: kept["token"].as_str().unwrap().to_string(),
        ..admin.clone()
    };
    expect_json(kept_token.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    let names = channel_names(&admin).await;
    assert!(names.iter().all(|n| !n.starts_with("forged")), "{names:?}");
    let tokens = expect_json(admin.get("/api/v1/me/tokens").send().await.unwrap(), 200).await;
    assert!(
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "stolen"),
        "{tokens}"
    );

    // Reading with a foreign Origin is harmless and allowed.
    let r = s
        .get("/api/v1/channels")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;

    // Same origin: allowed.
    let r = s
        .post("/api/v1/channels")
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "same-origin"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    assert_eq!(created["name"], "same-origin");
    // A non-browser client sends neither header: allowed.
    let r = s
        .post("/api/v1/channels")
        .json(&json!({"name": "no-headers"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    assert_eq!(created["name"], "no-headers");

    // Bearer tokens are not subject to the check.
    let r = admin
        .post("/api/v1/channels")
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "bearer"}))
        .send()
        .await
        .unwrap();
    expect_json(r, 201).await;

    let names = channel_names(&admin).await;
    for n in ["same-origin", "no-headers", "bearer"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(names.iter().all(|n| !n.starts_with("forged")), "{names:?}");
}

#[tokio::test]
async fn a_same_origin_fetch_form_data_upload_with_the_cookie_works() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let s = session(&server, "admin", ADMIN_PASSWORD).await;
    let channel = admin.channel("uploads", &[]).await;
    let message = admin.message(channel, "with a file").await;
    let path = format!("/api/v1/messages/{message}/attachments");

    let form = || {
        Form::new().text("comment", "ignored").part(
            "files",
            Part::bytes(b"hello from a browser".to_vec())
                .file_name("hello.txt")
                .mime_str("text/plain")
                .unwrap(),
        )
    };

    // Forged from another site: refused, nothing attached.
    let r = s
        .post(&path)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .multipart(form())
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // What the reference's fetch(FormData) sends from our own page.
    let r = s
        .post(&path)
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .multipart(form())
        .send()
        .await
        .unwrap();
    let body = expect_json(r, 200).await;
    let listed = body["attachments"].as_array().expect("attachments");
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["fileName"], "hello.txt", "{body}");
    assert_eq!(listed[0]["fileSize"], 20, "{body}");
    assert_eq!(
        listed[0]["fileChecksum"],
        sha256_hex(b"hello from a browser"),
        "{body}"
    );
    assert_eq!(listed[0]["textMessageId"], message, "{body}");
    let attachment_id = listed[0]["attachmentId"].as_i64().unwrap();

    let page = expect_json(
        admin
            .get(&format!("/api/v1/channels/{channel}/messages"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let msg = &page["data"][0];
    assert_eq!(msg["messageId"], message, "{page}");
    let attached = msg["attachments"].as_array().unwrap();
    assert_eq!(
        attached.len(),
        1,
        "only the same-origin upload is attached: {page}"
    );
    assert_eq!(attached[0]["attachmentId"], attachment_id, "{page}");
}

#[tokio::test]
async fn the_public_url_decides_the_csrf_origin_and_the_secure_cookie() {
    let server = TestApp::start_with(&["--public-url", "https://files.example.com/hangar/"]).await;
    let r = login_response(&server, "admin", ADMIN_PASSWORD).await;
    let set_cookie = session_set_cookie(&r).expect("Set-Cookie hangar_session=…");
    expect_json(r, 200).await;
    let attrs = cookie_attributes(&set_cookie);
    assert!(
        attrs.contains(&"secure".to_string()),
        "Secure with an https server URL: {set_cookie}"
    );
    assert!(attrs.contains(&"httponly".to_string()), "{set_cookie}");
    assert!(attrs.contains(&"samesite=lax".to_string()), "{set_cookie}");
    let s = Session {
        base: server.base().to_string(),
        http: Client::new(),
        cookie: cookie_value(&set_cookie),
    };

    // The bound address is not the server's origin any more; the public URL's origin is.
    let r = s
        .post("/api/v1/channels")
        .header("origin", &server.base)
        .json(&json!({"name": "forged-bound-address"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let r = s
        .post("/api/v1/channels")
        .header("origin", "http://files.example.com")
        .json(&json!({"name": "forged-http"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let r = s
        .post("/api/v1/channels")
        .header("origin", "https://files.example.com")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "from-the-public-origin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 201).await["name"], "from-the-public-origin");
    let admin = server.admin().await;
    let names = channel_names(&admin).await;
    assert_eq!(names, ["from-the-public-origin"]);
}

#[tokio::test]
async fn login_from_a_foreign_origin_is_refused() {
    let server = TestApp::start().await;
    let body = json!({"username": "admin", "password": ADMIN_PASSWORD});
    let r = Client::new()
        .post(server.url("/api/v1/auth/login"))
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        session_set_cookie(&r).is_none(),
        "no session for a forged login"
    );
    expect_error(r, 403, "csrf-rejected").await;
    let r = Client::new()
        .post(server.url("/api/v1/auth/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    // From our own page: fine.
    let r = Client::new()
        .post(server.url("/api/v1/auth/login"))
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(session_set_cookie(&r).is_some());
    expect_json(r, 200).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Personal tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn personal_tokens_are_shown_once_authenticate_and_can_be_revoked() {
    let server = Server::start();
    let bob = server.member("bob").await;
    let admin = server.admin().await;

    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "ci job"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    let token = created["token"]
        .as_str()
        .expect("the token, shown once")
        .to_string();
    assert!(token.starts_with("hgr_"), "{token}");
    assert!(token.len() >= 4 + 32, "≥128 bits: {token}");
    let id = created["id"].as_i64().expect("a numeric id");
    assert!(id > 0 && id < (1i64 << 53), "{id}");
    assert_eq!(created["name"], "ci job");

    // Listed without the secret.
    let r = bob.get("/api/v1/me/tokens").send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains(&token), "the list reveals the token: {text}");
    assert!(
        !text.contains(&token["hgr_".len()..]),
        "the list reveals the token: {text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let items = list["data"].as_array().expect("data");
    let listed = items
        .iter()
        .find(|t| t["id"] == id)
        .expect("the new token is listed");
    assert_eq!(listed["name"], "ci job");
    assert!(listed.get("token").is_none(), "{listed}");
    let mut found = Vec::new();
    all_strings(&list, &mut found);
    assert!(found.iter().all(|s| !s.contains(&token)), "{list}");
    // Another member does not see it.
    let admin_list = expect_json(admin.get("/api/v1/me/tokens").send().await.unwrap(), 200).await;
    assert!(
        admin_list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id),
        "{admin_list}"
    );

    // It authenticates as bob.
    let client = Client::new();
    let me = expect_json(
        client
            .get(server.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["username"], "bob");
    assert_eq!(me["authenticatedBy"], "token");

    // Someone else cannot delete it: it does not exist for them.
    let r = admin
        .delete(&format!("/api/v1/me/tokens/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_json(
        client
            .get(server.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;

    // Its owner can.
    let r = bob
        .delete(&format!("/api/v1/me/tokens/{id}"))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    let r = client
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = bob
        .delete(&format!("/api/v1/me/tokens/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let list = expect_json(bob.get("/api/v1/me/tokens").send().await.unwrap(), 200).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id),
        "{list}"
    );
    // bob's other token (from the harness) still works.
    expect_json(bob.get("/api/v1/auth/me").send().await.unwrap(), 200).await;

    // Tokens never reach the logs.
    let output = server.output_text();
    assert!(!output.contains(&token), "the token was logged");
    assert!(!output.contains(&bob.token), "the token was logged");
    assert!(!output.contains(&admin.token), "the token was logged");
}

#[tokio::test]
async fn token_scope_and_expiry_are_enforced_and_validated() {
    let server = Server::start();
    let bob = server.member("bob").await;

    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "reader", "scope": "read"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    assert_eq!(created["scope"], "read", "{created}");
    let reader = User {
        token: created["token"].as_str().unwrap().to_string(),
        ..bob.clone()
    };
    let me = expect_json(reader.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "bob");
    expect_json(reader.get("/api/v1/channels").send().await.unwrap(), 200).await;
    let r = reader
        .post("/api/v1/channels")
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = reader
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "escalate"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    assert!(channel_names(&bob).await.is_empty());

    // A token stops working once it expires.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expires = now_ms + 5_000;
    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "short-lived", "expires": expires}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    assert_eq!(created["expires"], expires, "{created}");
    let short = User {
        token: created["token"].as_str().unwrap().to_string(),
        ..bob.clone()
    };
    let wait = (expires + 1_000 - now_ms).max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let r = short.get("/api/v1/auth/me").send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // A future expiry is accepted and echoed (within the lifetime of bob's own token, made with
    // the default --token-lifetime of 90 days: a token made with a token never outlives it).
    let future = now_ms + 30 * 24 * 3600 * 1000;
    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "later", "scope": "**", "expires": future}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    assert_eq!(created["expires"], future, "{created}");
    let later = User {
        token: created["token"].as_str().unwrap().to_string(),
        ..bob.clone()
    };
    expect_json(
        later
            .post("/api/v1/channels")
            .json(&json!({"name": "ok"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;

    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "bad", "scope": "write"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-scope").await;
    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "old", "expires": 1_000_000_000_000i64}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-expiry").await;
    let r = bob
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "  "}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-name").await;

    let list = expect_json(bob.get("/api/v1/me/tokens").send().await.unwrap(), 200).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"bad") && !names.contains(&"old"),
        "{names:?}"
    );
    assert!(
        names.contains(&"reader") && names.contains(&"later"),
        "{names:?}"
    );

    let output = server.output_text();
    assert!(!output.contains(&reader.token) && !output.contains(&later.token));
}

// ---------------------------------------------------------------------------------------------
// 4. Members
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn administrators_create_and_list_members() {
    let server = Server::start();
    let admin = server.admin().await;

    let r = admin
        .post("/api/v1/members")
        .json(
            &json!({"username": "carol", "password": "carol-secret-1", "displayName": "Carol C."}),
        )
        .send()
        .await
        .unwrap();
    let carol = expect_json(r, 201).await;
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["displayName"], "Carol C.");
    assert_eq!(carol["role"], "member");
    assert!(carol["id"].as_i64().is_some_and(|id| id > 0), "{carol}");
    assert!(carol.get("password").is_none(), "{carol}");
    let mut texts = Vec::new();
    all_strings(&carol, &mut texts);
    assert!(
        texts.iter().all(|s| !s.contains("carol-secret-1")),
        "{carol}"
    );

    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "dave.ops", "password": "dave-secret-1", "role": "admin"}))
        .send()
        .await
        .unwrap();
    let dave = expect_json(r, 201).await;
    assert_eq!(dave["role"], "admin");
    assert_eq!(
        dave["displayName"], "dave.ops",
        "the display name defaults to the username"
    );

    // Errors.
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "carol", "password": "another-password"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "already-exists").await;
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "a b", "password": "long-enough-1"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-username").await;
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "", "password": "long-enough-1"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-username").await;
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "erin", "password": "short"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-password").await;
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "erin", "password": "long-enough-1", "role": "owner"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-role").await;
    // An unknown field is refused with a JSON error naming it (the exact status is checked by
    // `creating_a_member_with_an_unknown_field_is_a_400`).
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "erin", "password": "long-enough-1", "isAdmin": true}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = expect_json(r, status).await;
    assert!((400..500).contains(&status), "{status}: {body}");
    assert_eq!(body["httpStatusCode"], status, "{body}");
    assert!(
        body["errorText"]
            .as_str()
            .is_some_and(|t| t.contains("isAdmin")),
        "{body}"
    );

    // Members may do neither.
    let bob = server.member("bob").await;
    let r = bob
        .post("/api/v1/members")
        .json(&json!({"username": "mallory", "password": "long-enough-1"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    expect_error(
        bob.get("/api/v1/members").send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let r = Client::new()
        .get(server.url("/api/v1/members"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // The list.
    let list = expect_json(admin.get("/api/v1/members").send().await.unwrap(), 200).await;
    let mut names: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["admin", "bob", "carol", "dave.ops"], "{list}");
    let raw = admin
        .get("/api/v1/members")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !raw.contains("argon2") && !raw.contains("carol-secret-1"),
        "{raw}"
    );

    // The new members can log in, with their roles.
    let s = session(&server, "carol", "carol-secret-1").await;
    let me = expect_json(s.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "carol");
    assert_eq!(me["role"], "member");
    let s = session(&server, "dave.ops", "dave-secret-1").await;
    expect_json(s.get("/api/v1/members").send().await.unwrap(), 200).await;
    // Refused creations left nothing behind.
    let r = login_response(&server, "erin", "long-enough-1").await;
    expect_error(r, 401, "bad-credentials").await;
    // A password is never logged.
    assert!(!server.output_text().contains("carol-secret-1"));
}

#[tokio::test]
async fn creating_a_member_with_an_unknown_field_is_a_400() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "erin", "password": "long-enough-1", "isAdmin": true}))
        .send()
        .await
        .unwrap();
    let body = expect_json(r, 400).await;
    assert_eq!(body["httpStatusCode"], 400, "{body}");
    assert!(
        body["errorText"]
            .as_str()
            .is_some_and(|t| t.contains("isAdmin")),
        "{body}"
    );
    let r = login_response(&server, "erin", "long-enough-1").await;
    expect_error(r, 401, "bad-credentials").await;
}

// ---------------------------------------------------------------------------------------------
// 5. Spaces
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn administrators_manage_spaces() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;

    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "Generated"}))
        .send()
        .await
        .unwrap();
    let generated = expect_json(r, 201).await;
    let gid = generated["id"].as_str().unwrap().to_string();
    assert!(
        gid.starts_with("space_") && gid.len() > "space_".len(),
        "{generated}"
    );
    assert_eq!(generated["name"], "Generated");
    assert_eq!(
        generated["quotaBytes"],
        Value::Null,
        "unlimited by default: {generated}"
    );
    assert_eq!(generated["usedBytes"], 0, "{generated}");

    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "team-1", "name": "Team one", "quotaBytes": 1_000_000}))
        .send()
        .await
        .unwrap();
    let team = expect_json(r, 201).await;
    assert_eq!(team["id"], "team-1");
    assert_eq!(team["name"], "Team one");
    assert_eq!(team["quotaBytes"], 1_000_000);
    assert_eq!(team["members"], json!([]), "{team}");

    // Errors.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "team-1", "name": "Again"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "already-exists").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "a/b", "name": "Slash"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-space-id").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "Negative", "quotaBytes": -1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-quota").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-name").await;
    let r = bob
        .post("/api/v1/spaces")
        .json(&json!({"name": "Mine"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    let list = expect_json(admin.get("/api/v1/spaces").send().await.unwrap(), 200).await;
    let mut ids: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().into())
        .collect();
    ids.sort();
    let mut expected = vec![gid.clone(), "team-1".to_string()];
    expected.sort();
    assert_eq!(ids, expected, "nothing refused was created: {list}");

    // PATCH.
    let r = admin
        .patch("/api/v1/spaces/team-1")
        .json(&json!({"name": "Team One"}))
        .send()
        .await
        .unwrap();
    let patched = expect_json(r, 200).await;
    assert_eq!(patched["name"], "Team One");
    assert_eq!(patched["quotaBytes"], 1_000_000, "unchanged: {patched}");
    let r = admin
        .patch("/api/v1/spaces/team-1")
        .json(&json!({"quotaBytes": null}))
        .send()
        .await
        .unwrap();
    let patched = expect_json(r, 200).await;
    assert_eq!(patched["quotaBytes"], Value::Null, "{patched}");
    assert_eq!(patched["name"], "Team One");
    let got = expect_json(
        admin.get("/api/v1/spaces/team-1").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(got["name"], "Team One");
    assert_eq!(got["quotaBytes"], Value::Null);
    let r = admin
        .patch("/api/v1/spaces/team-1")
        .json(&json!({"quotaBytes": -5}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-quota").await;
    let r = admin
        .patch("/api/v1/spaces/no-such-space")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Membership.
    let r = admin
        .post("/api/v1/spaces/team-1/members")
        .json(&json!({"username": "bob"}))
        .send()
        .await
        .unwrap();
    let with_bob = expect_json(r, 200).await;
    assert_eq!(strings(&with_bob["members"]), ["bob"], "{with_bob}");
    let r = admin
        .post("/api/v1/spaces/team-1/members")
        .json(&json!({"username": "ghost"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unknown-member").await;
    let r = admin
        .post("/api/v1/spaces/no-such-space/members")
        .json(&json!({"username": "bob"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let got = expect_json(
        admin.get("/api/v1/spaces/team-1").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(strings(&got["members"]), ["bob"]);
    expect_json(bob.get("/api/v1/spaces/team-1").send().await.unwrap(), 200).await;

    let r = admin
        .delete("/api/v1/spaces/team-1/members/bob")
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    let got = expect_json(
        admin.get("/api/v1/spaces/team-1").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(got["members"], json!([]), "{got}");
    expect_error(
        bob.get("/api/v1/spaces/team-1").send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let r = admin
        .delete("/api/v1/spaces/team-1/members/bob")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Delete.
    let r = bob.delete("/api/v1/spaces/team-1").send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    expect_json(
        admin.delete("/api/v1/spaces/team-1").send().await.unwrap(),
        200,
    )
    .await;
    expect_error(
        admin.get("/api/v1/spaces/team-1").send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    expect_error(
        admin.delete("/api/v1/spaces/team-1").send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let list = expect_json(admin.get("/api/v1/spaces").send().await.unwrap(), 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["id"], gid.as_str());
}

#[tokio::test]
async fn members_see_only_their_own_spaces() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    for (id, name) in [("red", "Red"), ("blue", "Blue")] {
        let r = admin
            .post("/api/v1/spaces")
            .json(&json!({"id": id, "name": name}))
            .send()
            .await;
        expect_json(r.unwrap(), 201).await;
    }
    for (space, user) in [("red", "bob"), ("blue", "carol"), ("blue", "bob")] {
        let r = admin
            .post(&format!("/api/v1/spaces/{space}/members"))
            .json(&json!({"username": user}))
            .send()
            .await
            .unwrap();
        expect_json(r, 200).await;
    }
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "green", "name": "Green"}))
        .send();
    expect_json(r.await.unwrap(), 201).await;

    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().into())
            .collect();
        ids.sort();
        ids
    };
    let all = expect_json(admin.get("/api/v1/spaces").send().await.unwrap(), 200).await;
    assert_eq!(ids(&all), ["blue", "green", "red"]);
    let bobs = expect_json(bob.get("/api/v1/spaces").send().await.unwrap(), 200).await;
    assert_eq!(ids(&bobs), ["blue", "red"]);
    let carols = expect_json(carol.get("/api/v1/spaces").send().await.unwrap(), 200).await;
    assert_eq!(ids(&carols), ["blue"]);

    let blue = expect_json(carol.get("/api/v1/spaces/blue").send().await.unwrap(), 200).await;
    assert_eq!(blue["name"], "Blue");
    assert_eq!(strings(&blue["members"]), ["bob", "carol"]);
    // Not a member, or nonexistent: the same 404.
    let hidden = expect_error(
        carol.get("/api/v1/spaces/red").send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let missing = expect_error(
        carol.get("/api/v1/spaces/nowhere").send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        hidden, missing,
        "a private space is indistinguishable from a missing one"
    );
    // Members read but do not manage.
    let r = bob
        .patch("/api/v1/spaces/red")
        .json(&json!({"name": "Mine"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .post("/api/v1/spaces/red/members")
        .json(&json!({"username": "carol"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .delete("/api/v1/spaces/blue/members/carol")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let red = expect_json(admin.get("/api/v1/spaces/red").send().await.unwrap(), 200).await;
    assert_eq!(red["name"], "Red");
    assert_eq!(strings(&red["members"]), ["bob"]);
}

#[tokio::test]
async fn the_space_quota_flag_sets_the_default_quota_of_new_spaces() {
    let server = TestApp::start_with(&["--space-quota", "5MiB"]).await;
    let admin = server.admin().await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "Default"}))
        .send()
        .await
        .unwrap();
    let space = expect_json(r, 201).await;
    assert_eq!(space["quotaBytes"], 5_242_880, "{space}");
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "Explicit", "quotaBytes": 1234}))
        .send()
        .await
        .unwrap();
    let space = expect_json(r, 201).await;
    assert_eq!(space["quotaBytes"], 1234, "an explicit quota wins: {space}");
    let id = space["id"].as_str().unwrap();
    let r = admin
        .patch(&format!("/api/v1/spaces/{id}"))
        .json(&json!({"quotaBytes": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["quotaBytes"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// 6. Channels and messages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn channels_have_members_and_are_visible_only_to_them() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;

    let r = alice
        .post("/api/v1/channels")
        .json(&json!({"name": "general", "members": ["bob"]}))
        .send()
        .await
        .unwrap();
    let channel = expect_json(r, 201).await;
    let id = channel["id"].as_i64().expect("a numeric id");
    assert!(id > 0 && id < (1i64 << 53), "{id}");
    assert_eq!(channel["name"], "general");
    assert_eq!(
        strings(&channel["members"]),
        ["alice", "bob"],
        "the creator is a member"
    );

    let r = alice
        .post("/api/v1/channels")
        .json(&json!({"name": "ghosts", "members": ["bob", "ghost"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unknown-member").await;
    let r = alice
        .post("/api/v1/channels")
        .json(&json!({"name": " "}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-name").await;
    let r = Client::new()
        .post(server.url("/api/v1/channels"))
        .json(&json!({"name": "anonymous"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    let own = carol.channel("carol-only", &[]).await;
    assert_ne!(own, id);
    assert_eq!(channel_names(&alice).await, ["general"]);
    assert_eq!(channel_names(&bob).await, ["general"]);
    assert_eq!(channel_names(&carol).await, ["carol-only"]);

    // Not a member: 404 everywhere.
    expect_error(
        carol
            .get(&format!("/api/v1/channels/{id}"))
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    let r = carol
        .post(&format!("/api/v1/channels/{id}/members"))
        .json(&json!({"username": "carol"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Any member adds another.
    let r = bob
        .post(&format!("/api/v1/channels/{id}/members"))
        .json(&json!({"username": "carol"}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(
        strings(&updated["members"]),
        ["alice", "bob", "carol"],
        "{updated}"
    );
    let r = bob
        .post(&format!("/api/v1/channels/{id}/members"))
        .json(&json!({"username": "ghost"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unknown-member").await;
    let mut names = channel_names(&carol).await;
    names.sort();
    assert_eq!(names, ["carol-only", "general"]);
    let got = expect_json(
        carol
            .get(&format!("/api/v1/channels/{id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["id"], id);
    let m = carol.message(id, "hi, I'm in").await;
    assert!(m > 0);
}

#[tokio::test]
async fn messages_are_posted_and_paginated_in_order() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    let channel = alice.channel("room", &["bob"]).await;

    let r = bob
        .post(&format!("/api/v1/channels/{channel}/messages"))
        .json(&json!({"text": "message 1"}))
        .send()
        .await
        .unwrap();
    let first = expect_json(r, 201).await;
    let first_id = first["messageId"].as_i64().expect("messageId");
    assert_eq!(first["channelId"], channel, "{first}");
    assert_eq!(first["text"], "message 1");
    assert!(
        first["createdUtc"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "{first}"
    );
    assert_eq!(first["attachments"], json!([]));

    let mut ids = vec![first_id];
    for n in 2..=5 {
        let who = if n % 2 == 0 { &alice } else { &bob };
        ids.push(who.message(channel, &format!("message {n}")).await);
    }

    // Not a member: 404 on post and list.
    let r = carol
        .post(&format!("/api/v1/channels/{channel}/messages"))
        .json(&json!({"text": "let me in"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = carol
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = alice
        .post("/api/v1/channels/999999999/messages")
        .json(&json!({"text": "nowhere"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Pages of two.
    let mut seen_texts = Vec::new();
    let mut seen_ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit".to_string(), "2".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor".to_string(), c.clone()));
        }
        let r = bob
            .get(&format!("/api/v1/channels/{channel}/messages"))
            .query(&query)
            .send()
            .await
            .unwrap();
        let page = expect_json(r, 200).await;
        pages += 1;
        let data = page["data"].as_array().expect("data");
        for m in data {
            seen_texts.push(m["text"].as_str().unwrap().to_string());
            seen_ids.push(m["messageId"].as_i64().unwrap());
            assert_eq!(m["channelId"], channel, "{m}");
        }
        match &page["next"] {
            Value::Null => {
                assert_eq!(
                    data.len(),
                    1,
                    "the last page holds the fifth message: {page}"
                );
                break;
            }
            Value::String(next) => {
                assert_eq!(data.len(), 2, "{page}");
                cursor = Some(next.clone());
            }
            other => panic!("next is a string or null, got {other}"),
        }
        assert!(pages < 5, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=5).map(|n| format!("message {n}")).collect();
    assert_eq!(seen_texts, expected);
    assert_eq!(seen_ids, ids);

    // Everything at once; an exactly full page has no next.
    let all = expect_json(
        alice
            .get(&format!("/api/v1/channels/{channel}/messages?limit=5"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
    assert_eq!(all["next"], Value::Null, "{all}");
    let authors: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["author"])
        .collect();
    assert!(authors.iter().all(|a| !a.is_null()), "{all}");

    // Bad paging.
    for bad in ["0", "-1", "501"] {
        let r = bob
            .get(&format!("/api/v1/channels/{channel}/messages?limit={bad}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-limit").await;
    }
    for bad in ["xyz", "-3"] {
        let r = bob
            .get(&format!("/api/v1/channels/{channel}/messages?cursor={bad}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-cursor").await;
    }
}

#[tokio::test]
async fn send_message_takes_space_style_channels_content_and_attachments() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;
    let channel = alice.channel("pics", &["bob"]).await;
    let image = alice
        .upload("photo.png", "image/png", b"not really a png")
        .await;
    let doc = alice.upload("notes.txt", "text/plain", b"some notes").await;

    let r = alice
        .post("/api/http/chats/messages/send-message")
        .json(&json!({
            "channel": format!("channel:id:{channel}"),
            "content": {"className": "ChatMessage.Text", "text": "look at this"},
            "attachments": [
                {"className": "ImageAttachment", "id": image.to_string(), "width": 640, "height": 480},
                {"className": "FileAttachment", "id": doc.to_string(), "sizeBytes": 10, "filename": "notes.txt"}
            ]
        }))
        .send()
        .await
        .unwrap();
    let sent = expect_json(r, 200).await;
    let message_id = sent["messageId"].as_i64().expect("messageId");
    assert_eq!(sent["text"], "look at this");
    assert_eq!(sent["attachments"].as_array().unwrap().len(), 2, "{sent}");

    let page = expect_json(
        bob.get(&format!("/api/v1/channels/{channel}/messages"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let msg = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["messageId"] == message_id)
        .unwrap_or_else(|| panic!("the message is listed: {page}"));
    assert_eq!(msg["text"], "look at this");
    let attachments = msg["attachments"].as_array().unwrap();
    let img = attachments
        .iter()
        .find(|a| a["attachmentId"] == image)
        .unwrap_or_else(|| panic!("the image is listed: {msg}"));
    assert_eq!(img["className"], "ImageAttachment", "{img}");
    assert_eq!(img["width"], 640, "{img}");
    assert_eq!(img["height"], 480, "{img}");
    assert_eq!(img["fileName"], "photo.png", "{img}");
    assert_eq!(img["fileSize"], 16, "{img}");
    let file = attachments
        .iter()
        .find(|a| a["attachmentId"] == doc)
        .unwrap_or_else(|| panic!("the file is listed: {msg}"));
    assert_eq!(file["className"], "FileAttachment", "{file}");
    assert_eq!(file["fileName"], "notes.txt", "{file}");
    assert_eq!(file["fileSize"], 10, "{file}");
    // Attached to a message bob can read, the attachment is now readable by bob.
    expect_json(
        bob.get(&format!("/api/v1/attachments/{image}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;

    let send = |body: Value| {
        alice
            .post("/api/http/chats/messages/send-message")
            .json(&body)
            .send()
    };
    let r = send(json!({
        "channel": "codeReview:id:1",
        "content": {"className": "ChatMessage.Text", "text": "review"}
    }))
    .await
    .unwrap();
    expect_error(r, 400, "unsupported-channel").await;
    let r = send(json!({"channel": format!("channel:id:{channel}")}))
        .await
        .unwrap();
    expect_error(r, 400, "bad-content").await;
    let r = send(json!({
        "channel": format!("channel:id:{channel}"),
        "content": {"className": "ChatMessage.Text"}
    }))
    .await
    .unwrap();
    expect_error(r, 400, "bad-content").await;
    let r = send(json!({
        "channel": format!("channel:id:{channel}"),
        "content": {"className": "ChatMessage.Text", "text": "x"},
        "attachments": [{"className": "SpreadsheetAttachment", "id": doc.to_string()}]
    }))
    .await
    .unwrap();
    expect_error(r, 400, "bad-attachments").await;
    let r = send(json!({
        "channel": format!("channel:id:{channel}"),
        "content": {"className": "ChatMessage.Text", "text": "y".repeat(65_537)}
    }))
    .await
    .unwrap();
    expect_error(r, 400, "text-too-long").await;
    // Someone else's upload cannot be attached.
    let bobs = bob.upload("bob.txt", "text/plain", b"bob's").await;
    let r = send(json!({
        "channel": format!("channel:id:{channel}"),
        "content": {"className": "ChatMessage.Text", "text": "steal"},
        "attachments": [{"className": "FileAttachment", "id": bobs.to_string()}]
    }))
    .await
    .unwrap();
    let r_status = r.status().as_u16();
    assert!(
        (400..500).contains(&r_status),
        "attaching another's upload is a 4xx"
    );
    // Not a member of the channel: 404.
    let other = bob.channel("bob-alone", &[]).await;
    let r = send(json!({
        "channel": format!("channel:id:{other}"),
        "content": {"className": "ChatMessage.Text", "text": "hello?"}
    }))
    .await
    .unwrap();
    expect_error(r, 404, "not-found").await;

    // None of the refused messages was stored.
    let page = expect_json(
        alice
            .get(&format!("/api/v1/channels/{channel}/messages"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn message_text_is_limited_to_65536_characters() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let channel = alice.channel("long", &[]).await;
    let path = format!("/api/v1/channels/{channel}/messages");
    let exactly = "é".repeat(65_536);
    let r = alice
        .post(&path)
        .json(&json!({"text": exactly}))
        .send()
        .await
        .unwrap();
    let ok = expect_json(r, 201).await;
    assert_eq!(ok["text"].as_str().unwrap().chars().count(), 65_536);
    let r = alice
        .post(&path)
        .json(&json!({"text": "a".repeat(65_537)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "text-too-long").await;
    let page = expect_json(alice.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 7. Projects and issues
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn projects_hold_numbered_issues_with_attachments() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;
    let shot = alice
        .upload("shot.png", "image/png", b"fake png bytes")
        .await;
    let log = bob
        .upload("build.log", "text/plain", b"error: something")
        .await;

    let r = alice
        .post("/api/http/projects")
        .json(&json!({"key": "MY-PROJECT", "name": "My project", "members": ["bob"]}))
        .send()
        .await
        .unwrap();
    let project = expect_json(r, 201).await;
    assert_eq!(project["key"], "MY-PROJECT");
    assert_eq!(project["name"], "My project");
    assert!(project["id"].as_i64().is_some(), "{project}");
    assert_eq!(strings(&project["members"]), ["alice", "bob"]);

    let r = bob
        .post("/api/http/projects")
        .json(&json!({"key": "MY-PROJECT", "name": "Again"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "already-exists").await;
    let r = alice
        .post("/api/http/projects")
        .json(&json!({"key": "my-project", "name": "Lower"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-project-key").await;

    let issues = "/api/http/projects/key:MY-PROJECT/planning/issues";
    let r = alice
        .post(issues)
        .json(&json!({
            "title": "It crashes",
            "status": "Open",
            "attachments": [{"className": "ImageAttachment", "id": shot.to_string(), "width": 10, "height": 20}]
        }))
        .send()
        .await
        .unwrap();
    let first = expect_json(r, 201).await;
    assert!(first["id"].as_i64().is_some(), "{first}");
    assert_eq!(first["key"], "MY-PROJECT-T-1");
    assert_eq!(first["number"], 1);
    assert_eq!(first["title"], "It crashes");
    assert_eq!(first["status"], "Open");
    let att = first["attachments"].as_array().unwrap();
    assert_eq!(att.len(), 1, "{first}");
    assert_eq!(att[0]["attachmentId"], shot);
    assert_eq!(att[0]["className"], "ImageAttachment");
    assert_eq!(att[0]["width"], 10);

    let r = bob
        .post(issues)
        .json(&json!({"title": "Docs", "status": "In progress", "attachments": []}))
        .send()
        .await
        .unwrap();
    let second = expect_json(r, 201).await;
    assert_eq!(second["key"], "MY-PROJECT-T-2");
    assert_eq!(second["number"], 2);
    assert_eq!(second["attachments"], json!([]));
    let r = alice
        .post(issues)
        .json(&json!({"title": "Third", "status": "Open"}))
        .send()
        .await;
    let third = expect_json(r.unwrap(), 201).await;
    assert_eq!(third["key"], "MY-PROJECT-T-3");

    // Listing and paging.
    let all = expect_json(bob.get(issues).send().await.unwrap(), 200).await;
    assert_eq!(all["totalCount"], 3, "{all}");
    let keys: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["MY-PROJECT-T-1", "MY-PROJECT-T-2", "MY-PROJECT-T-3"]);
    assert_eq!(all["next"], Value::Null, "{all}");
    let page = expect_json(
        bob.get(&format!("{issues}?$top=2")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["data"].as_array().unwrap().len(), 2, "{page}");
    let next = page["next"]
        .as_str()
        .unwrap_or_else(|| panic!("a next page: {page}"))
        .to_string();
    let page = expect_json(
        bob.get(&format!("{issues}?$top=2&$skip={next}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["key"], "MY-PROJECT-T-3");
    assert_eq!(page["next"], Value::Null, "{page}");
    let page = expect_json(
        bob.get(&format!("{issues}?$skip=1&$top=1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page["data"][0]["key"], "MY-PROJECT-T-2", "{page}");
    let r = bob.get(&format!("{issues}?$top=0")).send().await.unwrap();
    expect_error(r, 400, "bad-page").await;

    // One issue.
    let got = expect_json(
        bob.get(&format!("{issues}/key:MY-PROJECT-T-1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["id"], first["id"]);
    assert_eq!(got["title"], "It crashes");
    assert_eq!(got["attachments"][0]["attachmentId"], shot);
    let by_id = expect_json(
        bob.get(&format!("{issues}/id:{}", second["id"]))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(by_id["key"], "MY-PROJECT-T-2");
    let r = bob
        .get(&format!("{issues}/key:MY-PROJECT-T-99"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Adding attachments.
    let r = bob
        .post(&format!("{issues}/key:MY-PROJECT-T-1/attachments"))
        .json(&json!({"attachments": [
            {"className": "FileAttachment", "id": log.to_string(), "sizeBytes": 16, "filename": "build.log"}
        ]}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(
        updated["attachments"].as_array().unwrap().len(),
        2,
        "{updated}"
    );
    let got = expect_json(
        alice
            .get(&format!("{issues}/key:MY-PROJECT-T-1"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let added = got["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attachmentId"] == log)
        .unwrap_or_else(|| panic!("the file is attached: {got}"))
        .clone();
    assert_eq!(added["className"], "FileAttachment");
    assert_eq!(added["sizeBytes"], 16);
    assert_eq!(added["filename"], "build.log");
    assert_eq!(added["fileName"], "build.log");
    assert_eq!(added["fileSize"], 16);
    // A project member can now read it.
    expect_json(
        alice
            .get(&format!("/api/v1/attachments/{log}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;

    let r = bob
        .post(&format!("{issues}/key:MY-PROJECT-T-2/attachments"))
        .json(&json!({"attachments": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-attachments").await;
    let r = bob
        .post(&format!("{issues}/key:MY-PROJECT-T-2/attachments"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-attachments").await;
    let r = bob
        .post(&format!("{issues}/key:MY-PROJECT-T-2/attachments"))
        .json(&json!({"attachments": [{"className": "Sticker", "id": log.to_string()}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-attachments").await;
    let t2 = expect_json(
        bob.get(&format!("{issues}/key:MY-PROJECT-T-2"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(t2["attachments"], json!([]), "{t2}");
}

#[tokio::test]
async fn project_routes_hide_projects_from_non_members_and_validate_input() {
    let server = TestApp::start().await;
    let alice = server.member("alice").await;
    let carol = server.member("carol").await;
    let admin = server.admin().await;
    let r = alice
        .post("/api/http/projects")
        .json(&json!({"key": "SECRET", "name": "Secret"}))
        .send()
        .await
        .unwrap();
    expect_json(r, 201).await;
    let issues = "/api/http/projects/key:SECRET/planning/issues";
    expect_json(
        alice
            .post(issues)
            .json(&json!({"title": "Hidden", "status": "Open"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;

    let missing = expect_error(
        carol
            .get("/api/http/projects/key:NOPE/planning/issues")
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    let hidden = expect_error(carol.get(issues).send().await.unwrap(), 404, "not-found").await;
    assert_eq!(
        missing, hidden,
        "a private project is indistinguishable from a missing one"
    );
    let r = carol
        .post(issues)
        .json(&json!({"title": "Intrude", "status": "Open"}))
        .send()
        .await;
    expect_error(r.unwrap(), 404, "not-found").await;
    let r = carol
        .get(&format!("{issues}/key:SECRET-T-1"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let mine = carol.upload("x.txt", "text/plain", b"x").await;
    let r = carol
        .post(&format!("{issues}/key:SECRET-T-1/attachments"))
        .json(&json!({"attachments": [{"className": "FileAttachment", "id": mine.to_string()}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = alice
        .post("/api/http/projects/key:NOPE/planning/issues")
        .json(&json!({"title": "Nowhere", "status": "Open"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Missing or empty title.
    let r = alice
        .post(issues)
        .json(&json!({"status": "Open"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-title").await;
    let r = alice
        .post(issues)
        .json(&json!({"title": "   ", "status": "Open"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-title").await;

    // Admins see every project; nothing refused was stored.
    let list = expect_json(admin.get(issues).send().await.unwrap(), 200).await;
    assert_eq!(list["totalCount"], 1, "{list}");
    assert_eq!(list["data"][0]["title"], "Hidden");
    assert_eq!(list["data"][0]["attachments"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// 8. Errors are JSON everywhere
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_path_ids_answer_json_errors() {
    let server = TestApp::start().await;
    let admin = server.admin().await;

    for path in [
        "/api/v1/no-such-thing",
        "/api/http/nothing/here",
        "/totally/unknown",
    ] {
        let r = admin.get(path).send().await.unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            ct.as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "{path}: {ct:?}"
        );
        expect_error(r, 404, "not-found").await;
    }
    let r = Client::new()
        .get(server.url("/api/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    let r = admin
        .http
        .put(server.url("/api/v1/channels"))
        .bearer_auth(&admin.token)
        .send()
        .await;
    let r = r.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        ct.as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{ct:?}"
    );
    expect_error(r, 405, "method-not-allowed").await;
    let r = admin.delete("/api/v1/auth/me").send().await.unwrap();
    expect_error(r, 405, "method-not-allowed").await;
    let r = admin.get("/api/v1/auth/login").send().await.unwrap();
    expect_error(r, 405, "method-not-allowed").await;

    let r = admin.get("/api/v1/attachments/abc").send().await.unwrap();
    expect_error(r, 400, "bad-path").await;
    let r = admin
        .delete("/api/v1/me/tokens/not-a-number")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-path").await;
    let r = admin
        .post("/api/v1/messages/xyz/attachments")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-path").await;
    let r = admin
        .get("/api/v1/channels/nonsense/messages")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-channel").await;

    // The JSON body of a bad request is an error too.
    let r = admin
        .post("/api/v1/channels")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    // Well-formed JSON of the wrong shape: a 4xx JSON error that names the problem.
    let r = admin
        .post("/api/v1/channels")
        .json(&json!({"name": 5}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = expect_json(r, status).await;
    assert!((400..500).contains(&status), "{status}: {body}");
    assert_eq!(body["httpStatusCode"], status, "{body}");
    assert_eq!(body["error"], "bad-json", "{body}");
    let r = admin
        .post("/api/v1/channels")
        .header("content-type", "text/plain")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "unsupported-media-type").await;
    assert!(channel_names(&admin).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 9. Configuration
// ---------------------------------------------------------------------------------------------

async fn upload_status(user: &User, size: usize) -> (u16, String) {
    let r = user
        .post("/uploads")
        .query(&[("name", "data.bin")])
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; size])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn the_config_file_sets_the_max_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hangar.toml");
    std::fs::write(&config, "max_file_size = 1000\n").unwrap();
    let server = TestApp::start_with(&["--config", config.to_str().unwrap()]).await;
    let admin = server.admin().await;

    let (status, body) = upload_status(&admin, 1000).await;
    assert_eq!(status, 200, "exactly the limit is accepted: {body}");
    assert!(body.parse::<i64>().is_ok(), "{body}");

    let r = admin
        .post("/uploads")
        .query(&[("name", "big.bin")])
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 2000])
        .send()
        .await
        .unwrap();
    let err = expect_error(r, 413, "limits-reached").await;
    assert_eq!(err["limitBytes"], 1000, "{err}");
}

#[tokio::test]
async fn a_flag_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hangar.toml");
    std::fs::write(&config, "max_file_size = 1000\nspace_quota = \"1KiB\"\n").unwrap();
    let server = TestApp::start_with(&[
        "--config",
        config.to_str().unwrap(),
        "--max-file-size",
        "3000",
    ])
    .await;
    let admin = server.admin().await;

    let (status, body) = upload_status(&admin, 2000).await;
    assert_eq!(
        status, 200,
        "the flag's 3000 wins over the file's 1000: {body}"
    );
    let r = admin
        .post("/uploads")
        .query(&[("name", "big.bin")])
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 4000])
        .send()
        .await
        .unwrap();
    let err = expect_error(r, 413, "limits-reached").await;
    assert_eq!(err["limitBytes"], 3000, "{err}");

    // The file still supplies what no flag gives.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "From file"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 201).await["quotaBytes"], 1024);
}

// ---------------------------------------------------------------------------------------------
// 10. Restarting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_admin_password_flag_beats_the_file_and_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hangar.toml");
    std::fs::write(&config, "admin_password = \"password-from-the-file\"\n").unwrap();
    let mut server = Server::start_with(&["--config", config.to_str().unwrap()]);

    // The harness passes --admin-password ADMIN_PASSWORD: the flag wins.
    let r = login_response(&server, "admin", "password-from-the-file").await;
    expect_error(r, 401, "bad-credentials").await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let channel = bob.channel("persistent", &[]).await;
    let message = bob.message(channel, "still here").await;
    let bob_session = session(&server, "bob", &member_password("bob")).await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "kept", "name": "Kept"}))
        .send()
        .await;
    expect_json(r.unwrap(), 201).await;

    server.restart();
    let bob = User {
        base: server.base.clone(),
        ..bob
    };
    // A start with --admin-password revokes the admin's tokens (SPEC §3): log in again.
    let old_admin = User {
        base: server.base.clone(),
        ..admin
    };
    let r = old_admin.get("/api/v1/auth/me").send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "the admin's token minted before the restart"
    );
    let admin = server.admin().await;
    let bob_session = Session {
        base: server.base.clone(),
        ..bob_session
    };

    // Passwords, tokens, sessions and data are kept.
    let r = login_response(&server, "admin", "password-from-the-file").await;
    expect_error(r, 401, "bad-credentials").await;
    session(&server, "admin", ADMIN_PASSWORD).await;
    session(&server, "bob", &member_password("bob")).await;
    let me = expect_json(bob.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["username"], "bob");
    let me = expect_json(
        bob_session.get("/api/v1/auth/me").send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(me["authenticatedBy"], "session");
    let page = expect_json(
        bob.get(&format!("/api/v1/channels/{channel}/messages"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page["data"][0]["messageId"], message, "{page}");
    assert_eq!(page["data"][0]["text"], "still here");
    let kept = expect_json(admin.get("/api/v1/spaces/kept").send().await.unwrap(), 200).await;
    assert_eq!(kept["name"], "Kept");
    assert!(!server.output_text().contains("password-from-the-file"));
}
