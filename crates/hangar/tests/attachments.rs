//! Attachments over real HTTP: Space-style raw uploads (`POST /uploads`), multipart uploads to a
//! message, declared checksums, hostile file names, downloads (Range, ETag, HEAD, safe headers),
//! access control through messages and issues, deduplicated blobs and public links.

mod common;
use common::*;

use reqwest::header::HeaderMap;
use reqwest::{Client, Response};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------------

/// A valid 1×1 RGB PNG.
const TINY_PNG_HEX: &str = "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082";

fn tiny_png() -> Vec<u8> {
    hex::decode(TINY_PNG_HEX).unwrap()
}

fn sha256_raw(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

/// Standard base64 with padding (RFC 4648 §4), as RFC 9530 digests use.
fn b64(bytes: &[u8]) -> String {
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

/// `sha-256=:BASE64:` of these bytes.
fn digest_header(bytes: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&sha256_raw(bytes)))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing; headers: {headers:?}"))
        .to_str()
        .unwrap()
}

/// The `filename="…"` and `filename*=UTF-8''…` parameters of a Content-Disposition value.
fn disposition_names(cd: &str) -> (String, String) {
    let fallback = cd
        .split("filename=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no filename= in {cd:?}"))
        .to_string();
    let star = cd
        .split("filename*=UTF-8''")
        .nth(1)
        .map(|rest| rest.split(';').next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("no filename*=UTF-8'' in {cd:?}"));
    let decoded = String::from_utf8(percent_decode(&star)).expect("filename* is UTF-8");
    (fallback, decoded)
}

