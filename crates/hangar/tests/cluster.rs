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

/// `hangar admin` on PostgreSQL and S3 (SPEC §9.8: the same commands on every backend), beside a
/// running node: members created, disabled and given a new password; check and scrub read the
/// bucket; gc and deliveries work; backup says to use PostgreSQL's and the bucket's own tools.
#[tokio::test]
async fn admin_commands_work_on_postgres_and_s3() {
    let mut cluster = Cluster::new().await;
    let node = cluster.node();
    let admin = node.admin().await;
    let bytes = b"checked in the bucket".to_vec();
    admin.upload("c.txt", "text/plain", &bytes).await;
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let login = |password: &'static str| {
        let url = node.url("/api/v1/auth/login");
        async move {
            Client::new()
                .post(url)
                .json(&json!({"username": "bob", "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let out = cluster.admin(&["user", "create", "bob"], "first-password\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created member bob"));
    assert_eq!(login("first-password").await, 200);

    let out = cluster.admin(&["user", "reset-password", "bob"], "second-password\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(login("first-password").await, 401);
    assert_eq!(login("second-password").await, 200);

    let out = cluster.admin(&["check", "--scrub"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("checked and re-hashed 1 referenced blobs: 0 problems"),
        "{}",
        text(&out)
    );
    let out = cluster.admin(&["gc", "--dry-run"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = cluster.admin(&["deliveries", "list", "--status", "all"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let backup = tempfile::tempdir().unwrap();
    let out = cluster.admin(&["backup", backup.path().join("b").to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
    assert!(!backup.path().join("b").exists());

    let out = cluster.admin(&["user", "disable", "bob"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(login("second-password").await, 401);

    // An empty database is no installation: nothing is made in it.
    let empty = Cluster::new().await;
    let out = empty.admin(&["check"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("--database-url: the database holds no Hangar installation"),
        "{}",
        text(&out)
    );
}

/// Two-stage uploads on S3 (SPEC §13): the upload URL is the object store's, presigned with the
/// headers it was signed with; the bytes never pass through Hangar; a node's job finds the object
/// within seconds, hashes it, moves it to its content-addressed key and only then shows the file,
/// on every node. An object of the wrong size is refused: its reservation is freed and the path keeps
/// what it had. A PUT with another type than declared is refused by the object store itself (the
/// type is part of the signature).
#[tokio::test]
async fn two_stage_uploads_go_straight_to_the_object_store() {
    let mut cluster = Cluster::new().await;
    let a = cluster.node();
    let b = cluster.node();
    let admin = a.admin().await;
    let on_b = User {
        base: b.base.clone(),
        ..admin.clone()
    };
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "team", "name": "Team", "quotaBytes": 10_000}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let pid = |p: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p);
    let declare = |path: &str, size: usize| {
        let admin = admin.clone();
        let url = format!("/api/v1/space/team/storage/{}/upload", pid(path));
        async move {
            let r = admin
                .post(&url)
                .json(&json!({"file": {"type": "text/plain", "size": size}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let send = |request: &serde_json::Value, body: Vec<u8>, content_type: Option<&str>| {
        let mut put = Client::new().put(request["url"].as_str().unwrap());
        for (name, value) in request["headers"].as_object().unwrap() {
            let value = match (name.to_ascii_lowercase().as_str(), content_type) {
                ("content-type", Some(other)) => other.to_string(),
                _ => value.as_str().unwrap().to_string(),
            };
            if !name.eq_ignore_ascii_case("content-length") {
                put = put.header(name.as_str(), value);
            }
        }
        put.body(body).send()
    };
    let used = || {
        let on_b = on_b.clone();
        async move {
            let r = on_b.get("/api/v1/limits").send().await.unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            let team = v["spaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == "team")
                .unwrap()
                .clone();
            (
                team["usedBytes"].as_i64().unwrap(),
                team["availableBytes"].as_i64().unwrap(),
            )
        }
    };
    // Polls the file through node B until it shows (or 15 s pass).
    let shown = |path: &str| {
        let on_b = on_b.clone();
        let url = format!("/api/v1/space/team/storage/{}", pid(path));
        async move {
            for _ in 0..150 {
                let r = on_b.get(&url).send().await.unwrap();
                if r.status() == 200 {
                    return Some(r.bytes().await.unwrap().to_vec());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            None
        }
    };

    let first = declare("direct.txt", 11).await;
    let request = &first["uploadRequest"];
    let url = request["url"].as_str().unwrap();
    assert!(
        !url.starts_with(&a.base) && !url.starts_with(&b.base),
        "{url}"
    );
    assert!(url.contains("/uploads/"), "{url}");
    assert_eq!(
        request["headers"]["Content-Type"], "text/plain",
        "{request}"
    );
    assert_eq!(used().await.1, 10_000 - 11, "the declared size is reserved");
    // Another type than the one signed: the object store refuses it.
    let r = send(request, b"hello world".to_vec(), Some("image/png"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    let r = send(request, b"hello world".to_vec(), None).await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert_eq!(
        shown("direct.txt").await.as_deref(),
        Some(&b"hello world"[..])
    );
    assert_eq!(used().await, (11, 10_000 - 11));
    let r = admin
        .get(&format!(
            "/api/v1/space/team/storage/{}/meta",
            pid("direct.txt")
        ))
        .send()
        .await
        .unwrap();
    let meta: serde_json::Value = r.json().await.unwrap();
    assert_eq!(meta["size"], 11, "{meta}");
    assert_eq!(meta["type"], "text/plain", "{meta}");
    assert_eq!(
        meta["checksum"].as_str().unwrap_or_default(),
        sha256_hex(b"hello world"),
        "{meta}"
    );

    // An object of another size than declared: refused, the reservation freed, the old file kept.
    let second = declare("direct.txt", 5).await;
    let r = send(
        &second["uploadRequest"],
        b"much longer than five".to_vec(),
        None,
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let mut freed = false;
    for _ in 0..150 {
        if used().await == (11, 10_000 - 11) {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        freed,
        "the refused upload's reservation is freed: {:?}",
        used().await
    );
    assert_eq!(
        shown("direct.txt").await.as_deref(),
        Some(&b"hello world"[..])
    );
}
