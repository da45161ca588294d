//! Workspace storage over real HTTP (SPEC §6, §9, §10, §11): the five upload modes with byte-exact
//! round trips, pathId forms and path validation, conflicts and overwrites, listing, move and delete,
//! access control, the per-file limit and space quotas (also under concurrency), the two-stage
//! signed PUT and its misuse, SSRF-safe fetching of remote URLs, malformed requests, declared
//! checksums, and the event outbox.

mod common;
use common::*;

use reqwest::{Client, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------------

/// Standard base64 with padding (RFC 4648 §4).
fn b64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// URL-safe base64 without padding (RFC 4648 §5) of raw bytes.
fn b64_url(bytes: &[u8]) -> String {
    b64_std(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The canonical pathId of a path.
fn pid(path: &str) -> String {
    b64_url(path.as_bytes())
}

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A valid 1×1 RGB PNG.
fn tiny_png() -> Vec<u8> {
    hex::decode("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082").unwrap()
}

async fn blob_names(server: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = server
        .blob_files()
        .await
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits (bounded) until a condition holds; the result is then asserted by the caller.
async fn settle(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

// ---------------------------------------------------------------------------------------------------
// API helpers
// ---------------------------------------------------------------------------------------------------

fn upload_url(space: &str, path_id: &str) -> String {
    format!("/api/v1/space/{space}/storage/{path_id}/upload")
}

fn file_url(space: &str, path_id: &str) -> String {
    format!("/api/v1/space/{space}/storage/{path_id}")
}

async fn expect_json(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
}

/// Creates a space (as the administrator) and makes these members of it.
async fn create_space(admin: &User, id: &str, quota: Option<i64>, members: &[&str]) {
    let mut body = json!({"id": id, "name": format!("Space {id}")});
    if let Some(q) = quota {
        body["quotaBytes"] = json!(q);
    }
    let r = admin
        .post("/api/v1/spaces")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "creating space {id}");
    for m in members {
        let r = admin
            .post(&format!("/api/v1/spaces/{id}/members"))
            .json(&json!({ "username": m }))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "adding {m} to {id}: {}",
            r.status()
        );
    }
}

async fn put_raw(
    user: &User,
    space: &str,
    path: &str,
    content_type: &str,
    bytes: &[u8],
) -> Response {
    user.post(&upload_url(space, &pid(path)))
        .header("content-type", content_type)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn put_json(user: &User, space: &str, path: &str, body: &Value) -> Response {
    user.post(&upload_url(space, &pid(path)))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn put_multipart(
    user: &User,
    space: &str,
    path: &str,
    content_type: &str,
    bytes: &[u8],
) -> Response {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name("upload.bin")
        .mime_str(content_type)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    user.post(&upload_url(space, &pid(path)))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads with a raw body and checks the answer's status; answers the description.
async fn stored(
    user: &User,
    space: &str,
    path: &str,
    ctype: &str,
    bytes: &[u8],
    status: u16,
) -> Value {
    expect_json(put_raw(user, space, path, ctype, bytes).await, status).await
}

async fn download(user: &User, space: &str, path: &str) -> Vec<u8> {
    let r = user.get(&file_url(space, &pid(path))).send().await.unwrap();
    assert_eq!(r.status(), 200, "downloading {path}");
    r.bytes().await.unwrap().to_vec()
}

async fn meta_of(user: &User, space: &str, path: &str) -> Response {
    user.get(&format!("{}/meta", file_url(space, &pid(path))))
        .send()
        .await
        .unwrap()
}

async fn list(
    user: &User,
    space: &str,
    dir: Option<&str>,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Response {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(d) = dir {
        query.push(("dir", pid(d)));
    }
    if let Some(l) = limit {
        query.push(("limit", l.to_string()));
    }
    if let Some(c) = cursor {
        query.push(("cursor", c.to_string()));
    }
    user.get(&format!("/api/v1/space/{space}/storage"))
        .query(&query)
        .send()
        .await
        .unwrap()
}

/// Every name in a directory, following `next` to the end.
async fn all_names(user: &User, space: &str, dir: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = expect_json(
            list(user, space, dir, Some(1000), cursor.as_deref()).await,
            200,
        )
        .await;
        for e in page["data"].as_array().unwrap() {
            names.push(e["name"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return names,
        }
    }
}

async fn used_bytes(admin: &User, space: &str) -> i64 {
    let v = expect_json(
        admin
            .get(&format!("/api/v1/spaces/{space}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    v["usedBytes"].as_i64().unwrap()
}

/// This space's entry in `GET /api/v1/limits`.
async fn limits_of(user: &User, space: &str) -> Value {
    let v = expect_json(user.get("/api/v1/limits").send().await.unwrap(), 200).await;
    v["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == space)
        .unwrap_or_else(|| panic!("{space} in {v}"))
        .clone()
}

/// Waits until the space holds no reservation (request reservations are released after the answer).
async fn no_reservation_left(user: &User, space: &str) -> Value {
    for _ in 0..200 {
        let l = limits_of(user, space).await;
        if l["reservedBytes"] == 0 {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l = limits_of(user, space).await;
    assert_eq!(l["reservedBytes"], 0, "{l}");
    l
}

/// Checks a stored file's description against what was sent.
fn check_entry(v: &Value, path: &str, bytes: &[u8], content_type: &str) {
    let id = v["id"].as_str().unwrap_or_else(|| panic!("id in {v}"));
    assert_eq!(id, pid(path), "{v}");
    assert!(
        !id.contains(['=', '+', '/']),
        "canonical ids are URL-safe without padding: {id}"
    );
    assert_eq!(v["path"], path, "{v}");
    assert_eq!(v["name"], path.rsplit('/').next().unwrap(), "{v}");
    assert_eq!(v["kind"], "file", "{v}");
    assert_eq!(v["size"], bytes.len(), "{v}");
    assert_eq!(v["type"], content_type, "{v}");
    assert_eq!(v["checksum"], sha256_hex(bytes), "{v}");
    assert!(v["meta"].is_object(), "{v}");
    let created = v["createdUtc"]
        .as_i64()
        .unwrap_or_else(|| panic!("createdUtc in {v}"));
    let modified = v["lastModifiedUtc"]
        .as_i64()
        .unwrap_or_else(|| panic!("lastModifiedUtc in {v}"));
    assert!(created > 1_600_000_000_000, "epoch ms: {v}");
    assert!(modified >= created, "{v}");
}

// ---------------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client: reads the answer while the body is still being written, so that an early
// refusal (413 before the body is read) is seen as such instead of as a broken connection.
// ---------------------------------------------------------------------------------------------------

struct RawAnswer {
    status: u16,
    body: String,
}

impl RawAnswer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("JSON body, got {:?} ({})", self.body, self.status))
    }
}

async fn raw_exchange(addr: &str, head: String, body: bytes::Bytes) -> RawAnswer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
        let _ = wr.flush().await;
        wr // kept open until the answer has been read
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16384];
    let read_all = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all)
        .await
        .expect("an answer arrives");
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return RawAnswer {
            status: 0,
            body: text,
        };
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawAnswer { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn raw_head(
    server: &TestApp,
    user: &User,
    target: &str,
    content_type: &str,
    framing: &str,
) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n\
         {framing}\r\nConnection: close\r\n\r\n",
        server.addr, user.token
    )
}

/// A chunked raw upload of `bytes` in pieces of 400 bytes.
async fn raw_chunked_upload(
    server: &TestApp,
    user: &User,
    space: &str,
    path: &str,
    bytes: &[u8],
) -> RawAnswer {
    let head = raw_head(
        server,
        user,
        &upload_url(space, &pid(path)),
        "application/octet-stream",
        "Transfer-Encoding: chunked",
    );
    let mut body = Vec::new();
    for piece in bytes.chunks(400) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    raw_exchange(&server.addr, head, body.into()).await
}

fn assert_raw_error(a: &RawAnswer, status: u16, code: &str) {
    assert_eq!(a.status, status, "answer: {}", a.body);
    let v = a.json();
    assert_eq!(v["error"], code, "{v}");
    assert_eq!(v["httpStatusCode"], status, "{v}");
    assert!(
        v["errorText"].as_str().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server for remote URLs: fixed answers per path, and a count of connections.
// ---------------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Reply {
    Body {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
        chunked: bool,
    },
    Redirect(String),
    /// Accepts and reads the request, then never answers.
    Hang,
}

fn ok_reply(content_type: &'static str, body: &[u8]) -> Reply {
    Reply::Body {
        status: 200,
        content_type,
        body: body.to_vec(),
        chunked: false,
    }
}

type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

struct Remote {
    port: u16,
    /// The peer address of every connection accepted, on 127.0.0.1 and on [::1].
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// The connections this test made itself to count the others.
    probes: Mutex<Vec<SocketAddr>>,
    v6: bool,
}

impl Remote {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many connections others made. Connects once itself on each address and waits until
    /// those probes were accepted: accepts are served in order, so every connection made before
    /// the probes has been counted by then.
    async fn connections_from_others(&self) -> usize {
        let mut probes = vec![TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()];
        if self.v6 {
            probes.push(TcpStream::connect(("::1", self.port)).await.unwrap());
        }
        let mine: Vec<SocketAddr> = probes.iter().map(|p| p.local_addr().unwrap()).collect();
        self.probes.lock().unwrap().extend(&mine);
        for _ in 0..400 {
            let peers = self.peers.lock().unwrap().clone();
            if mine.iter().all(|m| peers.contains(m)) {
                let all_probes = self.probes.lock().unwrap().clone();
                return peers.iter().filter(|p| !all_probes.contains(p)).count();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the probe connections were never accepted");
    }
}

async fn serve_remote(listener: TcpListener, routes: Routes, peers: Arc<Mutex<Vec<SocketAddr>>>) {
    loop {
        let Ok((mut sock, peer)) = listener.accept().await else {
            return;
        };
        peers.lock().unwrap().push(peer);
        let routes = routes.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            match routes(&path) {
                Reply::Hang => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Reply::Redirect(location) => {
                    let head = format!(
                        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                }
                Reply::Body {
                    status,
                    content_type,
                    body,
                    chunked,
                } => {
                    let mut out = format!(
                        "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
                    )
                    .into_bytes();
                    if chunked {
                        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                        for piece in body.chunks(300) {
                            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                            out.extend_from_slice(piece);
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"0\r\n\r\n");
                    } else {
                        out.extend_from_slice(
                            format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                        );
                        out.extend_from_slice(&body);
                    }
                    let _ = sock.write_all(&out).await;
                    let _ = sock.shutdown().await;
                }
            }
        });
    }
}

/// Starts a remote server on 127.0.0.1 (and, when the port is free there, on [::1] too).
async fn remote(routes: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Remote {
    let routes: Routes = Arc::new(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let v6 = match TcpListener::bind(("::1", port)).await {
        Ok(v6) => {
            tokio::spawn(serve_remote(v6, routes.clone(), peers.clone()));
            true
        }
        Err(_) => false,
    };
    tokio::spawn(serve_remote(listener, routes, peers.clone()));
    Remote {
        port,
        peers,
        probes: Mutex::new(Vec::new()),
        v6,
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. The five upload modes
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_upload_mode_stores_the_exact_bytes() {
    let origin = remote(|path| match path {
        "/remote.bin" => ok_reply(
            "application/x-hangar-test",
            b"bytes from afar \x00\x01\xfe\xff",
        ),
        _ => Reply::Body {
            status: 404,
            content_type: "text/plain",
            body: b"nope".to_vec(),
            chunked: false,
        },
    })
    .await;
    let allow = format!("127.0.0.1:{}", origin.port);
    let server = TestApp::start_with(&["--fetch-allow", &allow]).await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    create_space(&admin, "team", None, &["bob"]).await;

    // Raw body.
    let png = tiny_png();
    let v = stored(&bob, "team", "photos/profile.png", "image/png", &png, 201).await;
    check_entry(&v, "photos/profile.png", &png, "image/png");
    assert_eq!(
        v["id"], "cGhvdG9zL3Byb2ZpbGUucG5n",
        "the reference's example id"
    );
    let created = v["createdUtc"].as_i64().unwrap();
    let r = bob
        .get(&file_url("team", &pid("photos/profile.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), png);
    let described = expect_json(meta_of(&bob, "team", "photos/profile.png").await, 200).await;
    check_entry(&described, "photos/profile.png", &png, "image/png");

    // Replacing answers 200 and keeps the creation time.
    let second = pseudo_random_bytes(5000, 1);
    let v = stored(
        &bob,
        "team",
        "photos/profile.png",
        "image/png",
        &second,
        200,
    )
    .await;
    check_entry(&v, "photos/profile.png", &second, "image/png");
    assert_eq!(v["createdUtc"], created);
    assert_eq!(download(&bob, "team", "photos/profile.png").await, second);

    // Multipart, with another field before the `file` part.
    let pdf = pseudo_random_bytes(70_000, 2);
    let form = reqwest::multipart::Form::new()
        .text("note", "ignored")
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf.clone())
                .file_name("report.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let r = bob
        .post(&upload_url("team", &pid("docs/report.pdf")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 201).await;
    check_entry(&v, "docs/report.pdf", &pdf, "application/pdf");
    assert_eq!(download(&bob, "team", "docs/report.pdf").await, pdf);
    let v = expect_json(
        put_multipart(&bob, "team", "docs/report.pdf", "application/pdf", b"v2").await,
        200,
    )
    .await;
    check_entry(&v, "docs/report.pdf", b"v2", "application/pdf");

    // A form without a `file` part stores nothing.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = bob
        .post(&upload_url("team", &pid("docs/none.txt")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 400, "{}", r.text().await.unwrap());
    assert_eq!(meta_of(&bob, "team", "docs/none.txt").await.status(), 404);

    // Data URL, base64 (every byte value).
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let url = format!(
        "data:application/octet-stream;base64,{}",
        b64_std(&all_bytes)
    );
    let v = expect_json(
        put_json(&bob, "team", "data/all.bin", &json!({ "file": url })).await,
        201,
    )
    .await;
    check_entry(&v, "data/all.bin", &all_bytes, "application/octet-stream");
    assert_eq!(download(&bob, "team", "data/all.bin").await, all_bytes);

    // Data URL, percent-encoded.
    let v = expect_json(
        put_json(
            &bob,
            "team",
            "data/hello.txt",
            &json!({"file": "data:text/plain,hello%20world"}),
        )
        .await,
        201,
    )
    .await;
    check_entry(&v, "data/hello.txt", b"hello world", "text/plain");
    assert_eq!(
        download(&bob, "team", "data/hello.txt").await,
        b"hello world"
    );

    // Remote URL: the type comes from the remote's Content-Type.
    let v = expect_json(
        put_json(
            &bob,
            "team",
            "remote/r.bin",
            &json!({"file": origin.url("/remote.bin")}),
        )
        .await,
        201,
    )
    .await;
    let remote_bytes = b"bytes from afar \x00\x01\xfe\xff";
    check_entry(
        &v,
        "remote/r.bin",
        remote_bytes,
        "application/x-hangar-test",
    );
    let r = bob
        .get(&file_url("team", &pid("remote/r.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-hangar-test");
    assert_eq!(r.bytes().await.unwrap().to_vec(), remote_bytes);

    // Two-stage.
    let body = pseudo_random_bytes(3000, 3);
    let first = expect_json(
        put_json(
            &bob,
            "team",
            "big/two.txt",
            &json!({"file": {"type": "text/plain", "size": body.len(), "meta": {"description": "a file", "n": 7}}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    assert_eq!(first["id"], pid("big/two.txt"), "{first}");
    assert_eq!(first["path"], "big/two.txt", "{first}");
    let request = &first["uploadRequest"];
    assert_eq!(request["method"], "PUT", "{first}");
    assert_eq!(request["headers"]["Content-Type"], "text/plain", "{first}");
    assert_eq!(
        request["headers"]["Content-Length"],
        body.len().to_string(),
        "{first}"
    );
    let put_url = request["url"].as_str().unwrap().to_string();
    assert!(put_url.starts_with(&server.base), "{put_url}");

    // Not visible before the PUT.
    assert_eq!(meta_of(&bob, "team", "big/two.txt").await.status(), 404);
    let r = bob
        .get(&file_url("team", &pid("big/two.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let in_root = all_names(&bob, "team", None).await;
    assert!(!in_root.contains(&"big".to_string()), "{in_root:?}");
    let r = list(&bob, "team", Some("big"), None, None).await;
    assert_eq!(r.status(), 404, "no directory yet");

    // The PUT needs no credentials.
    let r = Client::new()
        .put(&put_url)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 201).await;
    check_entry(&v, "big/two.txt", &body, "text/plain");
    assert_eq!(v["meta"], json!({"description": "a file", "n": 7}));
    assert_eq!(download(&bob, "team", "big/two.txt").await, body);
    let described = expect_json(meta_of(&bob, "team", "big/two.txt").await, 200).await;
    check_entry(&described, "big/two.txt", &body, "text/plain");
    assert_eq!(described["meta"], json!({"description": "a file", "n": 7}));
    assert_eq!(all_names(&bob, "team", Some("big")).await, ["two.txt"]);

    // Usage counts every file once.
    let total = second.len() + 2 + all_bytes.len() + 11 + remote_bytes.len() + body.len();
    assert_eq!(used_bytes(&admin, "team").await, total as i64);
}

// ---------------------------------------------------------------------------------------------------
// 2. pathId forms and path validation
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn standard_and_padded_path_ids_name_the_same_file() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let path = "a??.txt";
    let standard = b64_std(path.as_bytes());
    assert_eq!(standard, "YT8/LnR4dA==");
    let canonical = pid(path);
    assert_eq!(canonical, "YT8_LnR4dA");

    let v = expect_json(
        admin
            .post(&upload_url("team", &canonical))
            .header("content-type", "text/plain")
            .body("one")
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(v["id"], canonical);

    for form in [
        "YT8%2FLnR4dA%3D%3D".to_string(),
        "YT8%2FLnR4dA==".to_string(),
        "YT8%2FLnR4dA".to_string(),
        "YT8_LnR4dA==".to_string(),
        "YT8_LnR4dA%3D%3D".to_string(),
    ] {
        let r = admin.get(&file_url("team", &form)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{form}");
        assert_eq!(r.text().await.unwrap(), "one", "{form}");
        let m = expect_json(
            admin
                .get(&format!("{}/meta", file_url("team", &form)))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(m["id"], canonical, "answers use the canonical form: {m}");
        assert_eq!(m["path"], path);
    }

    // Uploading through the standard form replaces the same file and answers the canonical id.
    let v = expect_json(
        admin
            .post(&upload_url("team", "YT8%2FLnR4dA%3D%3D"))
            .header("content-type", "text/plain")
            .body("two")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["id"], canonical);
    assert_eq!(v["path"], path);
    let listing = expect_json(list(&admin, "team", None, None, None).await, 200).await;
    let data = listing["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{listing}");
    assert_eq!(data[0]["id"], canonical);
    assert_eq!(download(&admin, "team", path).await, b"two");

    // No Unicode normalization: composed and decomposed names are two files.
    stored(&admin, "team", "caf\u{e9}", "text/plain", b"composed", 201).await;
    stored(
        &admin,
        "team",
        "cafe\u{301}",
        "text/plain",
        b"decomposed",
        201,
    )
    .await;
    assert_eq!(download(&admin, "team", "caf\u{e9}").await, b"composed");
    assert_eq!(download(&admin, "team", "cafe\u{301}").await, b"decomposed");
}

#[tokio::test]
async fn invalid_paths_are_refused_with_their_reason() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    stored(&admin, "team", "a/b", "text/plain", b"x", 201).await;

    let too_long = "a".repeat(1025);
    let cases: Vec<(String, &str)> = vec![
        ("../x".into(), ".."),
        ("a/../b".into(), ".."),
        ("a/./b".into(), "'.'"),
        ("/a".into(), "starts with"),
        ("a/".into(), "ends with"),
        ("a//b".into(), "empty segment"),
        ("a\0b".into(), "control"),
        ("a\u{1}b".into(), "control"),
        ("a\nb".into(), "control"),
        ("a\u{7f}b".into(), "control"),
        (too_long.clone(), "1024"),
    ];
    for (path, reason) in &cases {
        let id = pid(path);
        let r = admin
            .post(&upload_url("team", &id))
            .header("content-type", "text/plain")
            .body("nope")
            .send()
            .await
            .unwrap();
        let body = expect_error(r, 400, "bad-path").await;
        let text = body["errorText"].as_str().unwrap();
        assert!(text.contains(reason), "{path:?}: {text}");
        for route in [
            file_url("team", &id),
            format!("{}/meta", file_url("team", &id)),
        ] {
            let r = admin.get(&route).send().await.unwrap();
            expect_error(r, 400, "bad-path").await;
        }
    }
    // An empty path (padding only).
    let r = admin
        .get(&format!("{}/meta", file_url("team", "%3D%3D")))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 400, "bad-path").await;
    assert!(
        body["errorText"].as_str().unwrap().contains("empty"),
        "{body}"
    );

    // Not base64, or base64 of bytes that are not UTF-8.
    for id in ["!!!", "YQ===", "Y", "a%2Bb*"] {
        let r = admin
            .post(&upload_url("team", id))
            .header("content-type", "text/plain")
            .body("nope")
            .send()
            .await
            .unwrap();
        let body = expect_error(r, 400, "bad-path").await;
        assert!(
            body["errorText"].as_str().unwrap().contains("base64"),
            "{id}: {body}"
        );
    }
    let not_utf8 = b64_url(&[0xff, 0xfe, b'a']);
    let r = admin
        .post(&upload_url("team", &not_utf8))
        .header("content-type", "text/plain")
        .body("nope")
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 400, "bad-path").await;
    assert!(
        body["errorText"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );
    let r = admin.get(&file_url("team", "%FF%FE")).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // 1024 bytes is fine; nothing else was stored.
    let longest = format!("d/{}", "b".repeat(1022));
    stored(&admin, "team", &longest, "text/plain", b"edge", 201).await;
    assert_eq!(all_names(&admin, "team", None).await, ["a", "d"]);
    assert_eq!(all_names(&admin, "team", Some("a")).await, ["b"]);
    assert_eq!(server.blob_files().await.len(), 2);

    // Move destinations are validated the same way.
    for (path, _) in &cases {
        let r = admin
            .post(&format!("{}/move", file_url("team", &pid("a/b"))))
            .json(&json!({ "to": path }))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-path").await;
    }
    assert_eq!(download(&admin, "team", "a/b").await, b"x");
}

// ---------------------------------------------------------------------------------------------------
// 3. Conflicts, overwrites and concurrent writers
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn directories_and_files_do_not_collide_and_overwrites_release_old_bytes() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    stored(&admin, "team", "d/f.txt", "text/plain", b"file in d", 201).await;

    // Onto a directory, or under a file, in every mode.
    let modes: Vec<(&str, Value)> = vec![
        ("data", json!({"file": "data:text/plain,x"})),
        (
            "two-stage",
            json!({"file": {"type": "text/plain", "size": 1}}),
        ),
    ];
    let r = put_raw(&admin, "team", "d", "text/plain", b"x").await;
    expect_error(r, 409, "is-a-directory").await;
    let r = put_multipart(&admin, "team", "d", "text/plain", b"x").await;
    expect_error(r, 409, "is-a-directory").await;
    let r = put_raw(&admin, "team", "d/f.txt/under", "text/plain", b"x").await;
    expect_error(r, 409, "under-a-file").await;
    let r = put_raw(&admin, "team", "d/f.txt/deeper/still", "text/plain", b"x").await;
    expect_error(r, 409, "under-a-file").await;
    let r = put_multipart(&admin, "team", "d/f.txt/under", "text/plain", b"x").await;
    expect_error(r, 409, "under-a-file").await;
    for (mode, body) in &modes {
        let r = put_json(&admin, "team", "d", body).await;
        let e = expect_error(r, 409, "is-a-directory").await;
        assert!(
            e["errorText"].as_str().unwrap().contains("directory"),
            "{mode}: {e}"
        );
        let r = put_json(&admin, "team", "d/f.txt/under", body).await;
        expect_error(r, 409, "under-a-file").await;
    }
    assert_eq!(all_names(&admin, "team", Some("d")).await, ["f.txt"]);
    assert_eq!(download(&admin, "team", "d/f.txt").await, b"file in d");
    assert_eq!(blob_names(&server).await, [sha256_hex(b"file in d")]);

    // An overwrite removes the old bytes from disk when nothing else refers to them.
    let old = pseudo_random_bytes(10_000, 10);
    let new = pseudo_random_bytes(20_000, 11);
    stored(
        &admin,
        "team",
        "o.bin",
        "application/octet-stream",
        &old,
        201,
    )
    .await;
    assert!(blob_names(&server).await.contains(&sha256_hex(&old)));
    stored(
        &admin,
        "team",
        "o.bin",
        "application/octet-stream",
        &new,
        200,
    )
    .await;
    let mut want = vec![sha256_hex(b"file in d"), sha256_hex(&new)];
    want.sort();
    assert_eq!(blob_names(&server).await, want);
    assert_eq!(download(&admin, "team", "o.bin").await, new);
    assert_eq!(used_bytes(&admin, "team").await, (9 + new.len()) as i64);

    // Shared bytes stay while another file refers to them.
    stored(
        &admin,
        "team",
        "copy.bin",
        "application/octet-stream",
        &new,
        201,
    )
    .await;
    stored(
        &admin,
        "team",
        "o.bin",
        "application/octet-stream",
        b"small",
        200,
    )
    .await;
    assert!(blob_names(&server).await.contains(&sha256_hex(&new)));
    assert_eq!(download(&admin, "team", "copy.bin").await, new);
    assert_eq!(used_bytes(&admin, "team").await, (9 + new.len() + 5) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_to_one_path_leave_exactly_one_whole_file() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let contents: Vec<Vec<u8>> = (0..10)
        .map(|i| pseudo_random_bytes(200_000 + i * 1000, 100 + i as u64))
        .collect();
    let tasks: Vec<_> = contents
        .iter()
        .map(|c| {
            let admin = admin.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let r = put_raw(
                    &admin,
                    "team",
                    "same/one.bin",
                    "application/octet-stream",
                    &c,
                )
                .await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 || status == 201, "{status}: {body}");
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "exactly one upload created the file: {statuses:?}"
    );
    let got = download(&admin, "team", "same/one.bin").await;
    let winner = contents
        .iter()
        .find(|c| **c == got)
        .expect("the stored bytes are exactly one of the uploads");
    let m = expect_json(meta_of(&admin, "team", "same/one.bin").await, 200).await;
    assert_eq!(m["size"], winner.len());
    assert_eq!(m["checksum"], sha256_hex(winner));
    assert_eq!(all_names(&admin, "team", Some("same")).await, ["one.bin"]);
    assert_eq!(used_bytes(&admin, "team").await, winner.len() as i64);
    assert_eq!(
        blob_names(&server).await,
        [sha256_hex(winner)],
        "the replaced bytes are gone"
    );
    assert!(settle(|| server.temporaries() == 0).await);
}

// ---------------------------------------------------------------------------------------------------
// 4. Reading and managing
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn listing_pages_through_a_directory_in_byte_order() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    for name in ["B", "a", "Z", "\u{e9}", "10", "9"] {
        stored(
            &admin,
            "team",
            &format!("top/{name}"),
            "text/plain",
            name.as_bytes(),
            201,
        )
        .await;
    }
    stored(
        &admin,
        "team",
        "top/d/inner.txt",
        "text/plain",
        b"inner",
        201,
    )
    .await;
    stored(&admin, "team", "other.txt", "text/plain", b"o", 201).await;

    let expected = ["10", "9", "B", "Z", "a", "d", "\u{e9}"];
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = expect_json(
            list(&admin, "team", Some("top"), Some(2), cursor.as_deref()).await,
            200,
        )
        .await;
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2, "{page}");
        for e in data {
            let name = e["name"].as_str().unwrap();
            assert_eq!(e["path"], format!("top/{name}"), "{e}");
            assert_eq!(e["id"], pid(&format!("top/{name}")), "{e}");
            assert!(e["lastModifiedUtc"].as_i64().is_some(), "{e}");
            if name == "d" {
                assert_eq!(e["kind"], "dir", "{e}");
            } else {
                assert_eq!(e["kind"], "file", "{e}");
                assert_eq!(e["size"], name.len(), "{e}");
                assert_eq!(e["type"], "text/plain", "{e}");
                assert_eq!(e["checksum"], sha256_hex(name.as_bytes()), "{e}");
            }
            names.push(name.to_string());
        }
        match &page["next"] {
            Value::Null => break,
            Value::String(n) => cursor = Some(n.clone()),
            other => panic!("next is a string or null: {other}"),
        }
        assert!(pages < 10, "the listing ends");
    }
    assert_eq!(names, expected);
    assert_eq!(pages, 4);

    // The root without `dir`.
    let root = expect_json(list(&admin, "team", None, None, None).await, 200).await;
    assert_eq!(root["next"], Value::Null, "{root}");
    let root_names: Vec<&str> = root["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(root_names, ["other.txt", "top"]);

    // A directory's and a file's descriptions.
    let d = expect_json(meta_of(&admin, "team", "top/d").await, 200).await;
    assert_eq!(d["kind"], "dir", "{d}");
    assert_eq!(d["path"], "top/d");
    assert_eq!(d["name"], "d");
    assert_eq!(d["id"], pid("top/d"));
    let f = expect_json(meta_of(&admin, "team", "top/d/inner.txt").await, 200).await;
    check_entry(&f, "top/d/inner.txt", b"inner", "text/plain");

    // Errors.
    let r = list(&admin, "team", Some("other.txt"), None, None).await;
    expect_error(r, 409, "not-a-directory").await;
    let r = list(&admin, "team", Some("nowhere"), None, None).await;
    expect_error(r, 404, "not-found").await;
    for limit in ["0", "-1", "1001", "abc"] {
        let r = admin
            .get("/api/v1/space/team/storage")
            .query(&[("limit", limit)])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 400, "limit={limit}: {text}");
    }
    let r = admin
        .get("/api/v1/space/team/storage")
        .query(&[("cursor", "!!not a cursor!!")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(meta_of(&admin, "team", "top/nothing").await.status(), 404);
    // Downloading a directory is not a file download.
    let r = admin
        .get(&file_url("team", &pid("top/d")))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "is-a-directory").await;
}

#[tokio::test]
async fn downloads_keep_range_etag_and_safe_headers() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let bytes = pseudo_random_bytes(1000, 5);
    stored(
        &admin,
        "team",
        "f/data.bin",
        "application/octet-stream",
        &bytes,
        201,
    )
    .await;
    let url = file_url("team", &pid("f/data.bin"));
    let etag = format!("\"{}\"", sha256_hex(&bytes));

    let r = admin.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-length"], "1000");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("private"));
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    let r = admin
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(r.bytes().await.unwrap().to_vec(), &bytes[10..20]);
    let r = admin
        .get(&url)
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), &bytes[995..]);
    let r = admin
        .get(&url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = admin
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = admin
        .get(&url)
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());

    let r = admin.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = admin
        .head(&file_url("team", &pid("f/none")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Active content is offered as a download, never rendered.
    stored(
        &admin,
        "team",
        "f/page.html",
        "text/html",
        b"<script>alert(1)</script>",
        201,
    )
    .await;
    let r = admin
        .get(&file_url("team", &pid("f/page.html")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let cd = r.headers()["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment"), "{cd}");
}

#[tokio::test]
async fn delete_and_move_files_and_directories() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    stored(&admin, "team", "m/a.txt", "text/plain", b"aaa", 201).await;
    stored(&admin, "team", "m/sub/c.txt", "text/plain", b"ccccc", 201).await;
    stored(&admin, "team", "x.txt", "text/plain", b"xx", 201).await;

    // Delete a file.
    let url = file_url("team", &pid("x.txt"));
    let v = expect_json(admin.delete(&url).send().await.unwrap(), 200).await;
    assert_eq!(v["httpStatusCode"], 200);
    let r = admin.get(&url).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.delete(&url).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    assert_eq!(used_bytes(&admin, "team").await, 8);
    assert!(!blob_names(&server).await.contains(&sha256_hex(b"xx")));

    // Rename a file.
    let r = admin
        .post(&format!("{}/move", file_url("team", &pid("m/a.txt"))))
        .json(&json!({"to": "m/b.txt"}))
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 200).await;
    check_entry(&v, "m/b.txt", b"aaa", "text/plain");
    assert_eq!(meta_of(&admin, "team", "m/a.txt").await.status(), 404);
    assert_eq!(download(&admin, "team", "m/b.txt").await, b"aaa");

    // Move a directory: its children follow, new parents appear.
    let r = admin
        .post(&format!("{}/move", file_url("team", &pid("m"))))
        .json(&json!({"to": "n/m2", "overwrite": false}))
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 200).await;
    assert_eq!(v["kind"], "dir", "{v}");
    assert_eq!(v["path"], "n/m2", "{v}");
    assert_eq!(meta_of(&admin, "team", "m").await.status(), 404);
    assert_eq!(meta_of(&admin, "team", "m/sub/c.txt").await.status(), 404);
    assert_eq!(download(&admin, "team", "n/m2/b.txt").await, b"aaa");
    assert_eq!(download(&admin, "team", "n/m2/sub/c.txt").await, b"ccccc");
    assert_eq!(all_names(&admin, "team", None).await, ["n"]);
    assert_eq!(
        all_names(&admin, "team", Some("n/m2")).await,
        ["b.txt", "sub"]
    );
    assert_eq!(used_bytes(&admin, "team").await, 8);

    // Onto an existing file: only with overwrite.
    stored(
        &admin,
        "team",
        "n/target.txt",
        "text/plain",
        b"target!",
        201,
    )
    .await;
    let move_b = format!("{}/move", file_url("team", &pid("n/m2/b.txt")));
    let r = admin
        .post(&move_b)
        .json(&json!({"to": "n/target.txt"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "already-exists").await;
    assert_eq!(download(&admin, "team", "n/target.txt").await, b"target!");
    let r = admin
        .post(&move_b)
        .json(&json!({"to": "n/target.txt", "overwrite": true}))
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 200).await;
    check_entry(&v, "n/target.txt", b"aaa", "text/plain");
    assert_eq!(download(&admin, "team", "n/target.txt").await, b"aaa");
    assert_eq!(meta_of(&admin, "team", "n/m2/b.txt").await.status(), 404);
    assert_eq!(used_bytes(&admin, "team").await, 8);
    assert!(!blob_names(&server).await.contains(&sha256_hex(b"target!")));

    // Into itself, onto a directory, under a file, from nowhere.
    let move_m2 = format!("{}/move", file_url("team", &pid("n/m2")));
    let r = admin
        .post(&move_m2)
        .json(&json!({"to": "n/m2/sub/deeper"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "into-itself").await;
    let move_target = format!("{}/move", file_url("team", &pid("n/target.txt")));
    let r = admin
        .post(&move_target)
        .json(&json!({"to": "n/m2", "overwrite": true}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 409, "{}", r.text().await.unwrap());
    let r = admin
        .post(&move_m2)
        .json(&json!({"to": "n/target.txt", "overwrite": true}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        status,
        409,
        "a directory does not replace a file: {}",
        r.text().await.unwrap()
    );
    let r = admin
        .post(&move_m2)
        .json(&json!({"to": "n/target.txt/inside"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "under-a-file").await;
    let r = admin
        .post(&format!("{}/move", file_url("team", &pid("n/ghost"))))
        .json(&json!({"to": "n/ghost2"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&move_target)
        .json(&json!({"to": "n/t2", "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(download(&admin, "team", "n/target.txt").await, b"aaa");
    assert_eq!(download(&admin, "team", "n/m2/sub/c.txt").await, b"ccccc");

    // A directory needs ?recursive=true.
    let dir_url = file_url("team", &pid("n"));
    let r = admin.delete(&dir_url).send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 409, "{}", r.text().await.unwrap());
    let r = admin
        .delete(&format!("{dir_url}?recursive=false"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(download(&admin, "team", "n/m2/sub/c.txt").await, b"ccccc");
    let v = expect_json(
        admin
            .delete(&format!("{dir_url}?recursive=true"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["httpStatusCode"], 200);
    for gone in ["n", "n/m2", "n/m2/sub", "n/m2/sub/c.txt", "n/target.txt"] {
        assert_eq!(meta_of(&admin, "team", gone).await.status(), 404, "{gone}");
    }
    assert!(all_names(&admin, "team", None).await.is_empty());
    assert_eq!(used_bytes(&admin, "team").await, 0);
    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
}

// ---------------------------------------------------------------------------------------------------
// 5. Access
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_members_reach_a_space_and_read_tokens_only_read() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    create_space(&admin, "team", None, &["bob"]).await;
    stored(&bob, "team", "s/secret.txt", "text/plain", b"secret", 201).await;
    let id = pid("s/secret.txt");

    // Not a member: the space does not exist for carol, on every route.
    let checks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("download", carol.get(&file_url("team", &id))),
        ("head", carol.head(&file_url("team", &id))),
        (
            "meta",
            carol.get(&format!("{}/meta", file_url("team", &id))),
        ),
        ("list", carol.get("/api/v1/space/team/storage")),
        (
            "list dir",
            carol.get(&format!("/api/v1/space/team/storage?dir={}", pid("s"))),
        ),
        (
            "upload raw",
            carol
                .post(&upload_url("team", &pid("s/new.txt")))
                .header("content-type", "text/plain")
                .body("x"),
        ),
        (
            "upload json",
            carol
                .post(&upload_url("team", &pid("s/new.txt")))
                .json(&json!({"file": {"type": "text/plain", "size": 1}})),
        ),
        ("delete", carol.delete(&file_url("team", &id))),
        (
            "move",
            carol
                .post(&format!("{}/move", file_url("team", &id)))
                .json(&json!({"to": "mine.txt"})),
        ),
    ];
    for (what, request) in checks {
        let r = request.send().await.unwrap();
        if what == "head" {
            assert_eq!(r.status(), 404, "{what}");
        } else {
            expect_error(r, 404, "not-found").await;
        }
    }
    let limits = expect_json(carol.get("/api/v1/limits").send().await.unwrap(), 200).await;
    assert!(
        limits["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != "team"),
        "{limits}"
    );

    // No credentials: 401 everywhere.
    let anon = Client::new();
    let url = |p: &str| server.url(p);
    let checks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("download", anon.get(url(&file_url("team", &id)))),
        ("head", anon.head(url(&file_url("team", &id)))),
        (
            "meta",
            anon.get(url(&format!("{}/meta", file_url("team", &id)))),
        ),
        ("list", anon.get(url("/api/v1/space/team/storage"))),
        (
            "upload",
            anon.post(url(&upload_url("team", &pid("s/new.txt"))))
                .header("content-type", "text/plain")
                .body("x"),
        ),
        ("delete", anon.delete(url(&file_url("team", &id)))),
        (
            "move",
            anon.post(url(&format!("{}/move", file_url("team", &id))))
                .json(&json!({"to": "mine.txt"})),
        ),
        ("limits", anon.get(url("/api/v1/limits"))),
    ];
    for (what, request) in checks {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        if what != "head" {
            expect_error(r, 401, "unauthenticated").await;
        }
    }

    // A read-only token reads but does not write.
    let created = expect_json(
        bob.post("/api/v1/me/tokens")
            .json(&json!({"name": "r", "scope": "read"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let reader = User {
        base: server.base.clone(),
        http: Client::new(),
        token: created["token"].as_str().unwrap().to_string(),
        username: "bob".into(),
    };
    assert_eq!(download(&reader, "team", "s/secret.txt").await, b"secret");
    expect_json(meta_of(&reader, "team", "s/secret.txt").await, 200).await;
    expect_json(list(&reader, "team", Some("s"), None, None).await, 200).await;
    let r = put_raw(&reader, "team", "s/new.txt", "text/plain", b"x").await;
    expect_error(r, 403, "forbidden").await;
    let r = put_json(
        &reader,
        "team",
        "s/new.txt",
        &json!({"file": "data:text/plain,x"}),
    )
    .await;
    expect_error(r, 403, "forbidden").await;
    let r = reader.delete(&file_url("team", &id)).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = reader
        .post(&format!("{}/move", file_url("team", &id)))
        .json(&json!({"to": "moved.txt"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    assert_eq!(all_names(&bob, "team", Some("s")).await, ["secret.txt"]);
    assert_eq!(download(&bob, "team", "s/secret.txt").await, b"secret");

    // Removing bob from the space hides it from him.
    let r = admin
        .delete("/api/v1/spaces/team/members/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bob.get(&file_url("team", &id)).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
}

// ---------------------------------------------------------------------------------------------------
// 6. Limits and quotas
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_file_size_limit_holds_in_every_mode() {
    let big = pseudo_random_bytes(1001, 20);
    let big_for_remote = big.clone();
    let origin = remote(move |path| match path {
        "/big" => ok_reply("application/octet-stream", &big_for_remote),
        "/big-chunked" => Reply::Body {
            status: 200,
            content_type: "application/octet-stream",
            body: big_for_remote.clone(),
            chunked: true,
        },
        "/fits" => Reply::Body {
            status: 200,
            content_type: "application/octet-stream",
            body: big_for_remote[..1000].to_vec(),
            chunked: true,
        },
        _ => Reply::Hang,
    })
    .await;
    let allow = format!("127.0.0.1:{}", origin.port);
    let server = TestApp::start_with(&["--max-file-size", "1000", "--fetch-allow", &allow]).await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;

    let limits = expect_json(admin.get("/api/v1/limits").send().await.unwrap(), 200).await;
    assert_eq!(limits["maxFileSize"], 1000, "{limits}");

    // Raw, declared length.
    let r = put_raw(
        &admin,
        "team",
        "lim/raw.bin",
        "application/octet-stream",
        &big,
    )
    .await;
    let e = expect_error(r, 413, "limits-reached").await;
    assert_eq!(e["limitBytes"], 1000, "{e}");
    // Raw, chunked.
    let a = raw_chunked_upload(&server, &admin, "team", "lim/chunked.bin", &big).await;
    assert_raw_error(&a, 413, "limits-reached");
    // Multipart.
    let r = put_multipart(
        &admin,
        "team",
        "lim/form.bin",
        "application/octet-stream",
        &big,
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    // Data URL.
    let url = format!("data:application/octet-stream;base64,{}", b64_std(&big));
    let r = put_json(&admin, "team", "lim/data.bin", &json!({ "file": url })).await;
    expect_error(r, 413, "limits-reached").await;
    // Remote URL, with and without a Content-Length.
    let r = put_json(
        &admin,
        "team",
        "lim/remote.bin",
        &json!({"file": origin.url("/big")}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    let r = put_json(
        &admin,
        "team",
        "lim/remote2.bin",
        &json!({"file": origin.url("/big-chunked")}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    // Two-stage: refused at the first stage.
    let r = put_json(
        &admin,
        "team",
        "lim/two.bin",
        &json!({"file": {"type": "application/octet-stream", "size": 1001}}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;

    assert!(
        settle(|| server.temporaries() == 0).await,
        "temporaries left"
    );
    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert_eq!(
        list(&admin, "team", Some("lim"), None, None).await.status(),
        404
    );
    assert_eq!(used_bytes(&admin, "team").await, 0);
    no_reservation_left(&admin, "team").await;

    // Exactly at the limit is fine, in every mode.
    let edge = &big[..1000];
    stored(
        &admin,
        "team",
        "lim/raw.bin",
        "application/octet-stream",
        edge,
        201,
    )
    .await;
    let a = raw_chunked_upload(&server, &admin, "team", "lim/chunked.bin", edge).await;
    assert_eq!(a.status, 201, "{}", a.body);
    check_entry(
        &a.json(),
        "lim/chunked.bin",
        edge,
        "application/octet-stream",
    );
    let r = put_multipart(
        &admin,
        "team",
        "lim/form.bin",
        "application/octet-stream",
        edge,
    )
    .await;
    expect_json(r, 201).await;
    let url = format!("data:application/octet-stream;base64,{}", b64_std(edge));
    expect_json(
        put_json(&admin, "team", "lim/data.bin", &json!({ "file": url })).await,
        201,
    )
    .await;
    expect_json(
        put_json(
            &admin,
            "team",
            "lim/remote.bin",
            &json!({"file": origin.url("/fits")}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(download(&admin, "team", "lim/remote.bin").await, edge);
    assert_eq!(blob_names(&server).await, [sha256_hex(edge)]);
}

#[tokio::test]
async fn a_space_quota_refuses_what_does_not_fit_in_every_mode() {
    let big = pseudo_random_bytes(500, 30);
    let big_for_remote = big.clone();
    let origin = remote(move |path| match path {
        "/big" => ok_reply("application/octet-stream", &big_for_remote),
        "/big-chunked" => Reply::Body {
            status: 200,
            content_type: "application/octet-stream",
            body: big_for_remote.clone(),
            chunked: true,
        },
        _ => Reply::Hang,
    })
    .await;
    let allow = format!("127.0.0.1:{}", origin.port);
    let server = TestApp::start_with(&["--fetch-allow", &allow]).await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    create_space(&admin, "team", Some(1000), &["bob"]).await;
    let first = pseudo_random_bytes(600, 31);
    stored(
        &bob,
        "team",
        "q/first.bin",
        "application/octet-stream",
        &first,
        201,
    )
    .await;
    let l = limits_of(&bob, "team").await;
    assert_eq!(l["quotaBytes"], 1000, "{l}");
    assert_eq!(l["usedBytes"], 600, "{l}");
    assert_eq!(l["availableBytes"], 400, "{l}");

    // 500 more bytes do not fit beside 600, whatever the mode.
    let r = put_raw(&bob, "team", "q/raw.bin", "application/octet-stream", &big).await;
    expect_error(r, 413, "limits-reached").await;
    let a = raw_chunked_upload(&server, &bob, "team", "q/chunked.bin", &big).await;
    assert_raw_error(&a, 413, "limits-reached");
    let r = put_multipart(&bob, "team", "q/form.bin", "application/octet-stream", &big).await;
    expect_error(r, 413, "limits-reached").await;
    let url = format!("data:application/octet-stream;base64,{}", b64_std(&big));
    let r = put_json(&bob, "team", "q/data.bin", &json!({ "file": url })).await;
    expect_error(r, 413, "limits-reached").await;
    let r = put_json(
        &bob,
        "team",
        "q/remote.bin",
        &json!({"file": origin.url("/big")}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    let r = put_json(
        &bob,
        "team",
        "q/remote2.bin",
        &json!({"file": origin.url("/big-chunked")}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    let r = put_json(
        &bob,
        "team",
        "q/two.bin",
        &json!({"file": {"type": "application/octet-stream", "size": 500}}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;

    assert!(
        settle(|| server.temporaries() == 0).await,
        "temporaries left"
    );
    assert_eq!(blob_names(&server).await, [sha256_hex(&first)]);
    assert_eq!(all_names(&bob, "team", Some("q")).await, ["first.bin"]);
    assert_eq!(used_bytes(&admin, "team").await, 600);
    let l = no_reservation_left(&bob, "team").await;
    assert_eq!(l["availableBytes"], 400, "{l}");

    // An overwrite replaces the old size.
    stored(
        &bob,
        "team",
        "q/first.bin",
        "application/octet-stream",
        b"tiny",
        200,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 4);
    let l = no_reservation_left(&bob, "team").await;
    assert_eq!(l["usedBytes"], 4, "{l}");
    assert_eq!(l["availableBytes"], 996, "{l}");
    assert_eq!(blob_names(&server).await, [sha256_hex(b"tiny")]);

    // What fits is accepted, exactly up to the quota.
    let fill = pseudo_random_bytes(996, 32);
    stored(
        &bob,
        "team",
        "q/fill.bin",
        "application/octet-stream",
        &fill,
        201,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 1000);
    let r = put_raw(
        &bob,
        "team",
        "q/one-more.bin",
        "application/octet-stream",
        b"x",
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    let l = no_reservation_left(&bob, "team").await;
    assert_eq!(l["availableBytes"], 0, "{l}");
    let r = bob
        .delete(&file_url("team", &pid("q/fill.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(used_bytes(&admin, "team").await, 4);
    // Deduplication does not make a copy free.
    let copy = pseudo_random_bytes(450, 33);
    stored(
        &bob,
        "team",
        "q/copy1.bin",
        "application/octet-stream",
        &copy,
        201,
    )
    .await;
    stored(
        &bob,
        "team",
        "q/copy2.bin",
        "application/octet-stream",
        &copy,
        201,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 904);
    let r = put_raw(
        &bob,
        "team",
        "q/copy3.bin",
        "application/octet-stream",
        &copy,
    )
    .await;
    expect_error(r, 413, "limits-reached").await;

    // An administrator's new quota applies at once.
    let r = admin
        .patch("/api/v1/spaces/team")
        .json(&json!({"quotaBytes": 2000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stored(
        &bob,
        "team",
        "q/copy3.bin",
        "application/octet-stream",
        &copy,
        201,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 1354);
}

#[tokio::test]
async fn an_overwrite_that_fits_after_replacing_is_accepted() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", Some(1000), &[]).await;
    let old = pseudo_random_bytes(600, 40);
    stored(
        &admin,
        "team",
        "f.bin",
        "application/octet-stream",
        &old,
        201,
    )
    .await;
    // After each overwrite the space holds 600 of its 1000 bytes, though 600 + 600 would not fit.
    for seed in [41, 42, 43] {
        let new = pseudo_random_bytes(600, seed);
        let r = match seed {
            41 => put_raw(&admin, "team", "f.bin", "application/octet-stream", &new).await,
            42 => put_multipart(&admin, "team", "f.bin", "application/octet-stream", &new).await,
            _ => {
                let url = format!("data:application/octet-stream;base64,{}", b64_std(&new));
                put_json(&admin, "team", "f.bin", &json!({ "file": url })).await
            }
        };
        let v = expect_json(r, 200).await;
        check_entry(&v, "f.bin", &new, "application/octet-stream");
        assert_eq!(used_bytes(&admin, "team").await, 600);
        assert_eq!(download(&admin, "team", "f.bin").await, new);
    }
    // A full space: replacing a file by a smaller one frees room.
    stored(
        &admin,
        "team",
        "g.bin",
        "application/octet-stream",
        &[1u8; 400],
        201,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 1000);
    stored(
        &admin,
        "team",
        "g.bin",
        "application/octet-stream",
        &[2u8; 100],
        200,
    )
    .await;
    assert_eq!(used_bytes(&admin, "team").await, 700);
    // But an overwrite that would not fit even after replacing is still refused, and the old
    // file stays.
    let r = put_raw(
        &admin,
        "team",
        "g.bin",
        "application/octet-stream",
        &[3u8; 401],
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    assert_eq!(download(&admin, "team", "g.bin").await, [2u8; 100]);
    assert_eq!(used_bytes(&admin, "team").await, 700);
    no_reservation_left(&admin, "team").await;
}

#[tokio::test]
async fn a_two_stage_overwrite_that_fits_after_replacing_is_accepted() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", Some(1000), &[]).await;
    stored(&admin, "team", "f.bin", "text/plain", &[1u8; 600], 201).await;
    // Replacing 600 bytes by 500 leaves 500 of 1000 bytes used.
    let first = expect_json(
        put_json(
            &admin,
            "team",
            "f.bin",
            &json!({"file": {"type": "text/plain", "size": 500}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let r = Client::new()
        .put(first["uploadRequest"]["url"].as_str().unwrap())
        .header("content-type", "text/plain")
        .body(vec![2u8; 500])
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    assert_eq!(used_bytes(&admin, "team").await, 500);
    no_reservation_left(&admin, "team").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_exceed_the_quota() {
    const MIB: usize = 1 << 20;
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", Some(10 * MIB as i64), &[]).await;
    let body = bytes::Bytes::from(pseudo_random_bytes(MIB, 50));
    // Straight to the nodes, in turn: a balancer may turn a node's early 413 (it stops reading the
    // body) into a 502 of its own, which is not what this test is about.
    let addrs = server.node_addrs();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let head = raw_head(
                &server,
                &admin,
                &upload_url("team", &pid(&format!("race/{i}.bin"))),
                "application/octet-stream",
                &format!("Content-Length: {MIB}"),
            );
            let addr = addrs[i % addrs.len()].clone();
            let body = body.clone();
            tokio::spawn(async move { raw_exchange(&addr, head, body).await })
        })
        .collect();
    let mut successes = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            201 => {
                let v = a.json();
                assert_eq!(v["size"], MIB, "{v}");
                successes += 1;
            }
            413 => assert_raw_error(&a, 413, "limits-reached"),
            other => panic!("every answer is 201 or 413, got {other}: {}", a.body),
        }
    }
    assert!(
        (1..=10).contains(&successes),
        "{successes} uploads succeeded"
    );
    let used = used_bytes(&admin, "team").await;
    assert_eq!(used, (successes * MIB) as i64);
    assert!(used <= 10 * MIB as i64);
    assert_eq!(
        all_names(&admin, "team", Some("race")).await.len(),
        successes
    );
    let l = no_reservation_left(&admin, "team").await;
    assert_eq!(l["usedBytes"], used, "{l}");
    assert_eq!(l["availableBytes"], 10 * MIB as i64 - used, "{l}");
    assert!(settle(|| server.temporaries() == 0).await);
}

#[tokio::test]
async fn a_two_stage_upload_reserves_its_size_until_it_completes() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    create_space(&admin, "team", Some(1000), &["bob"]).await;

    let first = expect_json(
        put_json(
            &bob,
            "team",
            "t/one.bin",
            &json!({"file": {"type": "application/octet-stream", "size": 600}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let l = limits_of(&bob, "team").await;
    assert_eq!(l["usedBytes"], 0, "{l}");
    assert_eq!(l["reservedBytes"], 600, "{l}");
    assert_eq!(l["availableBytes"], 400, "{l}");

    // A second two-stage upload, or any upload, that does not fit beside the reservation: 413.
    let r = put_json(
        &bob,
        "team",
        "t/two.bin",
        &json!({"file": {"type": "application/octet-stream", "size": 500}}),
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    let r = put_raw(
        &bob,
        "team",
        "t/raw.bin",
        "application/octet-stream",
        &[7u8; 401],
    )
    .await;
    expect_error(r, 413, "limits-reached").await;
    // What fits beside it is accepted.
    stored(
        &bob,
        "team",
        "t/small.bin",
        "application/octet-stream",
        &[7u8; 300],
        201,
    )
    .await;
    let l = no_reservation_left_except(&bob, "team", 600).await;
    assert_eq!(l["usedBytes"], 300, "{l}");
    assert_eq!(l["availableBytes"], 100, "{l}");

    // Completing consumes the reservation.
    let bytes = pseudo_random_bytes(600, 60);
    let r = Client::new()
        .put(first["uploadRequest"]["url"].as_str().unwrap())
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    expect_json(r, 201).await;
    let l = no_reservation_left(&bob, "team").await;
    assert_eq!(l["usedBytes"], 900, "{l}");
    assert_eq!(l["availableBytes"], 100, "{l}");
    assert_eq!(download(&bob, "team", "t/one.bin").await, bytes);
}

/// Waits until the reservations of a space come down to `bytes`.
async fn no_reservation_left_except(user: &User, space: &str, bytes: i64) -> Value {
    for _ in 0..200 {
        let l = limits_of(user, space).await;
        if l["reservedBytes"] == bytes {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l = limits_of(user, space).await;
    assert_eq!(l["reservedBytes"], bytes, "{l}");
    l
}

// ---------------------------------------------------------------------------------------------------
// 7. Two-stage misuse
// ---------------------------------------------------------------------------------------------------

/// Replaces the value of one query parameter in a URL.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn param(url: &str, name: &str) -> String {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {url}"))
        .to_string()
}

#[tokio::test]
async fn two_stage_urls_are_bound_checked_and_single_use() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let bytes = pseudo_random_bytes(2048, 70);
    let first = expect_json(
        put_json(
            &admin,
            "team",
            "u/file.txt",
            &json!({"file": {"type": "text/plain", "size": bytes.len(), "meta": {"k": "v"}}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let url = first["uploadRequest"]["url"].as_str().unwrap().to_string();
    let anon = Client::new();
    let put = |url: String, ctype: &'static str, body: Vec<u8>| {
        let anon = anon.clone();
        async move {
            anon.put(url)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    // Wrong Content-Length (the body of another size).
    let mut longer = bytes.clone();
    longer.push(b'!');
    expect_error(
        put(url.clone(), "text/plain", longer).await,
        400,
        "size-mismatch",
    )
    .await;
    expect_error(
        put(url.clone(), "text/plain", bytes[..100].to_vec()).await,
        400,
        "size-mismatch",
    )
    .await;
    // Wrong Content-Type.
    expect_error(
        put(url.clone(), "image/png", bytes.clone()).await,
        400,
        "type-mismatch",
    )
    .await;
    // Tampered signature, changed expiry, missing signature.
    let signature = param(&url, "signature");
    let mut tampered = signature.clone().into_bytes();
    tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    expect_error(
        put(
            with_param(&url, "signature", &tampered),
            "text/plain",
            bytes.clone(),
        )
        .await,
        403,
        "bad-signature",
    )
    .await;
    let expires: i64 = param(&url, "expires").parse().unwrap();
    expect_error(
        put(
            with_param(&url, "expires", &(expires + 60_000).to_string()),
            "text/plain",
            bytes.clone(),
        )
        .await,
        403,
        "bad-signature",
    )
    .await;
    let unsigned = url.split_once('?').unwrap().0.to_string();
    let r = put(unsigned.clone(), "text/plain", bytes.clone()).await;
    assert_eq!(r.status(), 403);
    // Unknown upload id.
    let upload_id = unsigned.rsplit('/').next().unwrap().to_string();
    let unknown = url.replace(&upload_id, &"0".repeat(upload_id.len()));
    expect_error(
        put(unknown, "text/plain", bytes.clone()).await,
        404,
        "not-found",
    )
    .await;

    // Nothing was stored by the failures.
    assert_eq!(meta_of(&admin, "team", "u/file.txt").await.status(), 404);
    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert!(settle(|| server.temporaries() == 0).await);
    assert!(all_names(&admin, "team", None).await.is_empty());

    // The correct PUT works after failed ones, with a matching declared checksum and any case of
    // the type.
    let r = anon
        .put(&url)
        .header("content-type", "Text/Plain")
        .header("x-checksum-sha256", sha256_hex(&bytes))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 201).await;
    check_entry(&v, "u/file.txt", &bytes, "text/plain");
    assert_eq!(v["meta"], json!({"k": "v"}));
    assert_eq!(download(&admin, "team", "u/file.txt").await, bytes);

    // Once only.
    expect_error(
        put(url.clone(), "text/plain", bytes.clone()).await,
        409,
        "upload-used",
    )
    .await;
    expect_error(
        put(url.clone(), "text/plain", b"other bytes".to_vec()).await,
        409,
        "upload-used",
    )
    .await;
    assert_eq!(download(&admin, "team", "u/file.txt").await, bytes);
    assert_eq!(blob_names(&server).await, [sha256_hex(&bytes)]);
    assert_eq!(used_bytes(&admin, "team").await, bytes.len() as i64);

    // A two-stage upload that replaces an existing file answers 200 and keeps its meta.
    let first = expect_json(
        put_json(
            &admin,
            "team",
            "u/file.txt",
            &json!({"file": {"type": "text/plain", "size": 3}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let r = put(
        first["uploadRequest"]["url"].as_str().unwrap().to_string(),
        "text/plain",
        b"new".to_vec(),
    )
    .await;
    let v = expect_json(r, 200).await;
    check_entry(&v, "u/file.txt", b"new", "text/plain");
    assert_eq!(v["meta"], json!({}));
    assert_eq!(used_bytes(&admin, "team").await, 3);
    assert_eq!(blob_names(&server).await, [sha256_hex(b"new")]);
}

#[tokio::test]
async fn a_two_stage_put_that_fails_after_its_bytes_arrive_can_be_retried_at_once() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let bytes = pseudo_random_bytes(2048, 71);
    let first = expect_json(
        put_json(
            &admin,
            "team",
            "u/file.txt",
            &json!({"file": {"type": "text/plain", "size": bytes.len()}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let url = first["uploadRequest"]["url"].as_str().unwrap().to_string();
    let anon = Client::new();

    // A body that breaks its promise after arriving (chunked, too short) or whose declared checksum
    // does not match fails without using the URL up.
    let short = bytes[..1000].to_vec();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(short[..500].to_vec()), Ok(short[500..].to_vec())];
    let r = anon
        .put(&url)
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "size-mismatch").await;
    let r = anon
        .put(&url)
        .header("content-type", "text/plain")
        .header("x-checksum-sha256", sha256_hex(b"something else"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "checksum-mismatch").await;

    assert_eq!(meta_of(&admin, "team", "u/file.txt").await.status(), 404);
    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert!(settle(|| server.temporaries() == 0).await);

    // Each failure left the URL usable: the answer to the retry is not "in progress".
    let r = anon
        .put(&url)
        .header("content-type", "text/plain")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 201).await;
    check_entry(&v, "u/file.txt", &bytes, "text/plain");
    assert_eq!(download(&admin, "team", "u/file.txt").await, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_to_one_upload_url_store_once() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", Some(100_000), &[]).await;
    let bytes = pseudo_random_bytes(50_000, 80);
    let first = expect_json(
        put_json(
            &admin,
            "team",
            "once.bin",
            &json!({"file": {"type": "application/octet-stream", "size": bytes.len()}}),
        )
        .await,
        200,
    )
    .await;
    if goes_to_object_store(&server, &first) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    let url = first["uploadRequest"]["url"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let r = Client::new()
                    .put(url)
                    .header("content-type", "application/octet-stream")
                    .body(bytes)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            409 => assert!(
                body["error"] == "upload-used" || body["error"] == "upload-in-progress",
                "{body}"
            ),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 1, "the URL is single-use");
    assert_eq!(download(&admin, "team", "once.bin").await, bytes);
    assert_eq!(used_bytes(&admin, "team").await, bytes.len() as i64);
    let l = no_reservation_left(&admin, "team").await;
    assert_eq!(l["availableBytes"], 100_000 - bytes.len() as i64, "{l}");
    assert_eq!(blob_names(&server).await, [sha256_hex(&bytes)]);
}

#[tokio::test]
async fn a_two_stage_upload_still_obeys_the_conflict_rules_at_its_put() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let declare = json!({"file": {"type": "text/plain", "size": 5}});
    let to_dir = expect_json(put_json(&admin, "team", "p/x", &declare).await, 200).await;
    let to_under = expect_json(put_json(&admin, "team", "q/y", &declare).await, 200).await;
    if goes_to_object_store(&server, &to_dir) {
        return; // Hangar's own second-stage endpoint is not used on S3: tests/cluster.rs
    }
    // Meanwhile `p/x` became a directory and `q` a file.
    stored(&admin, "team", "p/x/inner.txt", "text/plain", b"inner", 201).await;
    stored(&admin, "team", "q", "text/plain", b"q is a file", 201).await;
    for (first, code) in [(&to_dir, "is-a-directory"), (&to_under, "under-a-file")] {
        let r = Client::new()
            .put(first["uploadRequest"]["url"].as_str().unwrap())
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap();
        expect_error(r, 409, code).await;
    }
    assert_eq!(download(&admin, "team", "p/x/inner.txt").await, b"inner");
    assert_eq!(download(&admin, "team", "q").await, b"q is a file");
    assert_eq!(all_names(&admin, "team", None).await, ["p", "q"]);
    assert!(!blob_names(&server).await.contains(&sha256_hex(b"hello")));
    assert_eq!(used_bytes(&admin, "team").await, 16);
}

// ---------------------------------------------------------------------------------------------------
// 8. Fetching remote URLs safely
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn remote_urls_never_reach_internal_addresses() {
    // T: an internal service that must never be reached.
    let target = remote(|_| ok_reply("text/plain", b"INTERNAL-SECRET")).await;
    let t = target.port;
    let origin = remote(move |path| match path {
        "/file" => ok_reply("text/csv", b"a,b\n1,2\n"),
        "/to-internal" => Reply::Redirect(format!("http://127.0.0.1:{t}/")),
        "/to-localhost" => Reply::Redirect(format!("http://localhost:{t}/")),
        "/to-mapped" => Reply::Redirect(format!("http://[::ffff:127.0.0.1]:{t}/")),
        "/to-ftp" => Reply::Redirect(format!("ftp://127.0.0.1:{t}/")),
        "/r1" => Reply::Redirect("/file".into()),
        "/r2" => Reply::Redirect("/r1".into()),
        "/r3" => Reply::Redirect("/r2".into()),
        "/r4" => Reply::Redirect("/r3".into()),
        "/loop" => Reply::Redirect("/loop".into()),
        "/missing" => Reply::Body {
            status: 404,
            content_type: "text/plain",
            body: b"REMOTE-404-BODY-TEXT".to_vec(),
            chunked: false,
        },
        "/broken" => Reply::Body {
            status: 500,
            content_type: "text/html",
            body: b"<h1>REMOTE-500-BODY-TEXT</h1>".to_vec(),
            chunked: false,
        },
        "/hang" => Reply::Hang,
        _ => Reply::Hang,
    })
    .await;
    let allow = format!("127.0.0.1:{}", origin.port);
    let server = TestApp::start_with(&["--fetch-allow", &allow, "--fetch-timeout", "2"]).await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;

    // Forbidden addresses, in every spelling, directly or through a redirect.
    let forbidden = [
        format!("http://127.0.0.1:{t}/"),
        format!("http://[::1]:{t}/"),
        format!("http://[::ffff:127.0.0.1]:{t}/"),
        format!("http://[::ffff:7f00:1]:{t}/"),
        format!("http://2130706433:{t}/"),
        format!("http://0177.0.0.1:{t}/"),
        format!("http://0x7f000001:{t}/"),
        format!("http://127.1:{t}/"),
        format!("http://0.0.0.0:{t}/"),
        format!("http://localhost:{t}/"),
        format!("http://169.254.169.254:{t}/latest/meta-data/"),
        format!("http://10.0.0.1:{t}/"),
        format!("http://[fe80::1]:{t}/"),
        origin.url("/to-internal"),
        origin.url("/to-localhost"),
        origin.url("/to-mapped"),
    ];
    for url in &forbidden {
        let r = put_json(&admin, "team", "ssrf/x.txt", &json!({ "file": url })).await;
        let body = expect_error(r, 400, "fetch-forbidden").await;
        assert!(
            !body.to_string().contains("INTERNAL-SECRET"),
            "{url}: {body}"
        );
        // The refusal names what the caller gave, never the address a name resolved to.
        if url.contains("localhost") {
            assert!(!body.to_string().contains("127.0.0.1"), "{url}: {body}");
        }
    }
    let r = put_json(
        &admin,
        "team",
        "ssrf/x.txt",
        &json!({"file": origin.url("/to-ftp")}),
    )
    .await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        target.connections_from_others().await,
        0,
        "the internal service was reached"
    );
    assert_eq!(meta_of(&admin, "team", "ssrf/x.txt").await.status(), 404);

    // The allowed server works, also through up to 3 redirects.
    let v = expect_json(
        put_json(
            &admin,
            "team",
            "ssrf/ok.csv",
            &json!({"file": origin.url("/file")}),
        )
        .await,
        201,
    )
    .await;
    check_entry(&v, "ssrf/ok.csv", b"a,b\n1,2\n", "text/csv");
    let v = expect_json(
        put_json(
            &admin,
            "team",
            "ssrf/r3.csv",
            &json!({"file": origin.url("/r3")}),
        )
        .await,
        201,
    )
    .await;
    check_entry(&v, "ssrf/r3.csv", b"a,b\n1,2\n", "text/csv");
    // More than 3 redirects.
    for path in ["/r4", "/loop"] {
        let r = put_json(
            &admin,
            "team",
            "ssrf/r4.csv",
            &json!({"file": origin.url(path)}),
        )
        .await;
        expect_error(r, 502, "fetch-failed").await;
    }

    // Remote errors: 502, and the remote's words are never repeated.
    for (path, secret) in [
        ("/missing", "REMOTE-404-BODY-TEXT"),
        ("/broken", "REMOTE-500-BODY-TEXT"),
    ] {
        let r = put_json(
            &admin,
            "team",
            "ssrf/err.txt",
            &json!({"file": origin.url(path)}),
        )
        .await;
        let body = expect_error(r, 502, "fetch-failed").await;
        assert!(!body.to_string().contains(secret), "{body}");
    }
    // A remote that never answers.
    let r = put_json(
        &admin,
        "team",
        "ssrf/slow.txt",
        &json!({"file": origin.url("/hang")}),
    )
    .await;
    expect_error(r, 504, "fetch-timeout").await;
    // Not http(s).
    for url in [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "gopher://x/",
        "http://",
        "https://exa mple.com/",
    ] {
        let r = put_json(&admin, "team", "ssrf/bad.txt", &json!({ "file": url })).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"] == "bad-url" || body["error"] == "bad-file",
            "{url}: {body}"
        );
    }
    assert_eq!(
        all_names(&admin, "team", Some("ssrf")).await,
        ["ok.csv", "r3.csv"]
    );
    assert_eq!(
        target.connections_from_others().await,
        0,
        "the internal service was reached"
    );
    assert!(settle(|| server.temporaries() == 0).await);
    // The counter does see connections: one made directly is counted.
    drop(TcpStream::connect(("127.0.0.1", t)).await.unwrap());
    assert_eq!(target.connections_from_others().await, 1);
}

// ---------------------------------------------------------------------------------------------------
// 9. Malformed requests and declared checksums
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_upload_requests_are_400_and_store_nothing() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    let shapes = [
        (json!({"file": 5}), "bad-file"),
        (json!({"file": null}), "bad-file"),
        (json!({"file": true}), "bad-file"),
        (json!({"file": ["data:text/plain,x"]}), "bad-file"),
        (json!({"nope": 1}), "bad-file"),
        (json!({}), "bad-file"),
        (json!({"file": "data:text/plain,x", "extra": 1}), "bad-file"),
        (json!({"file": "just words"}), "bad-file"),
        (json!({"file": {"type": "text/plain"}}), "bad-file"),
        (json!({"file": {"size": 1}}), "bad-file"),
        (
            json!({"file": {"type": "text/plain", "size": 1, "extra": 1}}),
            "bad-file",
        ),
        (
            json!({"file": {"type": "text/plain", "size": -1}}),
            "bad-file",
        ),
        (
            json!({"file": {"type": "text/plain", "size": "1"}}),
            "bad-file",
        ),
        (
            json!({"file": {"type": "not a type", "size": 1}}),
            "bad-file",
        ),
        (
            json!({"file": {"type": "text/plain", "size": 1, "meta": 5}}),
            "bad-file",
        ),
        (
            json!({"file": {"type": "text/plain", "size": 1, "meta": "m"}}),
            "bad-file",
        ),
        (json!([1, 2]), "bad-json"),
        (json!("data:text/plain,x"), "bad-json"),
        (
            json!({"file": "data:text/plain;base64,@@@"}),
            "bad-data-url",
        ),
        (json!({"file": "data:"}), "bad-data-url"),
        (json!({"file": "data:text/plain"}), "bad-data-url"),
    ];
    for (body, code) in &shapes {
        let r = put_json(&admin, "team", "bad/x.txt", body).await;
        let e = expect_error(r, 400, code).await;
        assert!(!e["errorText"].as_str().unwrap().is_empty(), "{body}");
    }
    for raw in [
        "{\"file\":",
        "not json",
        "",
        "{\"file\": \"data:text/plain,x\",}",
    ] {
        let r = admin
            .post(&upload_url("team", &pid("bad/x.txt")))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-json").await;
    }
    // A huge meta object.
    let meta: serde_json::Map<String, Value> = (0..2000)
        .map(|i| (format!("key{i}"), json!("a value that takes some room")))
        .collect();
    let r = put_json(
        &admin,
        "team",
        "bad/x.txt",
        &json!({"file": {"type": "text/plain", "size": 1, "meta": meta}}),
    )
    .await;
    expect_error(r, 400, "bad-file").await;
    // A multipart body without a boundary.
    let r = admin
        .post(&upload_url("team", &pid("bad/x.txt")))
        .header("content-type", "multipart/form-data")
        .body("--x\r\n\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(all_names(&admin, "team", None).await.is_empty());
    assert!(server.blob_files().await.is_empty());
    no_reservation_left(&admin, "team").await;
}

#[tokio::test]
async fn a_declared_checksum_that_does_not_match_stores_nothing() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    stored(&admin, "team", "c.txt", "text/plain", b"original", 201).await;
    let wrong = sha256_hex(b"something else");

    // Raw.
    let r = admin
        .post(&upload_url("team", &pid("c.txt")))
        .header("content-type", "text/plain")
        .header("x-checksum-sha256", &wrong)
        .body("changed")
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "checksum-mismatch").await;
    // Multipart, declared on the part.
    let mut part_headers = reqwest::header::HeaderMap::new();
    part_headers.insert("x-checksum-sha256", wrong.parse().unwrap());
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"changed".to_vec())
            .file_name("c.txt")
            .mime_str("text/plain")
            .unwrap()
            .headers(part_headers),
    );
    let r = admin
        .post(&upload_url("team", &pid("c.txt")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "checksum-mismatch").await;
    // Data URL, declared on the request.
    let r = admin
        .post(&upload_url("team", &pid("c.txt")))
        .header("x-checksum-sha256", &wrong)
        .json(&json!({"file": "data:text/plain,changed"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "checksum-mismatch").await;
    // A new path is not created either.
    let r = admin
        .post(&upload_url("team", &pid("new.txt")))
        .header("content-type", "text/plain")
        .header("x-checksum-sha256", &wrong)
        .body("changed")
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "checksum-mismatch").await;

    assert_eq!(download(&admin, "team", "c.txt").await, b"original");
    let m = expect_json(meta_of(&admin, "team", "c.txt").await, 200).await;
    check_entry(&m, "c.txt", b"original", "text/plain");
    assert_eq!(meta_of(&admin, "team", "new.txt").await.status(), 404);
    assert_eq!(blob_names(&server).await, [sha256_hex(b"original")]);
    assert!(settle(|| server.temporaries() == 0).await);
    assert_eq!(used_bytes(&admin, "team").await, 8);
    no_reservation_left(&admin, "team").await;

    // A malformed declaration is a 400; a matching one is accepted.
    let r = admin
        .post(&upload_url("team", &pid("c.txt")))
        .header("content-type", "text/plain")
        .header("x-checksum-sha256", "xyz")
        .body("changed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = admin
        .post(&upload_url("team", &pid("c.txt")))
        .header("content-type", "text/plain")
        .header("x-checksum-sha256", sha256_hex(b"changed"))
        .body("changed")
        .send()
        .await
        .unwrap();
    let v = expect_json(r, 200).await;
    check_entry(&v, "c.txt", b"changed", "text/plain");
    assert_eq!(blob_names(&server).await, [sha256_hex(b"changed")]);
}

// ---------------------------------------------------------------------------------------------------
// 10. The event outbox
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn storage_changes_are_recorded_as_events() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_space(&admin, "team", None, &[]).await;
    stored(&admin, "team", "ev/a.txt", "text/plain", b"one", 201).await;
    stored(&admin, "team", "ev/a.txt", "text/plain", b"two!", 200).await;
    let r = admin
        .post(&format!("{}/move", file_url("team", &pid("ev/a.txt"))))
        .json(&json!({"to": "ev/b.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .delete(&file_url("team", &pid("ev/b.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Refused operations record nothing.
    let r = put_raw(&admin, "team", "ev", "text/plain", b"x").await;
    assert_eq!(r.status(), 409);
    // A recursive delete records each file it removes.
    stored(&admin, "team", "tree/one.txt", "text/plain", b"1", 201).await;
    stored(&admin, "team", "tree/sub/two.txt", "text/plain", b"2", 201).await;
    let r = admin
        .delete(&format!(
            "{}?recursive=true",
            file_url("team", &pid("tree"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let events = server.state().storage.recent_events(200).await.unwrap();
    let storage: Vec<_> = events
        .iter()
        .filter(|e| e.event_type.starts_with("StorageFile."))
        .collect();
    let kinds: Vec<&str> = storage.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "StorageFile.Created",
            "StorageFile.Updated",
            "StorageFile.Moved",
            "StorageFile.Deleted",
            "StorageFile.Created",
            "StorageFile.Created",
            "StorageFile.Deleted",
            "StorageFile.Deleted"
        ],
        "{events:?}"
    );
    let mut tree_deleted: Vec<&str> = storage[6..]
        .iter()
        .map(|e| e.payload["path"].as_str().unwrap())
        .collect();
    tree_deleted.sort();
    assert_eq!(tree_deleted, ["tree/one.txt", "tree/sub/two.txt"]);
    for e in &storage {
        assert_eq!(e.space_id.as_deref(), Some("team"), "{e:?}");
        assert_eq!(e.payload["spaceId"], "team", "{e:?}");
    }
    assert_eq!(storage[0].payload["path"], "ev/a.txt");
    assert_eq!(storage[0].payload["size"], 3);
    assert_eq!(storage[0].payload["checksum"], sha256_hex(b"one"));
    assert_eq!(storage[1].payload["path"], "ev/a.txt");
    assert_eq!(storage[1].payload["size"], 4);
    assert_eq!(storage[1].payload["checksum"], sha256_hex(b"two!"));
    assert_eq!(storage[2].payload["from"], "ev/a.txt");
    assert_eq!(storage[2].payload["to"], "ev/b.txt");
    assert_eq!(storage[3].payload["path"], "ev/b.txt");
    let ids: std::collections::HashSet<&str> = storage.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), storage.len(), "event ids are distinct");
}

/// A member removed from the space (or disabled) after declaring a two-stage upload cannot complete
/// it: the PUT is refused (on S3, the object found is refused), and the path stays empty.
#[tokio::test]
async fn a_two_stage_put_rechecks_that_its_member_may_still_write() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    create_space(&admin, "team", None, &["bob"]).await;
    let bytes = pseudo_random_bytes(1024, 71);
    let first = expect_json(
        put_json(
            &bob,
            "team",
            "late/file.bin",
            &json!({"file": {"type": "application/octet-stream", "size": bytes.len()}}),
        )
        .await,
        200,
    )
    .await;
    let r = admin
        .delete("/api/v1/spaces/team/members/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let request = &first["uploadRequest"];
    let mut put = Client::new().put(request["url"].as_str().unwrap());
    for (k, v) in request["headers"].as_object().unwrap() {
        if !k.eq_ignore_ascii_case("content-length") {
            put = put.header(k.as_str(), v.as_str().unwrap());
        }
    }
    let r = put.body(bytes.clone()).send().await.unwrap();
    if goes_to_object_store(&server, &first) {
        // The object store takes the bytes; Hangar refuses them when it finds them.
        assert!(r.status().is_success(), "{}", r.status());
    } else {
        expect_error(r, 403, "forbidden").await;
    }
    let r = admin
        .get(&format!(
            "/api/v1/space/team/storage/{}/meta",
            pid("late/file.bin")
        ))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let usage = expect_json(admin.get("/api/v1/limits").send().await.unwrap(), 200).await;
    let team = usage["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "team")
        .unwrap();
    assert_eq!(team["usedBytes"], 0, "{team}");
}

/// Whether a two-stage upload's URL is the object store's (S3 installations, SPEC §13) rather than
/// Hangar's own second-stage endpoint, which the tests above are about.
fn goes_to_object_store(server: &TestApp, first: &Value) -> bool {
    !first["uploadRequest"]["url"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&server.base)
}
