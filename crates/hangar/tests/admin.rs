//! `hangar admin` against the real binary (SPEC §9.8): users, check, gc, backup and failed
//! deliveries, run beside a running server on the same data directory, with their exit codes.

mod common;
use common::*;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `hangar admin ARGS --data-dir DIR` with `input` on standard input (not a terminal).
fn admin_cmd(data_dir: &Path, args: &[&str], input: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
    cmd.arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn hangar(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn login_status(base: &str, username: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn me_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn every_command_has_help_and_bad_usage_exits_2() {
    let r = hangar(&["admin", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for word in ["user", "check", "gc", "backup", "deliveries", "--data-dir"] {
        assert!(r.stdout.contains(word), "{word} in {}", r.stdout);
    }
    for args in [
        &["admin", "user", "create", "--help"][..],
        &["admin", "user", "reset-password", "--help"],
        &["admin", "user", "disable", "--help"],
        &["admin", "check", "--help"],
        &["admin", "gc", "--help"],
        &["admin", "backup", "--help"],
        &["admin", "deliveries", "list", "--help"],
        &["admin", "deliveries", "retry", "--help"],
    ] {
        let r = hangar(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stdout.contains("Usage:"), "{args:?}: {}", r.stdout);
    }
    assert_eq!(hangar(&["admin", "frobnicate"]).code, 2);
    assert_eq!(hangar(&["admin", "backup"]).code, 2, "DIR is required");
    assert_eq!(hangar(&["admin", "deliveries", "retry"]).code, 2);
}

#[test]
fn commands_refuse_a_data_directory_without_a_database_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nothing-here");
    let r = admin_cmd(&data_dir, &["check"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--database-url"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!data_dir.exists());
}

#[tokio::test]
async fn users_are_created_reset_and_disabled_beside_a_running_server() {
    let server = Server::start();
    let dir = &server.data_dir;

    let r = admin_cmd(dir, &["user", "create", "bob"], "bob-password-1\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("created member bob"), "{}", r.stdout);
    assert_eq!(
        login_status(&server.base, "bob", "bob-password-1").await,
        200
    );
    let r = admin_cmd(dir, &["user", "create", "bob"], "another-password\n");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("taken"), "{}", r.stderr);
    let r = admin_cmd(dir, &["user", "create", "bad name!"], "a-fine-password\n");
    assert_eq!(r.code, 1, "{}", r.stdout);
    let r = admin_cmd(dir, &["user", "create", "shorty"], "short\n");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("8 to 1024"), "{}", r.stderr);
    assert_eq!(login_status(&server.base, "shorty", "short").await, 401);

    // --admin makes an administrator: carol may create members.
    let r = admin_cmd(
        dir,
        &["user", "create", "carol", "--admin"],
        "carol-password\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let carol = login_token(&server.base, "carol", "carol-password").await;
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/members"))
        .bearer_auth(&carol)
        .json(&json!({"username": "dan", "password": "dan-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // A reset password ends the member's tokens.
    let token = login_token(&server.base, "bob", "bob-password-1").await;
    assert_eq!(me_status(&server.base, &token).await, 200);
    let r = admin_cmd(dir, &["user", "reset-password", "bob"], "bob-password-2\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(me_status(&server.base, &token).await, 401);
    assert_eq!(
        login_status(&server.base, "bob", "bob-password-1").await,
        401
    );
    let token = login_token(&server.base, "bob", "bob-password-2").await;

    // Disabling ends every token, and the login fails like a wrong password.
    let r = admin_cmd(dir, &["user", "disable", "bob"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(me_status(&server.base, &token).await, 401);
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "bob", "password": "bob-password-2"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "bad-credentials").await;

    for args in [
        &["user", "disable", "nobody"][..],
        &["user", "reset-password", "nobody"],
    ] {
        let r = admin_cmd(dir, args, "some-password\n");
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stderr.contains("nobody"), "{}", r.stderr);
    }
}

/// Whether the local blob store of `data_dir` holds a blob (as a file or packed).
fn stored(data_dir: &Path, sha: &str) -> bool {
    let blobs = blob_files_in(&data_dir.join("blobs"));
    blobs
        .iter()
        .any(|p| p.file_name().and_then(|n| n.to_str()) == Some(sha))
}

#[tokio::test]
async fn check_reports_missing_and_damaged_blobs_with_what_refers_to_them() {
    let server = Server::start();
    let admin = server.admin().await;
    let lost = admin
        .upload("lost.txt", "text/plain", b"bytes to lose")
        .await;
    admin.upload("rot.txt", "text/plain", b"bytes to rot").await;
    admin.upload("fine.txt", "text/plain", b"fine bytes").await;
    let dir = &server.data_dir;
    let r = admin_cmd(dir, &["check", "--scrub"], "");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // Packed, the three share a pack: a hole punched in its slot loses one body (as its
    // deletion would). A file (where the file system makes no holes) is removed.
    let lost_sha = sha256_hex(b"bytes to lose");
    let (place, slot) = blob_location(dir, &lost_sha).await;
    if place.parent().and_then(|p| p.file_name()) == Some("packs".as_ref()) {
        let file = std::fs::OpenOptions::new().write(true).open(place).unwrap();
        let punch = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&file, punch, slot, 4096).unwrap();
    } else {
        std::fs::remove_file(place).unwrap();
    }
    let rot_sha = sha256_hex(b"bytes to rot");
    let (rotten, at) = blob_location(dir, &rot_sha).await;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(rotten)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"bytes rotted", at).unwrap();

    let r = admin_cmd(dir, &["check"], "");
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(lines[0].contains(&lost_sha), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("attachment {lost}")),
        "{}",
        lines[0]
    );
    let r = admin_cmd(dir, &["check", "--scrub"], "");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains(&rot_sha) && l.contains("damaged") && l.contains("rot.txt")),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn gc_deletes_unreferenced_bytes_and_a_dry_run_deletes_nothing() {
    // The server keeps unreferenced bytes for an hour; the command is told otherwise.
    let server = Server::start_with(&["--blob-grace", "1h"]);
    let admin = server.admin().await;
    let id = admin
        .upload("old.bin", "application/octet-stream", b"no longer needed")
        .await;
    admin
        .upload("kept.bin", "application/octet-stream", b"still needed")
        .await;
    let r = admin
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let dir = &server.data_dir;
    let (old, kept) = (sha256_hex(b"no longer needed"), sha256_hex(b"still needed"));

    let r = admin_cmd(dir, &["gc"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stored(dir, &old), "still in its grace period");

    let r = admin_cmd(dir, &["gc", "--dry-run", "--blob-grace", "0s"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("would delete {}", sha256_hex(b"no longer needed"))),
        "{}",
        r.stdout
    );
    assert!(stored(dir, &old), "a dry run deletes nothing");

    let r = admin_cmd(dir, &["gc", "--blob-grace", "0s"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("deleted"), "{}", r.stdout);
    assert!(!stored(dir, &old));
    assert!(stored(dir, &kept));
    let r = admin_cmd(dir, &["check", "--scrub"], "");
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[tokio::test]
async fn a_backup_taken_while_the_server_runs_starts_as_a_server_of_its_own() {
    let server = Server::start();
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let bytes = format!("file number {i}").into_bytes();
        let id = admin
            .upload(&format!("f{i}.txt"), "text/plain", &bytes)
            .await;
        ids.push((id, format!("f{i}.txt"), bytes));
    }
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "docs", "name": "Docs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let r = admin_cmd(&server.data_dir, &["backup", backup.to_str().unwrap()], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("5 blobs"), "{}", r.stdout);
    assert_eq!(
        std::fs::read(backup.join("secret.key")).unwrap(),
        std::fs::read(server.data_dir.join("secret.key")).unwrap()
    );
    // A directory that holds something is refused.
    let r = admin_cmd(&server.data_dir, &["backup", backup.to_str().unwrap()], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);

    let r = admin_cmd(&backup, &["check", "--scrub"], "");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let copy = Server::start_in(backup.clone(), &[]);
    let copy_admin = copy.admin().await;
    for (id, name, bytes) in &ids {
        let r = copy_admin
            .get(&format!("/api/v1/attachments/{id}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().to_vec(), *bytes);
    }
    let r = copy_admin.get("/api/v1/spaces/docs").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A webhook receiver that answers 503 while `down` is set.
async fn receiver() -> (Arc<Mutex<Vec<HeaderMap>>>, Arc<Mutex<bool>>, String) {
    let hits: Arc<Mutex<Vec<HeaderMap>>> = Default::default();
    let down = Arc::new(Mutex::new(true));
    let (h, d) = (hits.clone(), down.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let (h, d) = (h.clone(), d.clone());
            async move {
                h.lock().unwrap().push(headers);
                if *d.lock().unwrap() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hits, down, url)
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn failed_deliveries_are_listed_and_sent_again() {
    let server = Server::start_with(&["--fetch-allow", "127.0.0.1"]);
    let admin = server.admin().await;
    let (hits, down, url) = receiver().await;
    let r = admin
        .post("/api/http/applications")
        .json(&json!({"name": "Hooks"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let app: Value = r.json().await.unwrap();
    let app_id = app["id"].as_str().unwrap();
    let r = admin
        .patch(&format!(
            "/api/http/applications/id:{app_id}/authorizations/authorized-rights"
        ))
        .json(&json!({"contextIdentifier": "global",
                      "rights": [{"rightCode": "Channel.ViewMessages", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .post(&format!("/api/http/applications/id:{app_id}/webhooks"))
        .json(
            &json!({"name": "chat", "endpoint": {"url": url}, "doRetries": false,
                      "subscriptions": [{"name": "m", "eventTypes": ["ChatMessage.Created"]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let channel = admin.channel("c", &[]).await;
    admin.message(channel, "hello").await;

    // One attempt, refused, no retries: the delivery is failed.
    let dir = server.data_dir.clone();
    let mut listed = String::new();
    wait_until(|| {
        listed = admin_cmd(&dir, &["deliveries", "list"], "").stdout;
        !listed.is_empty()
    })
    .await;
    let line = listed.lines().next().expect("a failed delivery is listed");
    assert!(line.contains("status=failed"), "{line}");
    assert!(line.contains("last_status=503"), "{line}");
    assert!(line.contains("kind=event"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_string();
    assert_eq!(hits.lock().unwrap().len(), 1);

    *down.lock().unwrap() = false;
    let r = admin_cmd(&dir, &["deliveries", "retry", &id], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_until(|| hits.lock().unwrap().len() >= 2).await;
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "sent again once");
    assert_eq!(hits[0]["webhook-id"], hits[1]["webhook-id"]);
    let mut delivered = String::new();
    wait_until(|| {
        delivered = admin_cmd(&dir, &["deliveries", "list", "--status", "delivered"], "").stdout;
        delivered.contains(&id)
    })
    .await;
    assert!(delivered.contains(&id), "{delivered}");
    assert!(admin_cmd(&dir, &["deliveries", "list"], "")
        .stdout
        .is_empty());

    // Only a failed delivery can be retried.
    let r = admin_cmd(&dir, &["deliveries", "retry", &id], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&id), "{}", r.stderr);
    let r = admin_cmd(&dir, &["deliveries", "retry", "no-such-delivery"], "");
    assert_eq!(r.code, 1);
}