/// `POST /uploads` with extra request headers; answers the raw response.
async fn upload_with(
    user: &User,
    name: &str,
    content_type: &str,
    bytes: &[u8],
    headers: &[(&str, &str)],
) -> Response {
    let mut req = user
        .post("/uploads")
        .query(&[("name", name)])
        .header("content-type", content_type)
        .body(bytes.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn metadata(user: &User, id: i64) -> Value {
    let r = user
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "metadata of {id}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Downloads through `/api/v1/attachments/{id}/{name}`: status and bytes.
async fn download_named(user: &User, id: i64, name: &str) -> (u16, Vec<u8>) {
    let r = user
        .get(&format!("/api/v1/attachments/{id}/{}", path_segment(name)))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// A file name written as one URL path segment (percent-encodes what the URL parser would not).
fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One part of a hand-built multipart body.
struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: Option<&'a str>,
    headers: Vec<(&'a str, String)>,
    body: Vec<u8>,
}

impl<'a> Part<'a> {
    fn file(file_name: &'a str, content_type: &'a str, body: &[u8]) -> Self {
        Part {
            name: "files",
            file_name: Some(file_name),
            content_type: Some(content_type),
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }
    fn field(name: &'a str, value: &str) -> Self {
        Part {
            name,
            file_name: None,
            content_type: None,
            headers: Vec::new(),
            body: value.as_bytes().to_vec(),
        }
    }
    fn with_header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

const BOUNDARY: &str = "hangar-test-boundary-7f3a9c";

fn multipart_body(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut cd = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = p.file_name {
            cd.push_str(&format!("; filename=\"{f}\""));
        }
        out.extend_from_slice(cd.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        for (k, v) in &p.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn post_multipart(user: &User, message: i64, body: Vec<u8>) -> Response {
    user.post(&format!("/api/v1/messages/{message}/attachments"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads these files to a message and answers the listed attachments.
async fn upload_to_message(user: &User, message: i64, parts: &[Part<'_>]) -> Vec<Value> {
    let r = post_multipart(user, message, multipart_body(parts)).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "multipart upload: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["httpStatusCode"], 200, "{body}");
    body["attachments"]
        .as_array()
        .expect("attachments list")
        .clone()
}

/// Sends a Space-style chat message with these attachments; answers the raw response.
async fn send_message(user: &User, channel: i64, attachments: Value) -> Response {
    user.post("/api/http/chats/messages/send-message")
        .json(&json!({
            "channel": format!("channel:id:{channel}"),
            "content": {"className": "ChatMessage.Text", "text": "see attached"},
            "attachments": attachments,
        }))
        .send()
        .await
        .unwrap()
}

fn file_attachment(id: i64, size: usize, name: &str) -> Value {
    json!([{"className": "FileAttachment", "id": id.to_string(), "sizeBytes": size, "filename": name}])
}

async fn public_url(user: &User, channel: i64, message: i64, id: i64) -> Response {
    user.get(&format!(
        "/api/http/uploads/chat/public-url/channel:id:{channel}/id:{message}/{id}"
    ))
    .send()
    .await
    .unwrap()
}

/// The same caller on a new connection pool.
fn fresh(user: &User) -> User {
    User {
        http: Client::new(),
        ..user.clone()
    }
}

fn anonymous() -> Client {
    Client::new()
}

fn id_of(v: &Value) -> i64 {
    v["attachmentId"]
        .as_i64()
        .expect("attachmentId is a number")
}

// ---------------------------------------------------------------------------------------------------
// 1. POST /uploads
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn raw_upload_answers_the_id_as_text_and_metadata_has_every_seed_field() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"Hangar keeps the bytes exactly as they came.\n\x00\xff\x10".to_vec();
    let r = bob
        .post("/uploads")
        .query(&[("name", "notes.txt")])
        .header("content-type", "text/plain")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        header(r.headers(), "content-type").starts_with("text/plain"),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.unwrap();
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
        "the answer is a bare id: {text:?}"
    );
    let id: i64 = text.parse().unwrap();
    assert!(id > 0 && id < (1i64 << 53), "{id}");

    let m = metadata(&bob, id).await;
    for key in [
        "attachmentId",
        "attachmentState",
        "createdUtc",
        "lastModifiedUtc",
        "fileChecksum",
        "fileName",
        "fileSize",
        "hasThumbnail",
        "roomId",
        "textMessageId",
    ] {
        assert!(m.get(key).is_some(), "metadata lacks {key}: {m}");
    }
    assert_eq!(m["attachmentId"], id);
    assert_eq!(m["attachmentState"], "ReadyForDownloadFromServerToClient");
    assert_eq!(m["fileChecksum"], sha256_hex(&bytes));
    assert_eq!(m["fileName"], "notes.txt");
    assert_eq!(m["fileSize"], bytes.len());
    assert_eq!(m["hasThumbnail"], false);
    assert!(m["roomId"].is_null(), "not attached anywhere yet: {m}");
    assert!(m["textMessageId"].is_null(), "{m}");
    let created = m["createdUtc"].as_i64().expect("createdUtc is epoch ms");
    let modified = m["lastModifiedUtc"]
        .as_i64()
        .expect("lastModifiedUtc is epoch ms");
    assert!(created > 1_600_000_000_000, "epoch milliseconds: {created}");
    assert!(modified >= created);

    let (status, got) = download_named(&bob, id, "notes.txt").await;
    assert_eq!(status, 200);
    assert_eq!(got, bytes);

    // An image context is accepted (previews are the server's business, the upload still succeeds).
    let r = bob
        .post("/uploads")
        .query(&[
            ("name", "pixel.png"),
            ("spaceMediaType", "chat-image-attachment"),
        ])
        .header("content-type", "image/png")
        .body(tiny_png())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let png_id: i64 = r.text().await.unwrap().parse().unwrap();
    assert_ne!(png_id, id, "ids are unique");
    let m = metadata(&bob, png_id).await;
    assert_eq!(m["fileSize"], tiny_png().len());
    assert_eq!(m["fileChecksum"], sha256_hex(&tiny_png()));
}

#[tokio::test]
async fn raw_upload_rejects_bad_requests_and_stores_nothing() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"payload";

    // No name, or an empty one.
    let r = bob
        .post("/uploads")
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "missing-name").await;
    let r = upload_with(&bob, "", "text/plain", bytes, &[]).await;
    expect_error(r, 400, "missing-name").await;

    // No Content-Type.
    let r = bob
        .post("/uploads")
        .query(&[("name", "a.txt")])
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "missing-content-type").await;

    // An unknown spaceMediaType.
    let r = bob
        .post("/uploads")
        .query(&[("name", "a.txt"), ("spaceMediaType", "desktop-wallpaper")])
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-media-type").await;

    // No credentials at all.
    let r = anonymous()
        .post(server.url("/uploads?name=a.txt"))
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // Bearer tokens that are not ours: well-prefixed but unknown, and garbage.
    for token in [
        "hgr_0000000000000000000000000000000000000000000",
        "not-a-token",
    ] {
        let r = anonymous()
            .post(server.url("/uploads?name=a.txt"))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        expect_error(r, 401, "unauthenticated").await;
    }
    // A malformed Authorization header.
    let r = anonymous()
        .post(server.url("/uploads?name=a.txt"))
        .header("authorization", "Basic Ym9iOnB3")
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert_eq!(server.temporaries_settled().await, 0);
}

#[tokio::test]
async fn uploads_over_the_size_limit_are_413_and_leave_nothing_behind() {
    let limit: usize = 1_048_576;
    let server = TestApp::start_with(&["--max-file-size", "1048576"]).await;
    let bob = server.member("bob").await;

    // Each refused upload uses its own connection: the server may stop reading the body and close
    // the connection (see `an_early_413_says_connection_close_or_keeps_the_connection_usable`).
    // Declared length over the limit.
    let big = vec![b'x'; limit + 1];
    let r = upload_with(
        &fresh(&bob),
        "big.bin",
        "application/octet-stream",
        &big,
        &[],
    )
    .await;
    expect_error(r, 413, "limits-reached").await;

    // Streamed without a declared length (chunked): refused while it arrives.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|_| Ok(vec![b'y'; 64 * 1024])).collect();
    let r = fresh(&bob)
        .post("/uploads")
        .query(&[("name", "stream.bin")])
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;

    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert_eq!(server.temporaries_settled().await, 0);

    // Exactly the limit is fine.
    let exact = vec![b'e'; limit];
    let id = bob
        .upload("exact.bin", "application/octet-stream", &exact)
        .await;
    let m = metadata(&bob, id).await;
    assert_eq!(m["fileSize"], limit);
    assert_eq!(server.blob_files().await.len(), 1);
    assert_eq!(server.temporaries_settled().await, 0);
    assert_eq!(download_named(&bob, id, "exact.bin").await, (200, exact));
}

#[tokio::test]
async fn a_multipart_file_over_the_size_limit_is_413() {
    let limit: usize = 1_048_576;
    let server = TestApp::start_with(&["--max-file-size", "1048576"]).await;
    let bob = server.member("bob").await;
    let channel = bob.channel("limits", &[]).await;
    let message = bob.message(channel, "too big").await;
    for size in [limit + 1, limit + 4096, 2 * limit] {
        let body = multipart_body(&[Part::file(
            "huge.bin",
            "application/octet-stream",
            &vec![b'z'; size],
        )]);
        let r = post_multipart(&fresh(&bob), message, body).await;
        expect_error(r, 413, "limits-reached").await;
    }
    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert_eq!(server.temporaries_settled().await, 0);
    // Exactly the limit, in a multipart body, is accepted.
    let exact = vec![b'e'; limit];
    let listed = upload_to_message(
        &bob,
        message,
        &[Part::file("exact.bin", "application/octet-stream", &exact)],
    )
    .await;
    assert_eq!(listed[0]["fileSize"], limit);
}

/// Reads one HTTP/1.1 response (head and Content-Length body) from a raw connection; None on EOF or
/// a connection error before a complete head arrived.
async fn read_response(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((head, body))
}

#[tokio::test]
async fn an_early_413_says_connection_close_or_keeps_the_connection_usable() {
    use tokio::io::AsyncWriteExt;
    let limit: usize = 1_048_576;
    let server = TestApp::start_with(&["--max-file-size", "1048576"]).await;
    let bob = server.member("bob").await;
    // The node's own connection handling is the subject: talk to it, not to a balancer.
    let mut sock = tokio::net::TcpStream::connect(server.node_addr())
        .await
        .unwrap();
    // The head declares a body over the limit; the server may answer before reading any of it.
    let head = format!(
        "POST /uploads?name=big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.node_addr(),
        bob.token,
        limit + 1
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut sock)
        .await
        .expect("the server answers the oversized upload");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "limits-reached");
    let says_close = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "connection:close");
    if says_close {
        return;
    }
    // The answer let the client keep the connection: the server must then read (and discard) the
    // declared body and answer the next request on the same connection.
    let mut rest = vec![b'x'; limit + 1];
    rest.extend_from_slice(
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.node_addr()
        )
        .as_bytes(),
    );
    let _ = sock.write_all(&rest).await;
    let next = read_response(&mut sock).await;
    assert!(
        next.as_ref().is_some_and(|(h, _)| h.starts_with("HTTP/1.1 200")),
        "the 413 did not say `Connection: close` ({head:?}), yet the connection did not serve the next request: {next:?}"
    );
}

// ---------------------------------------------------------------------------------------------------
// 2. Checksums
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn correct_declared_checksums_are_accepted_in_every_form() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"checksummed content".to_vec();
    let hex = sha256_hex(&bytes);
    let digest = digest_header(&bytes);
    let with_other_algorithm = format!("sha-512=:AAAA:, {digest}");
    let upper = hex.to_uppercase();
    let cases: Vec<(&str, &str)> = vec![
        ("x-checksum-sha256", hex.as_str()),
        ("x-checksum-sha256", upper.as_str()),
        ("repr-digest", digest.as_str()),
        ("content-digest", digest.as_str()),
        ("repr-digest", with_other_algorithm.as_str()),
    ];
    for (name, value) in cases {
        let r = upload_with(&bob, "c.txt", "text/plain", &bytes, &[(name, value)]).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{name}: {value}: {text}");
        let id: i64 = text.parse().unwrap();
        let m = metadata(&bob, id).await;
        assert_eq!(m["attachmentState"], "ReadyForDownloadFromServerToClient");
        assert_eq!(m["fileChecksum"], hex);
        assert_eq!(
            download_named(&bob, id, "c.txt").await,
            (200, bytes.clone())
        );
    }
    assert_eq!(
        server.blob_files().await.len(),
        1,
        "identical bytes stored once"
    );
}

#[tokio::test]
async fn a_wrong_declared_checksum_is_422_and_the_attachment_is_never_served() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"what was actually sent".to_vec();
    let other = b"what the client thought it sent".to_vec();
    let wrong_hex = sha256_hex(&other);
    let wrong_digest = digest_header(&other);
    let cases: Vec<(&str, &str)> = vec![
        ("x-checksum-sha256", wrong_hex.as_str()),
        ("repr-digest", wrong_digest.as_str()),
        ("content-digest", wrong_digest.as_str()),
    ];
    for (name, value) in cases {
        let r = upload_with(&bob, "m.txt", "text/plain", &bytes, &[(name, value)]).await;
        let body = expect_error(r, 422, "checksum-mismatch").await;
        let id = body["attachmentId"]
            .as_i64()
            .unwrap_or_else(|| panic!("422 names the attachment: {body}"));

        let m = metadata(&bob, id).await;
        assert_eq!(
            m["attachmentState"], "ChecksumVerificationOnServerSideMismatch",
            "{name}: {m}"
        );
        assert_eq!(m["fileName"], "m.txt");

        let r = bob
            .get(&format!("/api/v1/attachments/{id}/m.txt"))
            .send()
            .await
            .unwrap();
        expect_error(r, 409, "checksum-mismatch").await;
        let r = bob.get(&format!("/d/{id}")).send().await.unwrap();
        expect_error(r, 409, "checksum-mismatch").await;
    }
    assert!(
        server.blob_files().await.is_empty(),
        "mismatched bytes are not kept: {:?}",
        server.blob_files().await
    );
    assert_eq!(server.temporaries_settled().await, 0);
}

#[tokio::test]
async fn a_malformed_declared_checksum_is_400_bad_checksum() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"abc";
    for (name, value) in [
        ("x-checksum-sha256", "abc"),
        (
            "x-checksum-sha256",
            "zz1234567890123456789012345678901234567890123456789012345678901",
        ),
        ("repr-digest", "sha-256=no-colons"),
        ("repr-digest", "sha-256=:AAAA:"),
        ("repr-digest", "sha-256=:!!!notbase64!!!:"),
        ("content-digest", "garbage"),
        ("content-digest", "md5=:AAAA:"),
    ] {
        let r = upload_with(&bob, "a.txt", "text/plain", bytes, &[(name, value)]).await;
        assert_eq!(r.status(), 400, "{name}: {value}");
        expect_error(r, 400, "bad-checksum").await;
    }
    assert!(server.blob_files().await.is_empty());
    assert_eq!(server.temporaries_settled().await, 0);
}

#[tokio::test]
async fn a_digest_on_a_multipart_file_part_is_verified() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let channel = bob.channel("digests", &[]).await;
    let message = bob.message(channel, "files with digests").await;
    let good = b"part bytes that match".to_vec();
    let bad = b"part bytes that do not match".to_vec();

    // Correct declarations in each form.
    let listed = upload_to_message(
        &bob,
        message,
        &[
            Part::file("a.txt", "text/plain", &good)
                .with_header("Content-Digest", digest_header(&good)),
            Part::file("b.txt", "text/plain", &good)
                .with_header("Repr-Digest", digest_header(&good)),
            Part::file("c.txt", "text/plain", &good)
                .with_header("X-Checksum-SHA256", sha256_hex(&good)),
        ],
    )
    .await;
    assert_eq!(listed.len(), 3);
    for a in &listed {
        assert_eq!(a["attachmentState"], "ReadyForDownloadFromServerToClient");
        assert_eq!(a["fileChecksum"], sha256_hex(&good));
    }
    let blobs_before = server.blob_files().await.len();
    assert_eq!(blobs_before, 1);

    // A wrong declaration on the part.
    for (name, value) in [
        ("Content-Digest", digest_header(&good)),
        ("X-Checksum-SHA256", sha256_hex(&good)),
    ] {
        let body =
            multipart_body(&[Part::file("bad.txt", "text/plain", &bad).with_header(name, value)]);
        let r = post_multipart(&bob, message, body).await;
        let err = expect_error(r, 422, "checksum-mismatch").await;
        let id = err["attachmentId"]
            .as_i64()
            .unwrap_or_else(|| panic!("422 names the attachment: {err}"));
        let m = metadata(&bob, id).await;
        assert_eq!(
            m["attachmentState"],
            "ChecksumVerificationOnServerSideMismatch"
        );
        let r = bob
            .get(&format!("/api/v1/attachments/{id}/bad.txt"))
            .send()
            .await
            .unwrap();
        expect_error(r, 409, "checksum-mismatch").await;
    }
    assert_eq!(
        server.blob_files().await.len(),
        blobs_before,
        "no blob for mismatched parts"
    );

    // A malformed declaration on the part.
    let body =
        multipart_body(&[Part::file("bad.txt", "text/plain", &good)
            .with_header("Content-Digest", "sha-256=oops")]);
    let r = post_multipart(&bob, message, body).await;
    expect_error(r, 400, "bad-checksum").await;
    assert_eq!(server.blob_files().await.len(), blobs_before);
    assert_eq!(server.temporaries_settled().await, 0);
}

