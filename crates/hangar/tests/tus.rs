//! Resumable uploads over tus 1.0 (SPEC §9.1) against the real binary: the protocol as a client
//! speaks it with reqwest (creation, chunks, offsets, checksums, termination), the attachment's
//! states, workspace storage targets with their conflicts and quota, cookies with CSRF, a restart
//! in the middle of an upload, and the expiry of an idle one.

mod common;

use base64::Engine;
use common::*;
use reqwest::header::HeaderMap;
use reqwest::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TUS: &str = "/api/v1/tus";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `Upload-Metadata` for these pairs.
fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", b64(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// An upload as the server announced it.
struct Created {
    /// The path of its URL (`/api/v1/tus/ID`).
    path: String,
    attachment_id: Option<i64>,
}

async fn create(user: &User, length: usize, meta: &[(&str, &str)]) -> Created {
    let r = user
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(meta))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert_eq!(header(r.headers(), "tus-resumable"), "1.0.0");
    assert!(header(r.headers(), "upload-expires").ends_with(" GMT"));
    let location = header(r.headers(), "location");
    let path = location
        .strip_prefix(&user.base)
        .unwrap_or_else(|| panic!("{location} is on this server"))
        .to_string();
    assert!(path.starts_with("/api/v1/tus/") && path.len() == "/api/v1/tus/".len() + 32);
    let attachment_id = r
        .headers()
        .get("hangar-attachment-id")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    Created {
        path,
        attachment_id,
    }
}

