//! Observability against the real binary (SPEC §9.9): the access-log line of every request (route
//! template, caller, client address behind trusted proxies only, request id), JSON logs, `/readyz`,
//! the Prometheus metrics on their own listener; and the types that uploads are stored as when the
//! client does not say (issue 12, item 4).

mod common;

use base64::Engine;
use common::{Cluster, Server, User};
use reqwest::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A 1×1 PNG's first bytes: what `infer` needs to recognise it.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn pid(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)
}

/// The server's output lines that contain `needle`, waiting (at most 10 s) until there is one: the
/// access-log line is written when the response body has been sent, just after the client got it.
fn wait_for_lines(server: &Server, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = server
            .output
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect();
        if !lines.is_empty() {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no output line contains {needle:?}; output:\n{}",
            server.output_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fields of the one access-log line (text format) of the request with this id.
fn access_line(server: &Server, request_id: &str) -> HashMap<String, String> {
    let lines = wait_for_lines(server, &format!("request_id={request_id}"));
    assert_eq!(lines.len(), 1, "one access line per request: {lines:?}");
    let line = &lines[0];
    let (_, fields) = line
        .split_once("hangar::access: ")
        .unwrap_or_else(|| panic!("an access-log line: {line}"));
    let parsed: HashMap<String, String> = fields
        .split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("key=value: {kv:?} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    for key in [
        "method",
        "route",
        "status",
        "bytes",
        "duration_ms",
        "caller",
        "client",
        "request_id",
    ] {
        assert!(parsed.contains_key(key), "{key} in {line}");
    }
    assert!(
        parsed["duration_ms"].parse::<f64>().unwrap() >= 0.0,
        "{line}"
    );
    parsed
}

/// The address in the server's `metrics on ADDR` line.
fn metrics_addr(server: &Server) -> String {
    let line = wait_for_lines(server, "metrics on ").remove(0);
    let rest = line.split("metrics on ").nth(1).unwrap();
    rest.split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap()
        .to_string()
}

async fn scrape(addr: &str) -> String {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.unwrap()
}

/// The value of the series `name` whose labels include `labels` (Prometheus text format).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (series_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let found: Vec<(&str, &str)> = label_text
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once("=\""))
                .map(|(k, v)| (k, v.trim_end_matches('"')))
                .collect();
            labels
                .iter()
                .all(|want| found.contains(want))
                .then(|| number.parse().unwrap())
        })
}

