//! The separate content origin (`--content-url`, SPEC §11) with the real server: one listener reached
//! under two names (the API's `127.0.0.1:P`, the content origin's `localhost:P`, told apart by the
//! `Host` header), downloads redirected there, links pointing there, the API refused there, cookies
//! never valid there; and nothing changed without the setting.

mod common;
use common::*;

use reqwest::{redirect, Client, Response};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// A server whose API is `http://127.0.0.1:P` and whose content origin is `http://localhost:P`.
fn start_split() -> (Server, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let content = format!("http://localhost:{port}");
    let server = Server::start_with(&[
        "--listen",
        &listen,
        "--public-url",
        &public,
        "--content-url",
        &content,
    ]);
    (server, format!("localhost:{port}"))
}

/// A GET of `path_and_query` on the content origin (same listener, content `Host`).
fn content_get(server: &Server, host: &str, path_and_query: &str) -> reqwest::RequestBuilder {
    no_redirects()
        .get(server.url(path_and_query))
        .header("host", host)
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

async fn share(user: &User, id: i64) -> String {
    let r = user
        .post("/api/v1/share-links")
        .json(&json!({ "attachmentId": id }))
        .send()
        .await
        .unwrap();
    expect_json(r, 201).await["url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn public_link(user: &User, id: i64) -> String {
    let channel = user.channel("c", &[]).await;
    let r = user
        .post("/api/http/chats/messages/send-message")
        .json(&json!({
            "channel": format!("channel:id:{channel}"),
            "content": {"className": "ChatMessage.Text", "text": "x"},
            "attachments": [{"className": "FileAttachment", "id": id.to_string(),
                             "sizeBytes": 5, "filename": "a.txt"}],
        }))
        .send()
        .await
        .unwrap();
    let message = expect_json(r, 200).await["messageId"].as_i64().unwrap();
    let r = user
        .get(&format!(
            "/api/http/uploads/chat/public-url/channel:id:{channel}/id:{message}/{id}"
        ))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await.as_str().unwrap().to_string()
}

fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn downloads_move_to_the_content_origin_and_the_api_stays_off_it() {
    let (server, content_host) = start_split();
    let content_url = format!("http://{content_host}");
    let admin = server.admin().await;
    let id = admin.upload("a.txt", "text/plain", b"hello").await;

    // Links the server makes point at the content origin.
    let shared = share(&admin, id).await;
    assert!(shared.starts_with(&format!("{content_url}/s/")), "{shared}");
    let public = public_link(&admin, id).await;
    assert!(
        public.starts_with(&format!("{content_url}/d/{id}?k=")),
        "{public}"
    );

    // A browser following an API-host link is sent to the content origin, query kept.
    for link in [&shared, &public] {
        let path = path_of(link);
        let r = no_redirects().get(server.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 307, "{path}");
        assert_eq!(location(&r), format!("{content_url}{path}"));
        // …where the bytes are served.
        let r = content_get(&server, &content_host, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("set-cookie").is_none());
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    }
    // Storage downloads too.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "s1", "name": "S"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post("/api/v1/space/s1/storage/Zi50eHQ/upload")
        .header("content-type", "text/plain")
        .body("file")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = no_redirects()
        .get(server.url("/api/v1/space/s1/storage/Zi50eHQ"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(
        location(&r),
        format!("{content_url}/api/v1/space/s1/storage/Zi50eHQ")
    );

    // A bearer-token client is no browser: it gets the bytes on the API host.
    let r = admin
        .get(&format!("/api/v1/attachments/{id}/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    let r = admin
        .get("/api/v1/space/s1/storage/Zi50eHQ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"file");

    // The content origin runs no API: not with a token, not anonymously.
    for path in [
        "/api/v1/auth/me".to_string(),
        format!("/api/v1/attachments/{id}"),
        "/api/v1/space/s1/storage/Zi50eHQ/meta".to_string(),
        "/api/http/applications/paged".to_string(),
        "/healthz".to_string(),
    ] {
        let r = content_get(&server, &content_host, &path)
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
    let r = no_redirects()
        .post(server.url("/api/v1/auth/login"))
        .header("host", &content_host)
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_session_is_carried_over_by_a_short_signature_never_by_the_cookie() {
    let (server, content_host) = start_split();
    let admin = server.admin().await;
    let id = admin.upload("a.txt", "text/plain", b"hello").await;
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/attachments/{id}/a.txt");
    let r = browser.get(server.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let signed = location(&r);
    assert!(
        signed.starts_with(&format!("http://{content_host}{path}?hangar-sig=")),
        "{signed}"
    );
    let r = content_get(&server, &content_host, &path_of(&signed))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");

    // The cookie alone means nothing on the content origin.
    let r = content_get(&server, &content_host, &path)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    // A signature for another path, or altered, is refused.
    let other = admin.upload("b.txt", "text/plain", b"other").await;
    let query = url::Url::parse(&signed)
        .unwrap()
        .query()
        .unwrap()
        .to_string();
    let r = content_get(
        &server,
        &content_host,
        &format!("/api/v1/attachments/{other}/b.txt?{query}"),
    )
    .send()
    .await
    .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let tampered = format!("{}0", path_of(&signed));
    let r = content_get(&server, &content_host, &tampered)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    // Anonymous, the content origin answers as the API would have: 401 for a private file.
    let r = content_get(&server, &content_host, &path)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn without_a_content_url_nothing_moves() {
    let server = Server::start();
    let admin = server.admin().await;
    let id = admin.upload("a.txt", "text/plain", b"hello").await;
    let shared = share(&admin, id).await;
    assert!(
        shared.starts_with(&format!("{}/s/", server.base)),
        "{shared}"
    );
    let r = no_redirects().get(&shared).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    let public = public_link(&admin, id).await;
    assert!(public.starts_with(&format!("{}/d/{id}?k=", server.base)));
    let r = no_redirects().get(&public).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_content_url_that_is_the_api_or_has_a_path_is_refused_at_start() {
    for (content, why) in [
        ("http://127.0.0.1:1/files", "no path"),
        ("http://127.0.0.1:1", "another origin"),
        ("ftp://x", "http"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                "http://127.0.0.1:1",
            ])
            .args(["--data-dir", "/nonexistent/hangar-content-url-test"])
            .args(["--content-url", content])
            .env_remove("HANGAR_CONTENT_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{content}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--content-url"), "{content}: {err}");
        assert!(err.contains(why), "{content}: {err}");
    }
}
