//! Data-URL uploads to workspace storage under concurrency: large JSON bodies take turns (a few per
//! node at a time, issue 11 item 5), and every one of them still lands, byte-exact.

mod common;
use common::*;

use base64::Engine;
use serde_json::{json, Value};

#[tokio::test]
async fn many_large_data_url_uploads_at_once_all_land_byte_exact() {
    let server = Server::start();
    let admin = server.admin().await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "d1", "name": "D"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b64 = base64::engine::general_purpose::STANDARD;
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // 12 bodies of about 2 MiB: more than the node decodes at once, each past the small-body size.
    let files: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            (
                url_safe.encode(format!("big/{i}.bin")),
                pseudo_random_bytes(1_500_000 + i as usize * 1000, i),
            )
        })
        .collect();
    let uploads = files.iter().map(|(path_id, bytes)| {
        let admin = admin.clone();
        let body =
            json!({"file": format!("data:application/octet-stream;base64,{}", b64.encode(bytes))});
        let path_id = path_id.clone();
        async move {
            let r = admin
                .post(&format!("/api/v1/space/d1/storage/{path_id}/upload"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let answer: Value = r.json().await.unwrap();
            (status, answer)
        }
    });
    let answers = futures_util::future::join_all(uploads).await;
    for ((path_id, bytes), (status, answer)) in files.iter().zip(answers) {
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["size"], bytes.len(), "{answer}");
        assert_eq!(answer["checksum"], sha256_hex(bytes), "{answer}");
        let r = admin
            .get(&format!("/api/v1/space/d1/storage/{path_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    // Small JSON bodies never wait for a turn, and a bad one still answers 400.
    let r = admin
        .post(&format!(
            "/api/v1/space/d1/storage/{}/upload",
            url_safe.encode("small.txt")
        ))
        .json(&json!({"file": "data:text/plain,hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post(&format!(
            "/api/v1/space/d1/storage/{}/upload",
            url_safe.encode("bad.bin")
        ))
        .json(&json!({"file": format!("data:application/octet-stream;base64,{}!", "A".repeat(1_500_000))}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-data-url").await;
}