async fn member_id(user: &User) -> i64 {
    let me: Value = user
        .get("/api/v1/auth/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_i64().unwrap()
}

/// A client whose connections come from `from` (any 127.0.0.0/8 address works on Linux).
fn client_from(from: &str) -> Client {
    Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_request_gets_one_access_line_with_route_caller_client_and_request_id() {
    let server = Server::start_with(&["--trusted-proxies", "127.0.0.2"]);
    let admin = server.admin().await;
    let admin_id = member_id(&admin).await;
    let id = admin.upload("a.txt", "text/plain", b"hello").await;

    // An authenticated call: the route template, the caller's id, the body bytes sent.
    let r = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .header("x-request-id", "test-req.1_A")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "test-req.1_A");
    let body = r.bytes().await.unwrap();
    let line = access_line(&server, "test-req.1_A");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/api/v1/attachments/{id}");
    assert_eq!(line["status"], "200");
    assert_eq!(line["bytes"], body.len().to_string());
    assert_eq!(line["caller"], admin_id.to_string());
    assert_eq!(line["client"], "127.0.0.1");

    // An invalid request id is replaced, and the new one is what the log says.
    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let r = admin
            .get("/api/v1/auth/me")
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let given = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(given, bad);
        assert!(
            (1..=128).contains(&given.len())
                && given
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{given}"
        );
        let line = access_line(&server, &given);
        assert_eq!(line["route"], "/api/v1/auth/me");
        assert_eq!(line["caller"], admin_id.to_string());
    }

    // Anonymous, unmatched, and refused calls.
    let anonymous = Client::new();
    let r = anonymous
        .get(server.url("/healthz"))
        .header("x-request-id", "anon-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = access_line(&server, "anon-1");
    assert_eq!(
        (line["caller"].as_str(), line["route"].as_str()),
        ("-", "/healthz")
    );
    let r = anonymous
        .get(server.url("/no/such/route"))
        .header("x-request-id", "nomatch-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let line = access_line(&server, "nomatch-1");
    assert_eq!(
        (line["route"].as_str(), line["status"].as_str()),
        ("-", "404")
    );
    let r = anonymous
        .get(server.url(&format!("/api/v1/attachments/{id}")))
        .header("x-request-id", "refused-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let line = access_line(&server, "refused-1");
    assert_eq!(line["caller"], "-");
    assert_eq!(line["status"], "401");
    // Every answer carries a request id, errors included.
    assert!(r.headers().contains_key("x-request-id"));

    // Forwarding headers from a peer that is not a trusted proxy are ignored…
    let r = client_from("127.0.0.1")
        .get(server.url("/healthz"))
        .header("x-request-id", "spoof-1")
        .header("x-forwarded-for", "203.0.113.7")
        .header("forwarded", "for=198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(access_line(&server, "spoof-1")["client"], "127.0.0.1");
    // …and believed from one: the right-most address that is not a trusted proxy.
    let proxy = client_from("127.0.0.2");
    let r = proxy
        .get(server.url("/healthz"))
        .header("x-request-id", "proxied-1")
        .header("x-forwarded-for", "192.0.2.1, 203.0.113.7, 127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(access_line(&server, "proxied-1")["client"], "203.0.113.7");
    let r = proxy
        .get(server.url("/healthz"))
        .header("x-request-id", "proxied-2")
        .header("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(access_line(&server, "proxied-2")["client"], "2001:db8::7");
    let r = proxy
        .get(server.url("/healthz"))
        .header("x-request-id", "proxied-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(access_line(&server, "proxied-3")["client"], "127.0.0.2");
}

#[tokio::test]
async fn an_application_acting_as_itself_is_the_caller() {
    let server = Server::start();
    let admin = server.admin().await;
    let app: Value = admin
        .post("/api/http/applications")
        .json(&json!({"name": "Logger"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (app_id, client_id) = (
        app["id"].as_str().unwrap().to_string(),
        app["clientId"].as_str().unwrap().to_string(),
    );
    let secret: String = admin
        .get(&format!(
            "/api/http/applications/clientId:{client_id}/client-secret"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token: Value = Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = Client::new()
        .get(server.url("/api/http/applications/me"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .header("x-request-id", "app-call-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = access_line(&server, "app-call-1");
    assert_eq!(line["caller"], app_id);
    assert_eq!(line["route"], "/api/http/applications/{app}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_same_keys() {
    let server = Server::start_with(&["--log-format", "json"]);
    let admin = server.admin().await;
    let admin_id = member_id(&admin).await;
    let r = admin
        .get("/api/v1/limits")
        .header("x-request-id", "json-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    let line = wait_for_lines(&server, "json-req-1").remove(0);
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["method"], "GET");
    assert_eq!(event["route"], "/api/v1/limits");
    assert_eq!(event["status"], 200);
    assert_eq!(event["bytes"], body.len());
    assert!(event["duration_ms"].as_f64().unwrap() >= 0.0, "{event}");
    assert_eq!(event["caller"], admin_id.to_string());
    assert_eq!(event["client"], "127.0.0.1");
    assert_eq!(event["request_id"], "json-req-1");
    assert_eq!(event["level"], "INFO");
    // Every line the server wrote is one JSON object, the start-up lines included.
    let output = server.output.lock().unwrap().clone();
    assert!(output.len() > 3);
    for line in output {
        let parsed: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
}

#[tokio::test]
async fn readyz_answers_when_ready_and_metrics_move_only_on_their_own_listener() {
    let server = Server::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    // The metrics listener never says `listening on`: that line is the API's, once.
    let listening: Vec<String> = server
        .output
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("listening on"))
        .cloned()
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(listening[0].contains(&server.addr));
    assert_ne!(metrics, server.addr);

    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    // /metrics is not on the API's listener, and the metrics listener serves nothing else.
    common::expect_error(
        reqwest::get(server.url("/metrics")).await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let r = reqwest::get(format!("http://{metrics}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let admin = server.admin().await;
    let before = scrape(&metrics).await;
    for name in [
        "hangar_http_requests_total",
        "hangar_http_request_duration_seconds_bucket",
        "hangar_http_received_bytes_total",
        "hangar_http_sent_bytes_total",
        "hangar_jobs_queued",
        "hangar_jobs_running",
        "hangar_jobs_failed",
        "hangar_stored_bytes",
        "hangar_stored_files",
    ] {
        assert!(value(&before, name, &[]).is_some(), "{name} in:\n{before}");
    }
    for mode in ["raw", "multipart", "url", "data-url", "two-stage"] {
        assert!(
            value(&before, "hangar_uploads_total", &[("mode", mode)]).is_some(),
            "{mode}"
        );
    }
    for outcome in ["delivered", "retrying", "failed"] {
        assert!(
            value(
                &before,
                "hangar_webhook_deliveries_total",
                &[("outcome", outcome)]
            )
            .is_some(),
            "{outcome}"
        );
    }

    // An upload moves the request, upload, byte and storage series.
    let content = vec![7u8; 5000];
    admin
        .upload("seven.bin", "application/octet-stream", &content)
        .await;
    let r = admin
        .post(&format!(
            "/api/v1/space/{}/storage/{}/upload",
            "obs",
            pid("x.txt")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no such space");
    let after = scrape(&metrics).await;
    let uploads =
        |text: &str, mode| value(text, "hangar_uploads_total", &[("mode", mode)]).unwrap();
    assert_eq!(uploads(&after, "raw"), uploads(&before, "raw") + 1.0);
    assert_eq!(uploads(&after, "multipart"), uploads(&before, "multipart"));
    let posts = |text: &str| {
        value(
            text,
            "hangar_http_requests_total",
            &[("method", "POST"), ("route", "/uploads"), ("status", "200")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(posts(&after), posts(&before) + 1.0);
    let missing_space = value(
        &after,
        "hangar_http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/api/v1/space/{space}/storage/{path}/upload"),
            ("status", "404"),
        ],
    );
    assert_eq!(missing_space, Some(1.0));
    let received = |t: &str| value(t, "hangar_http_received_bytes_total", &[]).unwrap();
    assert!(received(&after) >= received(&before) + 5000.0);
    let sent = |t: &str| value(t, "hangar_http_sent_bytes_total", &[]).unwrap();
    assert!(sent(&after) > sent(&before));
    let stored = |t: &str| value(t, "hangar_stored_bytes", &[]).unwrap();
    assert!(stored(&after) >= stored(&before) + 5000.0);
    let files = |t: &str| value(t, "hangar_stored_files", &[]).unwrap();
    assert_eq!(files(&after), files(&before) + 1.0);
    let count = value(
        &after,
        "hangar_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/uploads")],
    );
    assert_eq!(count, Some(1.0));
}

#[tokio::test]
async fn a_bad_trusted_proxy_or_log_format_is_refused_at_start_naming_the_flag() {
    for (flag, value) in [
        ("--trusted-proxies", "10.0.0.0/33"),
        ("--trusted-proxies", "proxy.example"),
        ("--log-format", "xml"),
        ("--metrics-listen", "not an address"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                flag,
                value,
                "--data-dir",
            ])
            .arg(&data)
            .env_remove("HANGAR_LOG_FORMAT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
        assert!(!data.exists(), "a refused start creates nothing");
    }
}

/// The type a file was stored as, and the headers it is served with.
async fn served(admin: &User, path: &str) -> (String, String, String) {
    let meta: Value = admin
        .get(&format!("/api/v1/space/types/storage/{}/meta", pid(path)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = admin
        .get(&format!("/api/v1/space/types/storage/{}", pid(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    let header = |name: &str| r.headers()[name].to_str().unwrap().to_string();
    (
        meta["type"].as_str().unwrap_or_default().to_string(),
        header("content-type"),
        header("content-disposition"),
    )
}

#[tokio::test]
async fn files_sent_without_a_useful_type_are_typed_by_their_bytes_then_their_name() {
    let server = Server::start();
    let admin = server.admin().await;

    // `curl --data-binary @pixel.png`: a form type on a PNG.
    let id = admin
        .upload("pixel.bin", "application/x-www-form-urlencoded", PNG)
        .await;
    let meta: Value = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["contentType"], "image/png", "{meta}");
    let r = admin
        .get(&format!("/api/v1/attachments/{id}/pixel.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    // A declared type is kept, whatever the bytes.
    let id = admin.upload("pixel.png", "text/plain", PNG).await;
    let meta: Value = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["contentType"], "text/plain");

    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "types", "name": "Types"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let upload =
        |path: &str| admin.post(&format!("/api/v1/space/types/storage/{}/upload", pid(path)));
    // Raw bytes with no Content-Type at all, and with octet-stream.
    let r = upload("img/raw").body(PNG.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = upload("img/raw-octet")
        .header("content-type", "application/octet-stream")
        .body(PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Text says nothing in its bytes: the name decides.
    let r = upload("docs/notes.txt")
        .body("plain words".to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A multipart part typed octet-stream, and a data URL with that type.
    let part = reqwest::multipart::Part::bytes(PNG.to_vec())
        .file_name("upload.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let r = upload("img/form")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let data_url = format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PNG)
    );
    let r = upload("img/data")
        .json(&json!({ "file": data_url }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A page sent as octet-stream is typed by its name, and still never served inline.
    let r = upload("docs/page.html")
        .header("content-type", "application/octet-stream")
        .body("<script>alert(1)</script>".to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    for path in ["img/raw", "img/raw-octet", "img/form", "img/data"] {
        let (stored, content_type, disposition) = served(&admin, path).await;
        assert_eq!(stored, "image/png", "{path}");
        assert_eq!(content_type, "image/png", "{path}");
        assert!(disposition.starts_with("inline"), "{path}: {disposition}");
    }
    let (stored, content_type, _) = served(&admin, "docs/notes.txt").await;
    assert_eq!(
        (stored.as_str(), content_type.as_str()),
        ("text/plain", "text/plain")
    );
    let (stored, _, disposition) = served(&admin, "docs/page.html").await;
    assert_eq!(stored, "text/html");
    assert!(disposition.starts_with("attachment"), "{disposition}");
}

/// Two nodes on one PostgreSQL and one S3 bucket: each counts its own requests, and both report the
/// installation's stored files, read from the shared database.
#[tokio::test]
async fn each_node_counts_its_own_requests_and_reports_the_shared_gauges() {
    let mut cluster = Cluster::new().await;
    let one = cluster.node_with(&["--metrics-listen", "127.0.0.1:0"]);
    let two = cluster.node_with(&["--metrics-listen", "127.0.0.1:0"]);
    let (m1, m2) = (metrics_addr(&one), metrics_addr(&two));
    let before = (scrape(&m1).await, scrape(&m2).await);
    let raw = |text: &str| value(text, "hangar_uploads_total", &[("mode", "raw")]).unwrap();
    let files = |text: &str| value(text, "hangar_stored_files", &[]).unwrap();

    one.admin()
        .await
        .upload("shared.txt", "text/plain", b"on node one")
        .await;
    let after = (scrape(&m1).await, scrape(&m2).await);
    assert_eq!(raw(&after.0), raw(&before.0) + 1.0, "node one stored it");
    assert_eq!(raw(&after.1), raw(&before.1), "node two did not");
    assert_eq!(files(&after.0), files(&before.0) + 1.0);
    assert_eq!(
        files(&after.1),
        files(&after.0),
        "the gauge is the installation's"
    );
    assert_eq!(
        reqwest::get(two.url("/readyz")).await.unwrap().status(),
        200
    );
}
