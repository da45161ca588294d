//! The API description (SPEC §9.9) served by the real binary: `GET /api/openapi.json` to anyone, the
//! same document as a page at `GET /api/docs` that loads nothing from anywhere, and every operation
//! it names reaching a route of the server. (scripts/api-check.sh checks the answers themselves
//! against the document with schemathesis.)

mod common;
use common::*;

use serde_json::Value;

async fn document(server: &Server) -> Value {
    let r = reqwest::get(server.url("/api/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            found.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_served_to_anyone() {
    let server = Server::start();
    let doc = document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    for expected in [
        ("POST", "/uploads"),
        ("GET", "/api/v1/attachments/{id}"),
        ("PATCH", "/api/v1/tus/{id}"),
        ("POST", "/oauth/token"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
    ] {
        assert!(
            ops.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing"
        );
    }
    let login = &doc["paths"]["/api/v1/auth/login"]["post"];
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Login"
    );
    assert_eq!(
        login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Member"
    );
    assert_eq!(
        doc["paths"]["/api/v1/spaces"]["get"]["security"],
        serde_json::json!([{"bearer": []}, {"session": []}])
    );
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn the_page_shows_every_operation_and_loads_nothing_from_elsewhere() {
    let server = Server::start();
    let doc = document(&server).await;
    let r = reqwest::get(server.url("/api/docs")).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let page = r.text().await.unwrap();
    for (method, path) in operations(&doc) {
        let shown = format!(
            "<span class=\"m {}\">{method}</span>{path}",
            method.to_ascii_lowercase()
        );
        assert!(page.contains(&shown), "{method} {path} is not on the page");
    }
    assert!(page.contains("id=\"schema-Attachment\""));
    for external in [
        "<script", "<link", "src=", "url(", "@import", "http://", "https://",
    ] {
        assert!(!page.contains(external), "the page has {external}");
    }
}

/// Each documented operation, asked without credentials, reaches a route of the server: never the
/// router's own `404` (unknown path) or `405` (known path, other method). Without credentials, no
/// request changes anything.
#[tokio::test]
async fn every_documented_operation_reaches_a_route() {
    let server = Server::start();
    let doc = document(&server).await;
    let client = reqwest::Client::new();
    let ops = operations(&doc);
    assert!(ops.len() > 140, "{} operations", ops.len());
    for (method, path) in ops {
        // `YQ` is a valid path id (base64 of `a`) and a plausible value for every other parameter.
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "YQ" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(m, server.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        if status == 404 {
            assert!(
                !body.contains("route not found") && method != "HEAD",
                "{method} {path} is not routed: {body}"
            );
        }
    }
}