async fn patch(user: &User, path: &str, offset: usize, bytes: &[u8]) -> reqwest::Response {
    user.patch(path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn offset_of(user: &User, path: &str) -> u64 {
    let r = user
        .head(path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "cache-control"), "no-store");
    header(r.headers(), "upload-offset").parse().unwrap()
}

async fn attachment(user: &User, id: i64) -> Value {
    let r = user
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn download(user: &User, id: i64, name: &str) -> Vec<u8> {
    let r = user
        .get(&format!("/api/v1/attachments/{id}/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

fn sha1_b64(bytes: &[u8]) -> String {
    use sha1::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
}

fn sha256_b64(bytes: &[u8]) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn options_advertise_the_protocol_to_anyone() {
    let server = Server::start_with(&["--max-file-size", "5MiB"]);
    let r = Client::new()
        .request(reqwest::Method::OPTIONS, server.url(TUS))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(header(h, "tus-version"), "1.0.0");
    assert_eq!(header(h, "tus-resumable"), "1.0.0");
    let extensions = header(h, "tus-extension");
    for ext in [
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    ] {
        assert!(extensions.split(',').any(|e| e == ext), "{extensions}");
    }
    assert_eq!(header(h, "tus-max-size"), (5u64 << 20).to_string());
    let algorithms = header(h, "tus-checksum-algorithm");
    assert!(algorithms.contains("sha256") && algorithms.contains("sha1"));
}

#[tokio::test]
async fn an_attachment_arrives_in_chunks_and_walks_its_states() {
    let server = Server::start();
    let alice = server.member("alice").await;
    let file = data(300_000, 7);
    let up = create(
        &alice,
        file.len(),
        &[
            ("filename", "report.bin"),
            ("filetype", "application/x-report"),
        ],
    )
    .await;
    let id = up.attachment_id.expect("an attachment from creation");
    let meta = attachment(&alice, id).await;
    assert_eq!(
        meta["attachmentState"],
        "UploadFromClientToServerInProgress"
    );
    assert_eq!(meta["fileName"], "report.bin");
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/report.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        409,
        "no bytes are served before they are complete"
    );
    assert_eq!(offset_of(&alice, &up.path).await, 0);
    let r = alice
        .head(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(header(r.headers(), "upload-length"), file.len().to_string());
    assert_eq!(header(r.headers(), "hangar-attachment-id"), id.to_string());
    assert!(header(r.headers(), "upload-metadata").contains(&b64("report.bin")));

    // A first chunk with its SHA-1.
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .header(
            "upload-checksum",
            format!("sha1 {}", sha1_b64(&file[..100_000])),
        )
        .body(file[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(r.headers(), "upload-offset"), "100000");
    assert_eq!(header(r.headers(), "hangar-attachment-id"), id.to_string());
    assert!(header(r.headers(), "upload-expires").ends_with(" GMT"));

    // At another offset: 409, and the answer says where the upload is.
    let body = expect_error(
        patch(&alice, &up.path, 0, &file[..10]).await,
        409,
        "offset-mismatch",
    )
    .await;
    assert_eq!(body["offset"], 100_000);
    // A chunk that does not match its checksum: 460, nothing of it kept.
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "100000")
        .header("content-type", "application/offset+octet-stream")
        .header(
            "upload-checksum",
            format!("sha256 {}", sha256_b64(b"other bytes")),
        )
        .body(file[100_000..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(header(r.headers(), "hangar-attachment-id"), id.to_string());
    expect_error(r, 460, "checksum-mismatch").await;
    assert_eq!(offset_of(&alice, &up.path).await, 100_000);
    // An algorithm the server does not know, another Content-Type, bytes past the length, no offset.
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "100000")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-checksum", "md5 AAAA")
        .body(file[100_000..100_010].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "checksum-algorithm-unsupported").await;
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "100000")
        .header("content-type", "application/octet-stream")
        .body(file[100_000..100_010].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "unsupported-media-type").await;
    let mut too_much = file[100_000..].to_vec();
    too_much.extend_from_slice(b"one byte too many");
    expect_error(
        patch(&alice, &up.path, 100_000, &too_much).await,
        400,
        "beyond-length",
    )
    .await;
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .body(file[100_000..100_010].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "offset-required").await;
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "0.2.2")
        .header("upload-offset", "100000")
        .header("content-type", "application/offset+octet-stream")
        .body(file[100_000..100_010].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 412, "tus-version-unsupported").await;
    assert_eq!(offset_of(&alice, &up.path).await, 100_000);
    assert_eq!(
        attachment(&alice, id).await["attachmentState"],
        "UploadFromClientToServerInProgress"
    );

    // The rest, in two chunks; the last one with its SHA-256.
    let r = patch(&alice, &up.path, 100_000, &file[100_000..250_000]).await;
    assert_eq!(r.status(), 204);
    let r = alice
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "250000")
        .header("content-type", "application/offset+octet-stream")
        .header(
            "upload-checksum",
            format!("sha256 {}", sha256_b64(&file[250_000..])),
        )
        .body(file[250_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(r.headers(), "upload-offset"), "300000");
    let meta = attachment(&alice, id).await;
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
    assert_eq!(meta["fileChecksum"], sha256_hex(&file));
    assert_eq!(meta["fileSize"], 300_000);
    assert_eq!(download(&alice, id, "report.bin").await, file);
    // A finished upload still answers HEAD, and takes no more bytes.
    assert_eq!(offset_of(&alice, &up.path).await, 300_000);
    expect_error(
        patch(&alice, &up.path, 300_000, b"x").await,
        409,
        "upload-complete",
    )
    .await;
    // Nothing of the partial upload is left beside the blob.
    let partials = std::fs::read_dir(server.blob_root().join("partial"))
        .unwrap()
        .count();
    assert_eq!(partials, 0);
}

#[tokio::test]
async fn creation_with_upload_and_refused_creations() {
    let server = Server::start_with(&["--max-file-size", "1MiB"]);
    let bob = server.member("bob").await;
    let file = data(5000, 3);
    let r = bob
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5000")
        .header("upload-metadata", metadata(&[("filename", "all.txt")]))
        .header("content-type", "application/offset+octet-stream")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(r.headers(), "upload-offset"), "5000");
    let id: i64 = header(r.headers(), "hangar-attachment-id").parse().unwrap();
    assert_eq!(
        attachment(&bob, id).await["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
    assert_eq!(download(&bob, id, "all.txt").await, file);
    // The first bytes only: the rest follows by PATCH.
    let r = bob
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5000")
        .header("upload-metadata", metadata(&[("filename", "half.txt")]))
        .header("content-type", "application/offset+octet-stream")
        .body(file[..2000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(r.headers(), "upload-offset"), "2000");
    let path = header(r.headers(), "location").replace(&bob.base, "");
    assert_eq!(patch(&bob, &path, 2000, &file[2000..]).await.status(), 204);
    // An empty file is complete at creation.
    let empty = create(&bob, 0, &[("filename", "empty")]).await;
    let meta = attachment(&bob, empty.attachment_id.unwrap()).await;
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );

    let post = |meta: String, length: Option<&str>| {
        let mut r = bob
            .post(TUS)
            .header("tus-resumable", "1.0.0")
            .header("upload-metadata", meta);
        if let Some(l) = length {
            r = r.header("upload-length", l);
        }
        r
    };
    let r = post(metadata(&[("filetype", "text/plain")]), Some("10"));
    expect_error(r.send().await.unwrap(), 400, "missing-filename").await;
    let r = post(metadata(&[("filename", "a")]), None);
    expect_error(r.send().await.unwrap(), 400, "length-required").await;
    let r = post("filename !!notbase64".into(), Some("10"));
    expect_error(r.send().await.unwrap(), 400, "bad-metadata").await;
    let r = post(
        metadata(&[("filename", "a"), ("sha256", "abc")]),
        Some("10"),
    );
    expect_error(r.send().await.unwrap(), 400, "bad-checksum").await;
    let r = post(
        metadata(&[("filename", "a"), ("target", "elsewhere")]),
        Some("10"),
    );
    expect_error(r.send().await.unwrap(), 400, "bad-target").await;
    let r = post(
        metadata(&[("filename", "a")]),
        Some(&(2u64 << 20).to_string()),
    );
    expect_error(r.send().await.unwrap(), 413, "limits-reached").await;
    let r = post(metadata(&[("filename", "a")]), Some("10"))
        .header("content-type", "text/plain")
        .body("0123456789");
    expect_error(r.send().await.unwrap(), 415, "unsupported-media-type").await;
    let r = Client::new()
        .post(server.url(TUS))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header("upload-metadata", metadata(&[("filename", "a")]))
        .send()
        .await
        .unwrap();
    assert_eq!(header(r.headers(), "tus-resumable"), "1.0.0");
    expect_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn only_the_creator_continues_and_termination_removes_everything() {
    let server = Server::start();
    let alice = server.member("alice").await;
    let mallory = server.member("mallory").await;
    let up = create(&alice, 1000, &[("filename", "secret.txt")]).await;
    let id = up.attachment_id.unwrap();
    assert_eq!(
        patch(&alice, &up.path, 0, &data(400, 1)).await.status(),
        204
    );
    // Someone else's upload does not exist for them.
    let r = mallory
        .head(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    expect_error(
        patch(&mallory, &up.path, 400, &data(600, 1)).await,
        404,
        "not-found",
    )
    .await;
    let r = mallory
        .delete(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // An unknown id neither.
    let r = alice
        .head("/api/v1/tus/00000000000000000000000000000000")
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(offset_of(&alice, &up.path).await, 400);

    let r = alice
        .delete(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = alice
        .head(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    expect_error(
        patch(&alice, &up.path, 400, &data(600, 1)).await,
        404,
        "not-found",
    )
    .await;
    let r = alice
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let partials = std::fs::read_dir(server.blob_root().join("partial"))
        .unwrap()
        .count();
    assert_eq!(partials, 0, "the bytes went with the upload");

    // Deleting an unfinished upload's attachment ends the upload.
    let up = create(&alice, 1000, &[("filename", "dropped.txt")]).await;
    assert_eq!(
        patch(&alice, &up.path, 0, &data(400, 1)).await.status(),
        204
    );
    let r = alice
        .delete(&format!(
            "/api/v1/attachments/{}",
            up.attachment_id.unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    expect_error(
        patch(&alice, &up.path, 400, &data(600, 1)).await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_whole_file_digest_that_does_not_match_leaves_the_mismatch_state() {
    let server = Server::start();
    let alice = server.member("alice").await;
    let file = data(2048, 9);
    let wrong = sha256_hex(b"something else");
    let up = create(
        &alice,
        file.len(),
        &[("filename", "x.bin"), ("sha256", &wrong)],
    )
    .await;
    let id = up.attachment_id.unwrap();
    assert_eq!(
        patch(&alice, &up.path, 0, &file[..1024]).await.status(),
        204
    );
    // The last PATCH still answers 204.
    assert_eq!(
        patch(&alice, &up.path, 1024, &file[1024..]).await.status(),
        204
    );
    let meta = attachment(&alice, id).await;
    assert_eq!(
        meta["attachmentState"],
        "ChecksumVerificationOnServerSideMismatch"
    );
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/x.bin"))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "checksum-mismatch").await;
    // The right digest passes.
    let right = sha256_hex(&file);
    let up = create(
        &alice,
        file.len(),
        &[("filename", "y.bin"), ("sha256", &right)],
    )
    .await;
    assert_eq!(patch(&alice, &up.path, 0, &file).await.status(), 204);
    let meta = attachment(&alice, up.attachment_id.unwrap()).await;
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
}

async fn create_space(admin: &User, id: &str, quota: Option<i64>, members: &[&str]) {
    let mut body = json!({"id": id, "name": id});
    if let Some(q) = quota {
        body["quotaBytes"] = json!(q);
    }
    let r = admin
        .post("/api/v1/spaces")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for m in members {
        let r = admin
            .post(&format!("/api/v1/spaces/{id}/members"))
            .json(&json!({ "username": m }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn path_id(p: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p)
}

#[tokio::test]
async fn a_storage_target_follows_the_rules_of_workspace_storage() {
    let server = Server::start();
    let admin = server.admin().await;
    let alice = server.member("alice").await;
    let outsider = server.member("outsider").await;
    create_space(&admin, "docs", Some(10_000), &["alice"]).await;
    let file = data(6000, 5);
    let target = format!("space:docs:{}", path_id("reports/q1.bin"));
    let up = create(
        &alice,
        file.len(),
        &[("filename", "q1.bin"), ("target", &target)],
    )
    .await;
    assert_eq!(up.attachment_id, None, "a storage upload has no attachment");
    assert_eq!(
        patch(&alice, &up.path, 0, &file[..3000]).await.status(),
        204
    );
    // Not visible before it is complete.
    let meta_path = format!(
        "/api/v1/space/docs/storage/{}/meta",
        path_id("reports/q1.bin")
    );
    assert_eq!(alice.get(&meta_path).send().await.unwrap().status(), 404);
    assert_eq!(
        patch(&alice, &up.path, 3000, &file[3000..]).await.status(),
        204
    );
    let meta: Value = alice
        .get(&meta_path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["checksum"], sha256_hex(&file));
    assert_eq!(meta["size"], 6000);
    let r = alice
        .get(&format!(
            "/api/v1/space/docs/storage/{}",
            path_id("reports/q1.bin")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);

    // The quota at creation, with the file it replaces counted as room (6000 + 4000 + 1).
    let r = alice
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "4001")
        .header(
            "upload-metadata",
            metadata(&[
                ("filename", "b"),
                ("target", &format!("space:docs:{}", path_id("b.bin"))),
            ]),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    let replace = create(&alice, 9000, &[("filename", "q1.bin"), ("target", &target)]).await;
    assert_eq!(
        patch(&alice, &replace.path, 0, &data(9000, 6))
            .await
            .status(),
        204
    );
    // …and on every byte: room taken meanwhile by another file refuses the chunk.
    let small = format!("space:docs:{}", path_id("small.bin"));
    let up = create(
        &alice,
        900,
        &[("filename", "small.bin"), ("target", &small)],
    )
    .await;
    let r = alice
        .post(&format!(
            "/api/v1/space/docs/storage/{}/upload",
            path_id("filler.bin")
        ))
        .header("content-type", "application/octet-stream")
        .body(data(500, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expect_error(
        patch(&alice, &up.path, 0, &data(900, 2)).await,
        413,
        "limits-reached",
    )
    .await;
    assert_eq!(offset_of(&alice, &up.path).await, 0);

    // Conflicts at creation…
    let under = format!("space:docs:{}", path_id("reports/q1.bin/inner"));
    let r = alice
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            metadata(&[("filename", "i"), ("target", &under)]),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "under-a-file").await;
    let dir = format!("space:docs:{}", path_id("reports"));
    let r = alice
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            metadata(&[("filename", "r"), ("target", &dir)]),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "is-a-directory").await;
    // …and at completion: the last chunk is refused and can be sent again once the path is free.
    let late = format!("space:docs:{}", path_id("late/x.bin"));
    let up = create(&admin, 100, &[("filename", "x.bin"), ("target", &late)]).await;
    assert_eq!(patch(&admin, &up.path, 0, &data(50, 1)).await.status(), 204);
    let r = admin
        .post(&format!(
            "/api/v1/space/docs/storage/{}/upload",
            path_id("late")
        ))
        .header("content-type", "application/octet-stream")
        .body("a file where the directory would go")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expect_error(
        patch(&admin, &up.path, 50, &data(50, 2)).await,
        409,
        "under-a-file",
    )
    .await;
    assert_eq!(offset_of(&admin, &up.path).await, 50);
    let r = admin
        .delete(&format!("/api/v1/space/docs/storage/{}", path_id("late")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        patch(&admin, &up.path, 50, &data(50, 2)).await.status(),
        204
    );

    // A space the caller is no member of does not exist for it.
    let r = outsider
        .post(TUS)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            metadata(&[("filename", "o"), ("target", &target)]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn cookie_calls_follow_the_csrf_rules() {
    let server = Server::start();
    server.member("carol").await;
    let http = Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let create = |origin: &str| {
        http.post(server.url(TUS))
            .header("origin", origin)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "3")
            .header("upload-metadata", metadata(&[("filename", "c.txt")]))
    };
    let r = create("https://evil.example").send().await.unwrap();
    expect_error(r, 403, "csrf-rejected").await;
    let r = create(&server.base).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let location = header(r.headers(), "location");
    let patch = |origin: &str| {
        http.patch(&location)
            .header("origin", origin)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body("abc")
    };
    expect_error(
        patch("https://evil.example").send().await.unwrap(),
        403,
        "csrf-rejected",
    )
    .await;
    assert_eq!(patch(&server.base).send().await.unwrap().status(), 204);
}

#[tokio::test]
async fn an_upload_continues_after_a_restart() {
    let mut server = Server::start();
    let alice = server.member("alice").await;
    let file = data(200_000, 11);
    let up = create(&alice, file.len(), &[("filename", "long.bin")]).await;
    assert_eq!(
        patch(&alice, &up.path, 0, &file[..120_000]).await.status(),
        204
    );
    server.restart();
    let alice = User {
        base: server.base.clone(),
        ..alice
    };
    assert_eq!(offset_of(&alice, &up.path).await, 120_000);
    let id = up.attachment_id.unwrap();
    assert_eq!(
        attachment(&alice, id).await["attachmentState"],
        "UploadFromClientToServerInProgress"
    );
    assert_eq!(
        patch(&alice, &up.path, 120_000, &file[120_000..])
            .await
            .status(),
        204
    );
    assert_eq!(download(&alice, id, "long.bin").await, file);
}

#[tokio::test]
async fn an_idle_upload_expires_failed_and_its_bytes_are_freed() {
    let server = Server::start_with(&["--tus-expiry", "2s"]);
    let alice = server.member("alice").await;
    let up = create(&alice, 1000, &[("filename", "idle.bin")]).await;
    let id = up.attachment_id.unwrap();
    assert_eq!(
        patch(&alice, &up.path, 0, &data(600, 4)).await.status(),
        204
    );
    let partial_dir = server.blob_root().join("partial");
    assert_eq!(std::fs::read_dir(&partial_dir).unwrap().count(), 1);
    // The expiry job runs in the background once Upload-Expires has passed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = attachment(&alice, id).await["attachmentState"].clone();
        if state == "UploadFromClientToServerFailed" {
            break;
        }
        assert_eq!(state, "UploadFromClientToServerInProgress");
        assert!(Instant::now() < deadline, "the upload never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(std::fs::read_dir(&partial_dir).unwrap().count(), 0);
    let r = alice
        .head(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    expect_error(
        patch(&alice, &up.path, 600, &data(400, 4)).await,
        404,
        "not-found",
    )
    .await;
}

/// The standard clients: `HANGAR_TUS_PYTHON` and `HANGAR_TUS_NODE_MODULES` (scripts/test.sh sets
/// them), else what scripts/tus-clients.sh installs now. A test that needs them fails without them.
fn tus_clients() -> (String, String) {
    static CLIENTS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CLIENTS
        .get_or_init(|| {
            if let (Ok(py), Ok(js)) = (
                std::env::var("HANGAR_TUS_PYTHON"),
                std::env::var("HANGAR_TUS_NODE_MODULES"),
            ) {
                return (py, js);
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/tus-clients.sh");
            let out = std::process::Command::new("bash")
                .arg(script)
                .output()
                .expect("run scripts/tus-clients.sh");
            assert!(
                out.status.success(),
                "scripts/tus-clients.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let value = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                    .unwrap_or_else(|| panic!("{name} in {text:?}"))
                    .to_string()
            };
            (value("HANGAR_TUS_PYTHON"), value("HANGAR_TUS_NODE_MODULES"))
        })
        .clone()
}

/// Runs a standard client on a file of a few MiB (in 256 KiB chunks, interrupted half-way and
/// resumed) and checks that the attachment it made holds exactly those bytes.
async fn a_standard_client_uploads(program: &str, script: &str, node_path: Option<&str>) {
    let server = Server::start();
    let alice = server.member("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let file = data(3 * 1024 * 1024 + 12_345, 42);
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &file).unwrap();
    let script = format!("{}/tests/tus-clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new(program);
    command
        .arg(&script)
        .arg(server.url(TUS))
        .arg(&alice.token)
        .arg(&path)
        .arg("big.bin");
    if let Some(modules) = node_path {
        command.env("NODE_PATH", modules);
    }
    let out = command.output().await.expect("run the client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {script}: {stderr}");
    assert!(stderr.contains("resumed at"), "{stderr}");
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let upload_path = url
        .strip_prefix(&server.base)
        .expect("an upload URL of this server");
    let r = alice
        .head(upload_path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "upload-offset"), file.len().to_string());
    let id: i64 = header(r.headers(), "hangar-attachment-id").parse().unwrap();
    let meta = attachment(&alice, id).await;
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
    assert_eq!(meta["fileChecksum"], sha256_hex(&file));
    assert_eq!(download(&alice, id, "big.bin").await, file);
}

#[tokio::test]
async fn tuspy_uploads_interrupted_and_resumed() {
    let (python, _) = tus_clients();
    a_standard_client_uploads(&python, "upload.py", None).await;
}

#[tokio::test]
async fn tus_js_client_uploads_interrupted_and_resumed() {
    let (_, node_modules) = tus_clients();
    a_standard_client_uploads("node", "upload.js", Some(&node_modules)).await;
}

/// The same user on another node.
fn on(node: &Server, user: &User) -> User {
    User {
        base: node.base.clone(),
        ..user.clone()
    }
}

#[tokio::test]
async fn two_nodes_on_postgres_and_s3_share_every_upload() {
    let mut cluster = Cluster::new().await;
    let a = cluster.node_with(&["--tus-expiry", "3s"]);
    let b = cluster.node_with(&["--tus-expiry", "3s"]);
    let admin_a = a.admin().await;
    let admin_b = on(&b, &admin_a);
    let file = data(700_000, 21);

    // Created on A, continued on B and A in turn, with the protocol's refusals on either node.
    let up = create(&admin_a, file.len(), &[("filename", "shared.bin")]).await;
    let id = up.attachment_id.unwrap();
    let r = admin_b
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .header(
            "upload-checksum",
            format!("sha1 {}", sha1_b64(&file[..300_000])),
        )
        .body(file[..300_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(offset_of(&admin_a, &up.path).await, 300_000);
    expect_error(
        patch(&admin_a, &up.path, 0, &file[..10]).await,
        409,
        "offset-mismatch",
    )
    .await;
    let r = admin_a
        .patch(&up.path)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "300000")
        .header("content-type", "application/offset+octet-stream")
        .header(
            "upload-checksum",
            format!("sha256 {}", sha256_b64(b"not these bytes")),
        )
        .body(file[300_000..400_000].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 460, "checksum-mismatch").await;
    assert_eq!(offset_of(&admin_b, &up.path).await, 300_000);
    assert_eq!(
        attachment(&admin_b, id).await["attachmentState"],
        "UploadFromClientToServerInProgress"
    );
    assert_eq!(
        patch(&admin_a, &up.path, 300_000, &file[300_000..500_000])
            .await
            .status(),
        204
    );
    assert_eq!(
        patch(&admin_b, &up.path, 500_000, &file[500_000..])
            .await
            .status(),
        204
    );
    let meta = attachment(&admin_a, id).await;
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
    assert_eq!(meta["fileChecksum"], sha256_hex(&file));
    assert_eq!(download(&admin_a, id, "shared.bin").await, file);
    assert_eq!(download(&admin_b, id, "shared.bin").await, file);

    // A storage target: created on B, filled through A.
    let r = admin_b
        .post("/api/v1/spaces")
        .json(&json!({"id": "team", "name": "Team"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let target = format!("space:team:{}", path_id("big/one.bin"));
    let up = create(
        &admin_b,
        file.len(),
        &[("filename", "one.bin"), ("target", &target)],
    )
    .await;
    assert_eq!(
        patch(&admin_a, &up.path, 0, &file[..350_000])
            .await
            .status(),
        204
    );
    assert_eq!(
        patch(&admin_b, &up.path, 350_000, &file[350_000..])
            .await
            .status(),
        204
    );
    let r = admin_a
        .get(&format!(
            "/api/v1/space/team/storage/{}",
            path_id("big/one.bin")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);

    // Terminated on B after bytes arrived through A.
    let up = create(&admin_a, 1000, &[("filename", "gone.bin")]).await;
    assert_eq!(
        patch(&admin_a, &up.path, 0, &data(500, 1)).await.status(),
        204
    );
    let r = admin_b
        .delete(&up.path)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = admin_a
        .get(&format!(
            "/api/v1/attachments/{}",
            up.attachment_id.unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Idle past its expiry: whichever node runs the job, the attachment fails.
    let up = create(&admin_b, 1000, &[("filename", "idle.bin")]).await;
    let idle = up.attachment_id.unwrap();
    assert_eq!(
        patch(&admin_a, &up.path, 0, &data(500, 2)).await.status(),
        204
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while attachment(&admin_a, idle).await["attachmentState"] != "UploadFromClientToServerFailed" {
        assert!(Instant::now() < deadline, "the upload never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // With s3:// no byte of any upload was kept in a node's data directory.
    for node in [&a, &b] {
        assert!(!node.data_dir.join("blobs").exists());
    }
}
