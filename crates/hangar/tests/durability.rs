//! Durability: acknowledged uploads survive SIGKILL; interrupted or refused uploads leave nothing
//! behind (no attachment, no blob, no temporary file).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Waits (bounded) until a condition on the server's files holds; the result is then asserted.
fn settle(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[tokio::test]
async fn acknowledged_uploads_survive_sigkill_byte_for_byte() {
    let mut server = Server::start();
    let admin = server.admin().await;
    let channel = admin.channel("durable", &[]).await;
    let message = admin.message(channel, "files").await;
    let raw = pseudo_random_bytes(3 << 20, 7);
    let raw_id = admin
        .upload("raw.bin", "application/octet-stream", &raw)
        .await;
    let part = pseudo_random_bytes(200_000, 11);
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(part.clone()).file_name("part.bin"),
    );
    let r = admin
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let part_id = body["attachments"][0]["attachmentId"].as_i64().unwrap();

    server.restart(); // SIGKILL, then the same data directory again
    let admin = server.admin().await;
    for (id, name, bytes) in [(raw_id, "raw.bin", &raw), (part_id, "part.bin", &part)] {
        let r = admin
            .get(&format!("/api/v1/attachments/{id}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name} after restart");
        let got = r.bytes().await.unwrap();
        assert_eq!(got.len(), bytes.len());
        assert!(
            got[..] == bytes[..],
            "{name} is byte-identical after SIGKILL"
        );
        let meta: serde_json::Value = admin
            .get(&format!("/api/v1/attachments/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["fileChecksum"], sha256_hex(bytes));
    }
    assert_eq!(server.temporaries(), 0);
}

/// Sends a request by hand over TCP, so that the body can stop halfway.
fn raw_request(addr: &str, head: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    s
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let server = Server::start();
    let admin = server.admin().await;
    let chunk = vec![b'x'; 1 << 20];
    let head = format!(
        "POST /uploads?name=cut.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        admin.token,
        10 << 20
    );
    let stream = raw_request(&server.addr, &head, &chunk);
    drop(stream); // 1 MiB of the announced 10 MiB, then gone
    assert!(
        settle(|| server.temporaries() == 0),
        "the temporary file is removed"
    );
    assert!(
        server.blob_files().is_empty(),
        "no blob is stored: {:?}",
        server.blob_files()
    );
    // The server is still fine and stores the next upload.
    let id = admin
        .upload("ok.bin", "application/octet-stream", b"fine")
        .await;
    let r = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.blob_files().len(), 1);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_while_streaming() {
    let server = Server::start_with(&["--max-file-size", "100000"]);
    let admin = server.admin().await;
    let head = format!(
        "POST /uploads?name=big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr, admin.token
    );
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(format!("{:x}\r\n", 40_000).as_bytes());
        body.extend_from_slice(&[b'y'; 40_000]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut stream = raw_request(&server.addr, &head, &body);
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "answer: {answer}");
    assert!(
        answer.contains("\"error\":\"limits-reached\""),
        "answer: {answer}"
    );
    assert!(settle(|| server.temporaries() == 0));
    assert!(server.blob_files().is_empty());
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let server = Server::start_with(&["--max-file-size", "1000"]);
    let admin = server.admin().await;
    let r = admin
        .post("/uploads")
        .query(&[("name", "big.bin")])
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 1001])
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 413, "limits-reached").await;
    assert_eq!(body["limitBytes"], 1000);
    assert!(server.blob_files().is_empty());
    // Exactly at the limit is fine.
    admin
        .upload("edge.bin", "application/octet-stream", &[1u8; 1000])
        .await;
    assert_eq!(server.blob_files().len(), 1);
}

/// Group commit: uploads made at the same time share their commits. Every upload acknowledged
/// before a SIGKILL, which strikes while others are in flight, is there afterwards with its bytes.
#[tokio::test]
async fn concurrent_acknowledged_uploads_survive_sigkill() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    let mut server = Server::start();
    let admin = Arc::new(server.admin().await);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..16u64 {
        let (admin, acknowledged, killed) = (admin.clone(), acknowledged.clone(), killed.clone());
        clients.push(tokio::spawn(async move {
            for n in 0u64.. {
                // Mostly small files, now and then one of several write batches.
                let len = if n % 8 == 7 { 3 << 19 } else { 4096 };
                let bytes = pseudo_random_bytes(len, client << 32 | n);
                let sent = admin
                    .post("/uploads")
                    .query(&[("name", "c.bin")])
                    .header("content-type", "application/octet-stream")
                    .body(bytes.clone())
                    .send()
                    .await;
                let Ok(answer) = sent else { break };
                if killed.load(SeqCst) {
                    break;
                }
                assert_eq!(answer.status(), 200, "upload {client}/{n}");
                let Ok(id) = answer.text().await else { break };
                let id: i64 = id.parse().expect("the answer is the attachment id");
                acknowledged.lock().unwrap().push((id, bytes));
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL with uploads in flight; answers that arrive from here on are not counted (a client
    // may have read an answer the instant before: then it is in the list already).
    let at_kill = acknowledged.lock().unwrap().len();
    server.kill9();
    killed.store(true, SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(at_kill >= 300, "only {at_kill} uploads were acknowledged");

    server.restart();
    let admin = server.admin().await;
    for (id, bytes) in &acknowledged {
        let r = admin
            .get(&format!("/api/v1/attachments/{id}/c.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "attachment {id} after SIGKILL");
        let got = r.bytes().await.unwrap();
        assert!(got[..] == bytes[..], "attachment {id} is byte-identical");
    }
}

/// A small upload is recorded only once its pack is in place: when the pack cannot be put there
/// (here its directory is gone when the server starts its first pack), the upload fails with 500
/// and nothing of it is recorded or left behind; once the directory is back, the same bytes are
/// stored, and the next small bodies go into the same pack.
#[tokio::test]
async fn a_small_upload_whose_pack_is_lost_fails_and_records_nothing() {
    use sqlx::Connection;
    let server = Server::start();
    let admin = server.admin().await;
    let packs = server.blob_root().join("packs");
    let away = server.blob_root().join("packs-away");
    std::fs::rename(&packs, &away).unwrap();
    let body = b"lost on its way to the disk ".repeat(8);
    let r = admin
        .post("/uploads")
        .query(&[("name", "lost.txt")])
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 500, "internal").await;
    assert_eq!(server.temporaries(), 0, "the pack's temporary is removed");
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data_dir.join("hangar.db").display()
    );
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let sha = sha256_hex(&body);
    let recorded: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM attachments WHERE sha256 = ?1), \
         (SELECT COUNT(*) FROM blobs WHERE sha256 = ?1)",
    )
    .bind(&sha)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(recorded, (0, 0), "nothing of the lost upload is recorded");

    std::fs::rename(&away, &packs).unwrap();
    let id = admin.upload("lost.txt", "text/plain", &body).await;
    let r = admin
        .get(&format!("/api/v1/attachments/{id}/lost.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    admin
        .upload("second.txt", "text/plain", b"a second small body, packed")
        .await;
    assert_eq!(
        std::fs::read_dir(&packs).unwrap().count(),
        1,
        "small bodies are packed, one batch after another into one pack"
    );
}
