//! Two `hangar serve` processes on one real PostgreSQL database and one real S3 bucket (s3s-fs), with
//! the same secret key and nothing else in common (SPEC §13): what one node stores, the other serves;
//! a token or session made on one works on the other; no bytes are kept in a data directory.

mod common;
use common::*;

use base64::Engine;
use reqwest::Client;
use serde_json::json;

#[tokio::test]
async fn two_nodes_share_postgres_and_s3() {
    let mut cluster = Cluster::new().await;
    let a = cluster.node();
    let b = cluster.node();
    let admin_a = a.admin().await;
    let admin_b = User {
        base: b.base.clone(),
        ..admin_a.clone()
    };

    // A token made on node A works on node B.
    let r = admin_b.get("/api/v1/auth/me").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["username"],
        "admin"
    );

    // Bytes uploaded through node A are served by node B, whole and by range.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = admin_a
        .upload("shared.bin", "application/octet-stream", &bytes)
        .await;
    let path = format!("/api/v1/attachments/{id}/shared.bin");
    let r = admin_b.get(&path).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&bytes));
    let r = admin_b
        .get(&path)
        .header("range", "bytes=1000000-1000099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[1_000_000..1_000_100]);

    // A workspace file written through B is read through A.
    let pid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("notes/a.txt");
    let r = admin_b
        .post("/api/v1/spaces")
        .json(&json!({"id": "team", "name": "Team"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = admin_b
        .post(&format!("/api/v1/space/team/storage/{pid}/upload"))
        .header("content-type", "text/plain")
        .body("written through node B")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = admin_a
        .get(&format!("/api/v1/space/team/storage/{pid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "written through node B");

    // A browser session opened on A is accepted by B (no sticky sessions).
    let http = Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(a.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    let r = Client::new()
        .get(b.url("/api/v1/auth/me"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The bytes live in the bucket: a node's data directory holds its lock and nothing else (no
    // SQLite file, no blob, no key: the key is the installation's, given by --secret-key-file).
    for node in [&a, &b] {
        let files = blob_files_in(&node.data_dir);
        let names: Vec<_> = files.iter().filter_map(|f| f.file_name()).collect();
        assert_eq!(names, ["hangar.lock"], "{files:?}");
    }
}