// ---------------------------------------------------------------------------------------------------
// 3. Multipart uploads to a message
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn multipart_upload_to_a_message_stores_every_file_byte_exact() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let _alice = server.member("alice").await;
    let channel = bob.channel("general", &["alice"]).await;
    let message = bob.message(channel, "three files").await;

    let text = b"plain text\r\n--not-a-boundary\r\n".to_vec();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let png = tiny_png();
    let files: Vec<(&str, &str, Vec<u8>)> = vec![
        ("a.txt", "text/plain", text),
        ("b.bin", "application/octet-stream", binary),
        ("c.png", "image/png", png),
    ];
    // The way a browser's FormData sends it, plus an unrelated form field.
    let mut form = reqwest::multipart::Form::new().text("comment", "ignored");
    for (name, ct, bytes) in &files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(name.to_string())
                .mime_str(ct)
                .unwrap(),
        );
    }
    let r = bob
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["httpStatusCode"], 200, "{body}");
    let listed = body["attachments"].as_array().expect("attachments").clone();
    assert_eq!(listed.len(), 3, "{body}");

    let alice = {
        // A second client for alice: channel members read the message's attachments.
        let token = login_token(&server.base, "alice", "alice-password").await;
        User {
            base: server.base.clone(),
            http: Client::new(),
            token,
            username: "alice".into(),
        }
    };
    for ((name, ct, bytes), a) in files.iter().zip(&listed) {
        let id = id_of(a);
        assert_eq!(a["fileName"], *name);
        assert_eq!(a["fileSize"], bytes.len());
        assert_eq!(a["fileChecksum"], sha256_hex(bytes));
        assert_eq!(a["attachmentState"], "ReadyForDownloadFromServerToClient");

        let m = metadata(&bob, id).await;
        assert_eq!(m["roomId"], channel, "{m}");
        assert_eq!(m["textMessageId"], message, "{m}");

        let r = bob
            .get(&format!("/api/v1/attachments/{id}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(r.headers(), "content-type"), *ct);
        assert_eq!(
            header(r.headers(), "content-length"),
            bytes.len().to_string()
        );
        assert_eq!(r.bytes().await.unwrap().to_vec(), *bytes, "{name}");

        assert_eq!(download_named(&alice, id, name).await, (200, bytes.clone()));
    }
    let ids: Vec<i64> = listed.iter().map(id_of).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "distinct ids: {ids:?}");

    // The message lists its attachments.
    let r = alice
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let msg = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["messageId"] == message)
        .unwrap_or_else(|| panic!("message listed: {page}"));
    let on_message: Vec<i64> = msg["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attachmentId"].as_i64().unwrap())
        .collect();
    assert_eq!(on_message, ids, "{msg}");
}

