//! Cross-origin requests (SPEC §9.9, `--cors-origins`): preflights for the API and the tus routes,
//! the exposed headers, origins not listed, tus's own `OPTIONS` left alone, and the session cookie
//! never accepted from another origin. (A real browser on another origin: with the web UI's browser
//! tests.)

mod common;
use common::*;

use reqwest::Client;
use serde_json::json;

const APP: &str = "https://app.example";

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_listed_origin_gets_preflights_and_readable_headers() {
    let app = TestApp::start_with(&[
        "--cors-origins",
        "https://app.example, http://other.test:8080",
    ])
    .await;
    let alice = app.member("alice").await;

    // The preflight of a tus creation.
    let r = Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/tus"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, tus-resumable, upload-length, upload-metadata",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    let methods = header(&r, "access-control-allow-methods")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        methods.contains("post") && methods.contains("patch"),
        "{methods}"
    );
    let allowed = header(&r, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "tus-resumable",
        "upload-length",
        "upload-offset",
    ] {
        assert!(allowed.contains(h), "{h} missing from {allowed}");
    }
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    assert!(
        header(&r, "tus-version").is_none(),
        "a preflight is not tus's OPTIONS"
    );

    // tus's own OPTIONS (no Access-Control-Request-Method) still answers the capabilities.
    let r = Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/tus"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "tus-version"), Some("1.0.0"));

    // A real request from the page: readable headers exposed.
    let id = alice.upload("a.txt", "text/plain", b"cross-origin").await;
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/a.txt"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    let exposed = header(&r, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "etag",
        "content-disposition",
        "content-range",
        "location",
        "upload-offset",
        "hangar-attachment-id",
    ] {
        assert!(exposed.contains(h), "{h} missing from {exposed}");
    }
    assert_eq!(&r.bytes().await.unwrap()[..], b"cross-origin");

    // The second origin is listed too; an origin not listed gets no permission.
    let r = alice
        .get("/api/v1/auth/me")
        .header("origin", "http://other.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://other.test:8080")
    );
    let r = alice
        .get("/api/v1/auth/me")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "bearer calls work; the browser withholds the answer"
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_session_cookie_is_never_accepted_from_another_origin() {
    let app = TestApp::start_with(&["--cors-origins", APP]).await;
    app.member("alice").await;
    let r = Client::new()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hangar_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let me = |origin: Option<&str>| {
        let mut request = Client::new()
            .get(app.url("/api/v1/auth/me"))
            .header("cookie", cookie.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(me(None).await.unwrap().status(), 200);
    assert_eq!(
        me(Some(&app.url(""))).await.unwrap().status(),
        200,
        "our own origin"
    );
    let r = me(Some(APP)).await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn without_cors_origins_no_cross_origin_headers_are_sent() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let r = alice
        .get("/api/v1/auth/me")
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let r = Client::new()
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/tus"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}
