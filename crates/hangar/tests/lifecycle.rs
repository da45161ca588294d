//! Blob lifecycle and start-up safety (SPEC §10): a mistyped `--database-url` is refused instead of
//! "cleaning" every stored file; unreferenced bytes are kept for the grace period and collected
//! after it; an upload of identical bytes racing their collection never loses them.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Runs `hangar serve` with `args` on `data_dir`, expecting it to refuse to start: its exit status
/// and everything it printed.
fn refused_start(data_dir: &std::path::Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    // A server that wrongly starts would never exit: stop it after 30 s so the test fails clearly.
    let (exited, wait) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = exited.send(());
    guard.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[tokio::test]
async fn a_mistyped_database_url_is_refused_and_deletes_nothing() {
    let mut server = Server::start();
    let admin = server.admin().await;
    let kept = b"bytes that belong to the real database".to_vec();
    let id = admin
        .upload("kept.bin", "application/octet-stream", &kept)
        .await;
    let before = server.blob_files();
    assert_eq!(before.len(), 1);
    assert!(server.terminate().success());

    // A database that does not exist, beside a blob store full of files.
    let typo = server.data_dir.join("hangar-typo.db");
    let url = format!("sqlite://{}", typo.display());
    let (status, output) = refused_start(&server.data_dir, &["--database-url", &url]);
    assert!(!status.success(), "the start was refused: {output}");
    assert!(output.contains("--database-url"), "{output}");
    assert!(!typo.exists(), "a refused start creates no database");
    assert_eq!(
        server.blob_files_now(),
        before,
        "no stored file was deleted"
    );

    // An existing but empty database (made by hand, or by an earlier mistake) is refused as well.
    std::fs::write(&typo, b"").unwrap();
    let (status, output) = refused_start(&server.data_dir, &["--database-url", &url]);
    assert!(!status.success(), "the start was refused: {output}");
    assert!(output.contains("--storage-url"), "{output}");
    assert_eq!(
        server.blob_files_now(),
        before,
        "no stored file was deleted"
    );

    // With the right database everything is still there.
    server.restart();
    let admin = server.admin().await;
    let r = admin
        .get(&format!("/api/v1/attachments/{id}/kept.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), kept);
}

fn set_age(path: &std::path::Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn unreferenced_bytes_wait_for_the_grace_period_and_unknown_ones_must_be_old() {
    let mut server = Server::start_with(&["--blob-grace", "1h"]);
    let admin = server.admin().await;
    let released = b"bytes whose last reference is deleted".to_vec();
    let id = admin
        .upload("released.bin", "application/octet-stream", &released)
        .await;
    let r = admin
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Deleted from the metadata at once, kept on disk for the grace period.
    let r = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(server.blob_files().len(), 1);

    // Bytes the database has no record of (an upload that crashed before it pinned them under an
    // older version, a restored backup): only those older than the grace period are swept.
    let write_blob = |bytes: &[u8]| {
        let sha = sha256_hex(bytes);
        let shard = server.blob_root().join(&sha[0..2]).join(&sha[2..4]);
        std::fs::create_dir_all(&shard).unwrap();
        std::fs::write(shard.join(&sha), bytes).unwrap();
        shard.join(&sha)
    };
    let young = write_blob(b"an unknown blob written a minute ago");
    let old = write_blob(b"an unknown blob written two hours ago");
    set_age(&young, Duration::from_secs(60));
    set_age(&old, Duration::from_secs(7200));
    std::fs::write(
        server.blob_root().join("tmp/crashed.part"),
        b"half an upload",
    )
    .unwrap();

    server.restart();
    let files = server.blob_files();
    assert!(!old.exists(), "the old unknown blob is swept: {files:?}");
    assert!(young.exists(), "the young unknown blob is kept: {files:?}");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(sha256_hex(&released))));
    assert_eq!(server.temporaries(), 0, "an abandoned temporary is swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_bytes_while_they_are_collected_never_loses_them() {
    // In-process, so that the collector runs exactly when the test says: racing the next upload.
    // Grace zero: each delete makes the bytes collectable at once.
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let bytes = b"the same bytes, deleted and uploaded again".to_vec();
    for round in 0..40 {
        let first = admin
            .upload("same.bin", "application/octet-stream", &bytes)
            .await;
        let r = admin
            .delete(&format!("/api/v1/attachments/{first}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (_, second) = tokio::join!(
            app.run_jobs(),
            admin.upload("same.bin", "application/octet-stream", &bytes)
        );
        app.run_jobs().await;
        let r = admin
            .get(&format!("/api/v1/attachments/{second}/same.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes, "round {round}");
        let r = admin
            .delete(&format!("/api/v1/attachments/{second}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let left = app.blob_files().await;
    assert!(left.is_empty(), "{left:?}");
}