#[tokio::test]
async fn multipart_upload_refuses_bad_requests() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    let channel = bob.channel("private", &[]).await;
    let message = bob.message(channel, "bob only").await;
    let good = multipart_body(&[Part::file("a.txt", "text/plain", b"hello")]);

    // Not a member of the message's channel: the message does not exist for carol.
    let r = post_multipart(&carol, message, good.clone()).await;
    expect_error(r, 404, "not-found").await;
    // An unknown message.
    let r = post_multipart(&bob, 987_654_321, good.clone()).await;
    expect_error(r, 404, "not-found").await;
    // No credentials.
    let r = anonymous()
        .post(server.url(&format!("/api/v1/messages/{message}/attachments")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(good.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // Not multipart at all.
    let r = bob
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .json(&json!({"files": "a.txt"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "bad-multipart").await;
    let r = bob
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .body(good.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "bad-multipart").await;

    // A boundary that the body does not use.
    let r = bob
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .header(
            "content-type",
            "multipart/form-data; boundary=some-other-boundary",
        )
        .body(good.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-multipart").await;

    // A body cut off in the middle of the file.
    let mut truncated = multipart_body(&[Part::file("a.txt", "text/plain", &[b'q'; 5000])]);
    truncated.truncate(truncated.len() - 2000);
    let r = post_multipart(&bob, message, truncated).await;
    expect_error(r, 400, "bad-multipart").await;

    // A form without a `files` part.
    let body = multipart_body(&[
        Part::field("comment", "no files here"),
        Part {
            name: "file",
            ..Part::file("a.txt", "text/plain", b"wrong field name")
        },
    ]);
    let r = post_multipart(&bob, message, body).await;
    expect_error(r, 400, "no-files").await;

    assert!(
        server.blob_files().await.is_empty(),
        "{:?}",
        server.blob_files().await
    );
    assert_eq!(server.temporaries_settled().await, 0);
}

// ---------------------------------------------------------------------------------------------------
// 4. Hostile file names
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn hostile_names_in_raw_uploads_are_sanitized() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let long = format!("{}.png", "a".repeat(300));
    let wide = format!("{}.txt", "é".repeat(200));
    let cases: Vec<(&str, &str)> = vec![
        ("../x", ".._x"),
        ("..\\..\\boot.ini", ".._.._boot.ini"),
        ("dir/sub/file.txt", "dir_sub_file.txt"),
        ("nul\0by\x07te\r\n.txt", "nulbyte.txt"),
        ("tab\there\x1b[31m.txt", "tabhere[31m.txt"),
        ("invoice\u{202E}gpj.exe", "invoicegpj.exe"),
        (
            "\u{202A}a\u{202B}b\u{202C}c\u{202D}d\u{2066}e\u{2067}f\u{2068}g\u{2069}.txt",
            "abcdefg.txt",
        ),
    ];
    for (given, expected) in cases {
        let id = bob.upload(given, "text/plain", b"x").await;
        let m = metadata(&bob, id).await;
        assert_eq!(m["fileName"], expected, "from {given:?}");
        assert_eq!(
            download_named(&bob, id, expected).await,
            (200, b"x".to_vec())
        );
    }

    let id = bob.upload(&long, "image/png", b"x").await;
    let name = metadata(&bob, id).await["fileName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.len() <= 255, "{} bytes", name.len());
    assert!(name.ends_with(".png"), "{name}");
    assert!(name.starts_with("aaaa"), "{name}");
    assert_eq!(download_named(&bob, id, &name).await.0, 200);

    let id = bob.upload(&wide, "text/plain", b"x").await;
    let name = metadata(&bob, id).await["fileName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.len() <= 255, "{} bytes", name.len());
    assert!(name.ends_with(".txt"), "{name}");
    assert!(name.starts_with('é'), "{name}");
}

#[tokio::test]
async fn non_ascii_names_get_an_ascii_fallback_and_an_rfc5987_name() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    for name in [
        "résumé final.pdf",
        "отчёт \"Q3\".txt",
        "日本語.png",
        "plain.txt",
        "100% done #1?.txt",
        "a;b=c, d.txt",
    ] {
        let id = bob.upload(name, "application/octet-stream", b"bytes").await;
        assert_eq!(metadata(&bob, id).await["fileName"], name);
        for path in [
            format!("/api/v1/attachments/{id}/{}", path_segment(name)),
            format!("/d/{id}"),
        ] {
            let r = bob.get(&path).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let cd = header(r.headers(), "content-disposition").to_string();
            let (fallback, decoded) = disposition_names(&cd);
            assert!(fallback.is_ascii(), "{cd}");
            assert!(!fallback.is_empty(), "{cd}");
            assert!(
                !fallback.contains('\\') && !fallback.chars().any(|c| c.is_ascii_control()),
                "{cd}"
            );
            assert_eq!(decoded, name, "{cd}");
            if name.is_ascii() && !name.contains('"') {
                assert_eq!(fallback, name, "{cd}");
            }
            if path.starts_with("/api/v1/attachments/") {
                assert!(cd.starts_with("attachment"), "{cd}");
            }
        }
    }
}

#[tokio::test]
async fn hostile_names_in_multipart_uploads_are_sanitized() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let channel = bob.channel("names", &[]).await;
    let message = bob.message(channel, "names").await;
    let long = format!("{}.jpeg", "b".repeat(300));
    let listed = upload_to_message(
        &bob,
        message,
        &[
            Part::file("../x", "text/plain", b"1"),
            Part::file("invoice\u{202E}gpj.exe", "text/plain", b"2"),
            Part::file(&long, "text/plain", b"3"),
            Part::file("résumé.pdf", "application/pdf", b"4"),
            Part::file("../../etc/passwd", "text/plain", b"5"),
        ],
    )
    .await;
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0]["fileName"], ".._x");
    assert_eq!(listed[1]["fileName"], "invoicegpj.exe");
    let long_name = listed[2]["fileName"].as_str().unwrap();
    assert!(
        long_name.len() <= 255 && long_name.ends_with(".jpeg"),
        "{long_name}"
    );
    assert_eq!(listed[3]["fileName"], "résumé.pdf");
    assert_eq!(listed[4]["fileName"], ".._.._etc_passwd");
    for (a, body) in listed.iter().zip([b"1", b"2", b"3", b"4", b"5"]) {
        let id = id_of(a);
        let name = a["fileName"].as_str().unwrap();
        assert_eq!(metadata(&bob, id).await["fileName"], name);
        assert_eq!(download_named(&bob, id, name).await, (200, body.to_vec()));
    }
    let r = bob
        .get(&format!(
            "/api/v1/attachments/{}/{}",
            id_of(&listed[3]),
            path_segment("résumé.pdf")
        ))
        .send()
        .await
        .unwrap();
    let (fallback, decoded) = disposition_names(header(r.headers(), "content-disposition"));
    assert!(fallback.is_ascii());
    assert_eq!(decoded, "résumé.pdf");
}

// ---------------------------------------------------------------------------------------------------
// 5. Downloads
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn downloads_honour_etag_range_and_head() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = b"0123456789abcdef".to_vec();
    let sha = sha256_hex(&bytes);
    let etag = format!("\"{sha}\"");
    let id = bob.upload("digits.txt", "text/plain", &bytes).await;

    for path in [
        format!("/api/v1/attachments/{id}/digits.txt"),
        format!("/d/{id}"),
    ] {
        let r = bob.get(&path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(header(&h, "content-length"), "16");
        assert_eq!(header(&h, "content-type"), "text/plain");
        assert_eq!(header(&h, "etag"), etag);
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert!(
            header(&h, "content-security-policy").contains("sandbox"),
            "{h:?}"
        );
        assert!(header(&h, "cache-control").contains("private"), "{h:?}");
        assert!(!header(&h, "cache-control").contains("public"), "{h:?}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

        // Conditional GET.
        let r = bob
            .get(&path)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{path}");
        assert_eq!(header(r.headers(), "etag"), etag);
        assert!(r.bytes().await.unwrap().is_empty());
        let r = bob
            .get(&path)
            .header("if-none-match", format!("\"nope\", W/{etag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{path}: a list with a weak match");
        let r = bob
            .get(&path)
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

        // Ranges.
        let r = bob
            .get(&path)
            .header("range", "bytes=2-5")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{path}");
        assert_eq!(header(r.headers(), "content-range"), "bytes 2-5/16");
        assert_eq!(header(r.headers(), "content-length"), "4");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"2345");

        let r = bob
            .get(&path)
            .header("range", "bytes=-3")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{path}");
        assert_eq!(header(r.headers(), "content-range"), "bytes 13-15/16");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"def");

        let r = bob
            .get(&path)
            .header("range", "bytes=10-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{path}");
        assert_eq!(header(r.headers(), "content-range"), "bytes 10-15/16");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"abcdef");

        let r = bob
            .get(&path)
            .header("range", "bytes=100-200")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416, "{path}");
        assert_eq!(header(r.headers(), "content-range"), "bytes */16");

        // If-Range: a stale validator means the whole file; the current one allows the range.
        let r = bob
            .get(&path)
            .header("range", "bytes=2-5")
            .header("if-range", "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("content-range").is_none());
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
        let r = bob
            .get(&path)
            .header("range", "bytes=2-5")
            .header("if-range", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{path}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"2345");

        // HEAD: the same headers, no body.
        let r = bob.head(&path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(r.headers(), "content-length"), "16");
        assert_eq!(header(r.headers(), "etag"), etag);
        assert_eq!(header(r.headers(), "content-type"), "text/plain");
        assert_eq!(header(r.headers(), "x-content-type-options"), "nosniff");
        assert!(r.bytes().await.unwrap().is_empty());
    }

    // The name in the path must be the attachment's.
    let r = bob
        .get(&format!("/api/v1/attachments/{id}/other.txt"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bob
        .get(&format!("/api/v1/attachments/{id}/Digits.txt"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Unknown ids.
    let r = bob
        .get("/api/v1/attachments/123456789/digits.txt")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bob
        .get("/api/v1/attachments/123456789")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bob.get("/d/123456789").send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bob.get("/d/not-a-number").send().await.unwrap();
    expect_error(r, 404, "not-found").await;
}

#[tokio::test]
async fn an_empty_file_uploads_and_downloads() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let id = bob.upload("empty.txt", "text/plain", b"").await;
    let m = metadata(&bob, id).await;
    assert_eq!(m["fileSize"], 0);
    assert_eq!(m["fileChecksum"], sha256_hex(b""));
    assert_eq!(m["attachmentState"], "ReadyForDownloadFromServerToClient");
    let r = bob
        .get(&format!("/api/v1/attachments/{id}/empty.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "content-length"), "0");
    assert_eq!(
        header(r.headers(), "etag"),
        format!("\"{}\"", sha256_hex(b""))
    );
    assert!(r.bytes().await.unwrap().is_empty());
    let r = bob
        .get(&format!("/d/{id}"))
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(header(r.headers(), "content-range"), "bytes */0");
}

/// Larger than one part of an S3 multipart upload (8 MiB): with its `Content-Length` known, the S3
/// backends stream it in one PUT (the two-node run); the local disk writes it as any other.
#[tokio::test]
async fn a_file_of_several_mebibytes_uploads_with_its_length_and_reads_back_byte_exact() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = pseudo_random_bytes(12 << 20, 77);
    let id = bob
        .upload("big.bin", "application/octet-stream", &bytes)
        .await;
    let m = metadata(&bob, id).await;
    assert_eq!(m["fileSize"], bytes.len());
    assert_eq!(m["fileChecksum"], sha256_hex(&bytes));
    let (status, body) = download_named(&bob, id, "big.bin").await;
    assert_eq!(status, 200);
    assert!(body == bytes, "the downloaded bytes differ");
    let r = bob
        .get(&format!("/d/{id}"))
        .header("range", "bytes=8388600-8388615")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), bytes[8388600..8388616]);
    // The same bytes again: one blob, both attachments read it.
    let again = bob
        .upload("again.bin", "application/octet-stream", &bytes)
        .await;
    assert_ne!(again, id);
    let (status, body) = download_named(&bob, again, "again.bin").await;
    assert_eq!(status, 200);
    assert!(body == bytes, "the second attachment's bytes differ");
}

#[tokio::test]
async fn active_content_is_always_served_as_a_download() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let channel = bob.channel("web", &[]).await;
    let cases: Vec<(&str, &str, &[u8])> = vec![
        (
            "page.html",
            "text/html",
            b"<html><script>alert(1)</script></html>",
        ),
        ("page2.html", "text/html; charset=utf-8", b"<b>hi</b>"),
        (
            "logo.svg",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        ),
        (
            "feed.xml",
            "application/xml",
            b"<?xml version=\"1.0\"?><a/>",
        ),
        ("app.js", "text/javascript", b"alert(1)"),
        ("x.xhtml", "application/xhtml+xml", b"<html/>"),
    ];
    for (name, ct, bytes) in cases {
        let id = bob.upload(name, ct, bytes).await;
        let r = send_message(&bob, channel, file_attachment(id, bytes.len(), name)).await;
        assert_eq!(r.status(), 200);
        let sent: Value = r.json().await.unwrap();
        let sent_id = sent["messageId"].as_i64().unwrap();
        let r = public_url(&bob, channel, sent_id, id).await;
        assert_eq!(r.status(), 200);
        let link: String = r.json().await.unwrap();

        let private = bob.get(&format!("/d/{id}")).send().await.unwrap();
        let public = anonymous().get(&link).send().await.unwrap();
        let named = bob
            .get(&format!("/api/v1/attachments/{id}/{name}"))
            .send()
            .await
            .unwrap();
        for (route, r) in [("/d/", private), ("public link", public), ("named", named)] {
            assert_eq!(r.status(), 200, "{name} via {route}");
            let h = r.headers().clone();
            assert!(
                header(&h, "content-disposition").starts_with("attachment"),
                "{name} ({ct}) via {route}: {h:?}"
            );
            assert_eq!(header(&h, "x-content-type-options"), "nosniff");
            assert!(header(&h, "content-security-policy").contains("sandbox"));
            assert_eq!(r.bytes().await.unwrap().as_ref(), bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// 6. Access
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn attachments_are_private_until_attached_where_the_reader_is_a_member() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let alice = server.member("alice").await;
    let carol = server.member("carol").await;
    let bytes = b"bob's private notes".to_vec();
    let id = bob.upload("notes.txt", "text/plain", &bytes).await;

    // Someone else: it does not exist for them (404, never 403).
    for user in [&alice, &carol] {
        let r = user
            .get(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = user
            .get(&format!("/api/v1/attachments/{id}/notes.txt"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = user.get(&format!("/d/{id}")).send().await.unwrap();
        expect_error(r, 404, "not-found").await;
        let r = user
            .delete(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
    // Without credentials: 401.
    let r = anonymous()
        .get(server.url(&format!("/api/v1/attachments/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = anonymous()
        .get(server.url(&format!("/api/v1/attachments/{id}/notes.txt")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    // The administrator can do everything.
    assert_eq!(metadata(&admin, id).await["attachmentId"], id);

    // Attached to a message in a channel alice is in: alice can read it, carol still cannot.
    let channel = bob.channel("bob-and-alice", &["alice"]).await;
    let r = send_message(&bob, channel, file_attachment(id, bytes.len(), "notes.txt")).await;
    assert_eq!(r.status(), 200);
    let sent: Value = r.json().await.unwrap();
    let message = sent["messageId"].as_i64().expect("messageId");
    let listed = sent["attachments"].as_array().expect("attachments");
    assert_eq!(listed.len(), 1, "{sent}");
    assert_eq!(listed[0]["className"], "FileAttachment");
    assert_eq!(listed[0]["id"], id.to_string());

    let m = metadata(&alice, id).await;
    assert_eq!(m["roomId"], channel);
    assert_eq!(m["textMessageId"], message);
    assert_eq!(
        download_named(&alice, id, "notes.txt").await,
        (200, bytes.clone())
    );
    let r = alice.get(&format!("/d/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = carol
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // A reader who is not the owner may not delete it, nor revoke its link.
    let r = alice
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = alice
        .delete(&format!("/api/v1/attachments/{id}/public-link"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    assert_eq!(metadata(&bob, id).await["attachmentId"], id);

    // The owner deletes it: gone for everyone, and gone from the message.
    let r = bob
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["httpStatusCode"], 200);
    for user in [&bob, &alice, &admin] {
        let r = user
            .get(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = user
            .get(&format!("/api/v1/attachments/{id}/notes.txt"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
    let r = bob
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = alice
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    let msg = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["messageId"] == message)
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(
        msg["attachments"].as_array().unwrap().len(),
        0,
        "a deleted attachment is no longer on its message: {msg}"
    );
}

#[tokio::test]
async fn project_members_read_an_issues_attachments() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    let dave = server.member("dave").await;
    let png = tiny_png();
    let r = bob
        .post("/uploads")
        .query(&[
            ("name", "screenshot.png"),
            ("spaceMediaType", "issue-image-attachment"),
        ])
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id: i64 = r.text().await.unwrap().parse().unwrap();

    let r = bob
        .post("/api/http/projects")
        .json(&json!({"key": "PRJ", "name": "Project", "members": ["carol"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 201, "{}", r.status());

    // carol cannot read it before it is on an issue.
    let r = carol
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    let r = bob
        .post("/api/http/projects/key:PRJ/planning/issues")
        .json(&json!({
            "title": "It breaks",
            "status": "Open",
            "attachments": [{"className": "ImageAttachment", "id": id.to_string(), "width": 1, "height": 1}],
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 201, "{}", r.status());
    let issue: Value = r.json().await.unwrap();
    assert_eq!(issue["key"], "PRJ-T-1", "{issue}");
    assert_eq!(issue["attachments"][0]["id"], id.to_string(), "{issue}");
    assert_eq!(issue["attachments"][0]["className"], "ImageAttachment");

    assert_eq!(metadata(&carol, id).await["fileChecksum"], sha256_hex(&png));
    assert_eq!(
        download_named(&carol, id, "screenshot.png").await,
        (200, png.clone())
    );
    let r = carol.get(&format!("/d/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), png);
    let r = dave
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = dave.get(&format!("/d/{id}")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;

    // Added to an existing issue.
    let second = bob.upload("log.txt", "text/plain", b"stack trace").await;
    let r = bob
        .post("/api/http/projects/key:PRJ/planning/issues/key:PRJ-T-1/attachments")
        .json(&json!({"attachments": [{"className": "FileAttachment", "id": second.to_string(), "sizeBytes": 11, "filename": "log.txt"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        download_named(&carol, second, "log.txt").await,
        (200, b"stack trace".to_vec())
    );
    let r = dave
        .get(&format!("/api/v1/attachments/{second}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // The project member may read it but not delete it.
    let r = carol
        .delete(&format!("/api/v1/attachments/{second}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
}

#[tokio::test]
async fn attaching_unknown_foreign_or_unready_attachments_is_refused() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let alice = server.member("alice").await;
    let channel = alice.channel("alice-and-bob", &["bob"]).await;
    let r = alice
        .post("/api/http/projects")
        .json(&json!({"key": "ALI", "name": "Alice's", "members": ["bob"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // An id that does not exist.
    let r = send_message(&alice, channel, file_attachment(424_242_424, 3, "x.txt")).await;
    let body = expect_error(r, 400, "unknown-attachment").await;
    assert_eq!(body["attachmentId"], 424_242_424);

    // bob's attachment, even one alice can read through a message, is not hers to attach.
    let id = bob.upload("bob.txt", "text/plain", b"bob").await;
    let r = send_message(&alice, channel, file_attachment(id, 3, "bob.txt")).await;
    expect_error(r, 400, "unknown-attachment").await;
    let r = send_message(&bob, channel, file_attachment(id, 3, "bob.txt")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(metadata(&alice, id).await["attachmentId"], id);
    let r = send_message(&alice, channel, file_attachment(id, 3, "bob.txt")).await;
    expect_error(r, 400, "unknown-attachment").await;
    let r = alice
        .post("/api/http/projects/key:ALI/planning/issues")
        .json(&json!({"title": "t", "status": "Open", "attachments": [{"className": "FileAttachment", "id": id.to_string()}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unknown-attachment").await;

    // A mismatched attachment cannot be attached anywhere.
    let r = upload_with(
        &bob,
        "bad.txt",
        "text/plain",
        b"actual",
        &[("x-checksum-sha256", &sha256_hex(b"declared"))],
    )
    .await;
    let bad = expect_error(r, 422, "checksum-mismatch").await["attachmentId"]
        .as_i64()
        .unwrap();
    let r = send_message(&bob, channel, file_attachment(bad, 6, "bad.txt")).await;
    let body = expect_error(r, 409, "attachment-not-ready").await;
    assert_eq!(body["attachmentId"], bad);
    let r = bob
        .post("/api/http/projects/key:ALI/planning/issues")
        .json(&json!({"title": "t", "status": "Open", "attachments": [{"className": "ImageAttachment", "id": bad.to_string(), "width": 1, "height": 1}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "attachment-not-ready").await;
    // Nothing was created by the refused calls: alice cannot see the mismatched attachment.
    let r = alice
        .get(&format!("/api/v1/attachments/{bad}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
}

#[tokio::test]
async fn a_shared_blob_is_removed_only_with_its_last_attachment() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let alice = server.member("alice").await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = sha256_hex(&bytes);

    let first = bob
        .upload("one.bin", "application/octet-stream", &bytes)
        .await;
    let second = bob
        .upload("two.bin", "application/octet-stream", &bytes)
        .await;
    let third = alice
        .upload("three.bin", "application/octet-stream", &bytes)
        .await;
    let blobs = server.blob_files().await;
    assert_eq!(blobs.len(), 1, "identical bytes are stored once: {blobs:?}");
    assert_eq!(
        blobs[0].file_name().unwrap().to_str().unwrap(),
        sha,
        "content-addressed"
    );
    assert_eq!(server.blob_bytes(&sha).await, bytes);

    // An unrelated upload adds a second blob.
    let other = bob
        .upload("other.bin", "application/octet-stream", b"other")
        .await;
    assert_eq!(server.blob_files().await.len(), 2);

    for (who, id) in [(&bob, first), (&alice, third)] {
        let r = who
            .delete(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            server.blob_files().await.len(),
            2,
            "still referenced by {second}"
        );
        assert_eq!(
            download_named(&bob, second, "two.bin").await,
            (200, bytes.clone())
        );
    }
    let r = bob
        .delete(&format!("/api/v1/attachments/{second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let left = server.blob_files().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        left[0].file_name().unwrap().to_str().unwrap(),
        sha256_hex(b"other")
    );
    assert_eq!(
        download_named(&bob, other, "other.bin").await,
        (200, b"other".to_vec())
    );

    // The same bytes uploaded again are stored again.
    let again = bob
        .upload("again.bin", "application/octet-stream", &bytes)
        .await;
    assert_eq!(server.blob_files().await.len(), 2);
    assert_eq!(download_named(&bob, again, "again.bin").await, (200, bytes));
}

// ---------------------------------------------------------------------------------------------------
// 7. Public links
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn public_links_work_without_credentials_and_can_be_revoked() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let _alice = server.member("alice").await;
    let carol = server.member("carol").await;
    let channel = bob.channel("share", &["alice"]).await;
    let message = bob.message(channel, "a file to share").await;
    let bytes = b"shared with the world".to_vec();
    let listed = upload_to_message(
        &bob,
        message,
        &[
            Part::file("shared.txt", "text/plain", &bytes),
            Part::file("sibling.txt", "text/plain", b"sibling"),
        ],
    )
    .await;
    let id = id_of(&listed[0]);
    let sibling = id_of(&listed[1]);

    let r = public_url(&bob, channel, message, id).await;
    assert_eq!(r.status(), 200);
    let link: String = r.json().await.expect("a JSON string");
    let prefix = format!("{}/d/{id}?k=", server.base);
    assert!(link.starts_with(&prefix), "{link}");
    let token = &link[prefix.len()..];
    assert_eq!(token.len(), 32, "{link}");
    assert!(
        token.bytes().all(|b| b.is_ascii_hexdigit()),
        "128-bit hex token: {link}"
    );

    // Anyone with the link downloads it.
    let r = anonymous().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(header(&h, "cache-control").contains("public"), "{h:?}");
    assert!(!header(&h, "cache-control").contains("private"), "{h:?}");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "content-length"), bytes.len().to_string());
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = anonymous().head(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = anonymous()
        .get(&link)
        .header("range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"shared");
    // The public link does not open the metadata or the named route to anonymous callers.
    let r = anonymous()
        .get(server.url(&format!("/api/v1/attachments/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // Without a token and without credentials: 401. A wrong token: 404.
    let r = anonymous()
        .get(server.url(&format!("/d/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    for k in [
        "00000000000000000000000000000000".to_string(),
        token.to_uppercase(),
        String::new(),
        format!("{token}00"),
    ] {
        if k == token {
            continue;
        }
        let r = anonymous()
            .get(server.url(&format!("/d/{id}?k={k}")))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
    // A token is bound to its attachment.
    let r = anonymous()
        .get(server.url(&format!("/d/{sibling}?k={token}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Revoked: the old URL stops working at once.
    let r = bob
        .delete(&format!("/api/v1/attachments/{id}/public-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = anonymous().get(&link).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    // bob still downloads it with his credentials.
    let r = bob.get(&format!("/d/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // A new public URL is different and works; the old one stays dead.
    let r = public_url(&bob, channel, message, id).await;
    assert_eq!(r.status(), 200);
    let new_link: String = r.json().await.unwrap();
    assert_ne!(new_link, link);
    assert!(new_link.starts_with(&prefix), "{new_link}");
    let r = anonymous().get(&new_link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = anonymous().get(&link).send().await.unwrap();
    expect_error(r, 404, "not-found").await;

    // An attachment that is not on that message.
    let loose = bob.upload("loose.txt", "text/plain", b"loose").await;
    let r = public_url(&bob, channel, message, loose).await;
    expect_error(r, 404, "not-found").await;
    let other_message = bob.message(channel, "another message").await;
    let r = public_url(&bob, channel, other_message, id).await;
    expect_error(r, 404, "not-found").await;
    // A message that does not exist, or that is in another channel.
    let r = public_url(&bob, channel, 999_999_999, id).await;
    expect_error(r, 404, "not-found").await;
    let elsewhere = bob.channel("elsewhere", &[]).await;
    let r = public_url(&bob, elsewhere, message, id).await;
    expect_error(r, 404, "not-found").await;
    // Someone outside the channel.
    let r = public_url(&carol, channel, message, id).await;
    expect_error(r, 404, "not-found").await;
    // Without credentials.
    let r = anonymous()
        .get(server.url(&format!(
            "/api/http/uploads/chat/public-url/channel:id:{channel}/id:{message}/{id}"
        )))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // Deleting the attachment kills its public link too.
    let r = bob
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = anonymous().get(&new_link).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
}

#[tokio::test]
async fn public_url_works_with_a_space_style_message() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let bytes = tiny_png();
    let id = bob.upload("pixel.png", "image/png", &bytes).await;
    let channel = bob.channel("images", &[]).await;
    let r = send_message(
        &bob,
        channel,
        json!([{"className": "ImageAttachment", "id": id.to_string(), "width": 1, "height": 1}]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let message = r.json::<Value>().await.unwrap()["messageId"]
        .as_i64()
        .unwrap();
    let r = public_url(&bob, channel, message, id).await;
    assert_eq!(r.status(), 200);
    let link: String = r.json().await.unwrap();
    let r = anonymous().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "content-type"), "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
}

// ---------------------------------------------------------------------------------------------------
// 8. Markdown-style /d/{id} links
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn markdown_links_resolve_for_callers_allowed_to_read() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let alice = server.member("alice").await;
    let carol = server.member("carol").await;
    let bytes = b"linked from markdown".to_vec();
    let id = bob.upload("doc.txt", "text/plain", &bytes).await;

    let r = bob.get(&format!("/d/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(r.headers(), "cache-control").contains("private"));
    assert_eq!(
        header(r.headers(), "etag"),
        format!("\"{}\"", sha256_hex(&bytes))
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    let r = alice.get(&format!("/d/{id}")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let channel = bob.channel("docs", &["alice"]).await;
    let r = send_message(&bob, channel, file_attachment(id, bytes.len(), "doc.txt")).await;
    assert_eq!(r.status(), 200);
    let r = alice.get(&format!("/d/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = carol.get(&format!("/d/{id}")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;

    // Without credentials, and with a bad bearer token.
    let r = anonymous()
        .get(server.url(&format!("/d/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = anonymous()
        .get(server.url(&format!("/d/{id}")))
        .bearer_auth("hgr_not_a_real_token")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // A browser following the link with its session cookie.
    let browser = Client::builder().cookie_store(true).build().unwrap();
    let r = browser
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = browser
        .get(server.url(&format!("/d/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(r.headers(), "cache-control").contains("private"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
}
