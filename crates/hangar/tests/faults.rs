//! Fault tests (SPEC §10 and §11): SIGKILL at random moments while uploads stream in, a full disk,
//! hundreds of slow clients, and a corpus of malformed requests. Each test is bounded in time and
//! asserts outcomes, never timings.

mod common;
use common::*;

use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------------

/// A run's seed: `FAULTS_SEED` when set (to replay a failure), otherwise the clock.
fn run_seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Waits (bounded) until a condition holds; the result is then asserted.
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

/// A client whose every request gives up after `secs`: a hang becomes a test failure, not a stuck run.
fn client_with_timeout(secs: u64) -> Client {
    Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}

/// The same caller, with a client that times out.
fn bounded(user: &User, secs: u64) -> User {
    User {
        http: client_with_timeout(secs),
        ..user.clone()
    }
}

/// Sends a request; answers status and body text. A request that gets no answer in time fails the test.
async fn send(label: &str, req: RequestBuilder) -> (u16, String) {
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{label}: no answer (hang or broken connection): {e}"));
    let status = r.status().as_u16();
    let text = r
        .text()
        .await
        .unwrap_or_else(|e| panic!("{label}: the answer's body broke off: {e}"));
    (status, text)
}

/// Downloads an attachment through its named URL: status and bytes.
async fn download(user: &User, id: i64, name: &str) -> (u16, Vec<u8>) {
    let r = user
        .get(&format!("/api/v1/attachments/{id}/{name}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("download {id}/{name}: {e}"));
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn metadata(user: &User, id: i64) -> (u16, Value) {
    let (status, text) = send(
        &format!("metadata of {id}"),
        user.get(&format!("/api/v1/attachments/{id}")),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The soft limit on open files of this process (the server inherits it).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// What the server did with a request written by hand.
#[derive(Debug)]
enum RawAnswer {
    /// A status line arrived (and the first bytes after it).
    Status(u16, String),
    /// The connection ended without a status line (how it ended).
    Closed(String),
}

/// Writes `request` on a fresh connection and reads the answer's head. A server that neither answers
/// nor closes within 20 s fails the test (a hang).
fn raw_exchange(addr: &str, request: &[u8]) -> RawAnswer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before it has read everything (a too-large head): a failed
    // write is then expected, and the answer may still be readable.
    let write_error = s.write_all(request).err();
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let ended = loop {
        match s.read(&mut chunk) {
            Ok(0) => break "closed (EOF)".to_string(),
            Ok(n) => {
                got.extend_from_slice(&chunk[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break String::new();
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "no answer within 20 s (a hang); request head: {:?}",
                    String::from_utf8_lossy(&request[..request.len().min(120)])
                )
            }
            Err(e) => break format!("reset ({e})"),
        }
    };
    let text = String::from_utf8_lossy(&got).to_string();
    match text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
    {
        Some(code) => RawAnswer::Status(code, text.chars().take(600).collect()),
        None => RawAnswer::Closed(format!(
            "{ended}; write error: {write_error:?}; bytes: {:?}",
            text.chars().take(200).collect::<String>()
        )),
    }
}

/// One hand-built multipart body part.
fn multipart_part(
    boundary: &str,
    name: &str,
    file_name: &str,
    headers: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n{headers}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------------------
// 1. SIGKILL at random moments while uploads stream in
// ---------------------------------------------------------------------------------------------------

/// An upload the server acknowledged with a 2xx.
#[derive(Debug, Clone)]
struct Acked {
    id: i64,
    name: String,
    seed: u64,
    len: usize,
    sha256: String,
    route: &'static str,
}

struct Target {
    base: Mutex<String>,
    stop: AtomicBool,
}

/// One upload request's files: name, content seed, bytes.
type Batch = Vec<(String, u64, Vec<u8>)>;

/// Uploads until told to stop, against whatever address the server has now. A request that cannot
/// connect (the server is down) is retried with the same files; one that failed in flight is
/// forgotten. Answers the acknowledged uploads, the answers that no kill can explain (a 5xx, or a 200
/// with an unexpected body), and the number of requests that reached a server.
async fn upload_continuously(
    target: Arc<Target>,
    token: String,
    message: i64,
    seed: u64,
) -> (Vec<Acked>, Vec<String>, usize) {
    let http = client_with_timeout(20);
    let mut rng = Rng::new(seed);
    let mut acked = Vec::new();
    let mut problems = Vec::new();
    let mut sent = 0;
    let mut n = 0u64;
    let mut pending: Option<(bool, Batch)> = None;
    while !target.stop.load(Ordering::SeqCst) {
        let base = target.base.lock().unwrap().clone();
        let (multipart, files) = pending.take().unwrap_or_else(|| {
            // Multipart to the message (one or two files) or a raw body; sizes from 1 KiB to 2 MiB,
            // spread over the orders of magnitude.
            let multipart = rng.range(0, 2) == 0;
            let count = if multipart { rng.range(1, 2) } else { 1 };
            let files = (0..count)
                .map(|_| {
                    n += 1;
                    let scale = 1024u64 << rng.range(0, 11);
                    let len = (scale + rng.range(0, scale - 1)).min(2 << 20) as usize;
                    let file_seed = seed.wrapping_add(n.wrapping_mul(0x1000_0000_01B3));
                    (
                        format!("f{n}.bin"),
                        file_seed,
                        pseudo_random_bytes(len, file_seed),
                    )
                })
                .collect();
            (multipart, files)
        });
        let request = if multipart {
            let mut form = reqwest::multipart::Form::new();
            for (name, _, bytes) in &files {
                form = form.part(
                    "files",
                    reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                );
            }
            http.post(format!("{base}/api/v1/messages/{message}/attachments"))
                .multipart(form)
        } else {
            let (name, _, bytes) = &files[0];
            http.post(format!("{base}/uploads"))
                .query(&[("name", name.as_str())])
                .header("content-type", "application/octet-stream")
                .body(bytes.clone())
        };
        let r = match request.bearer_auth(&token).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                // The server is down or restarting: same files again in a moment.
                pending = Some((multipart, files));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(_) => continue, // killed in flight: not acknowledged
        };
        sent += 1;
        let status = r.status().as_u16();
        let Ok(text) = r.text().await else { continue };
        let route = if multipart { "multipart" } else { "raw" };
        if status >= 500 {
            problems.push(format!("{route} upload answered {status}: {text}"));
            continue;
        }
        if status != 200 {
            continue; // e.g. another test's server on a reused port refusing our token
        }
        let ids: Vec<i64> = if multipart {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            body["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["attachmentId"].as_i64())
                .collect()
        } else {
            text.parse().into_iter().collect()
        };
        if ids.len() != files.len() {
            problems.push(format!(
                "{route} upload: 200 with an unexpected body: {text}"
            ));
            continue;
        }
        for ((name, file_seed, bytes), id) in files.into_iter().zip(ids) {
            acked.push(Acked {
                id,
                name,
                seed: file_seed,
                len: bytes.len(),
                sha256: sha256_hex(&bytes),
                route,
            });
        }
    }
    (acked, problems, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_acknowledged_between_two_dozen_sigkills_are_all_intact() {
    const KILLS: usize = 22;
    let seed = run_seed();
    println!("kill loop seed: {seed} (set FAULTS_SEED={seed} to replay)");
    let mut server = Server::start();
    let admin = server.admin().await;
    // The uploads go with a member's token: every start with --admin-password (the harness gives
    // it) revokes the admin's tokens (SPEC §3).
    let uploader = create_member(&server.base, &admin, "uploader").await;
    let channel = admin.channel("kill-loop", &["uploader"]).await;
    // Its own message: files are attached to a message by its author.
    let message = uploader.message(channel, "files arrive here").await;

    let target = Arc::new(Target {
        base: Mutex::new(server.base.clone()),
        stop: AtomicBool::new(false),
    });
    let uploader = tokio::spawn(upload_continuously(
        target.clone(),
        uploader.token.clone(),
        message,
        seed,
    ));
    let mut rng = Rng::new(seed ^ 0xABCD);
    let started = Instant::now();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.range(30, 400))).await;
        tokio::task::block_in_place(|| server.restart());
        *target.base.lock().unwrap() = server.base.clone();
    }
    // A little more traffic on the last instance, then stop and kill once more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    target.stop.store(true, Ordering::SeqCst);
    let (acked, problems, attempts) = tokio::time::timeout(Duration::from_secs(60), uploader)
        .await
        .expect("the uploader stops")
        .unwrap();
    tokio::task::block_in_place(|| server.restart());
    println!(
        "{KILLS} kills in {:?}: {attempts} upload requests reached a server, {} files acknowledged",
        started.elapsed(),
        acked.len()
    );
    assert!(
        problems.is_empty(),
        "answers no kill explains: {problems:#?}"
    );
    assert!(
        acked.len() >= 10,
        "too few uploads were acknowledged to mean anything: {}",
        acked.len()
    );
    assert!(acked.iter().any(|a| a.route == "raw"));
    assert!(acked.iter().any(|a| a.route == "multipart"));

    // Every acknowledged upload is there, with its checksum and its exact bytes.
    let admin = bounded(&server.admin().await, 60);
    let mut lost = Vec::new();
    for a in &acked {
        let (status, meta) = metadata(&admin, a.id).await;
        if status != 200 {
            lost.push(format!("{a:?}: metadata answered {status}: {meta}"));
            continue;
        }
        if meta["fileChecksum"] != a.sha256.as_str() || meta["fileSize"] != a.len {
            lost.push(format!("{a:?}: metadata says {meta}"));
            continue;
        }
        let (status, bytes) = download(&admin, a.id, &a.name).await;
        if status != 200 || bytes != pseudo_random_bytes(a.len, a.seed) {
            lost.push(format!(
                "{a:?}: download answered {status} with {} bytes (sha256 {})",
                bytes.len(),
                sha256_hex(&bytes)
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged uploads lost or damaged: {lost:#?}"
    );

    // Nothing partial is served as complete: every attachment of the message (also those whose answer
    // the kill swallowed) has bytes matching its checksum and size.
    let (status, text) = send(
        "messages",
        admin.get(&format!("/api/v1/channels/{channel}/messages?limit=100")),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    let mut seen = 0;
    for m in listed["data"].as_array().unwrap() {
        for a in m["attachments"].as_array().into_iter().flatten() {
            let id = a["attachmentId"].as_i64().unwrap();
            let (status, meta) = metadata(&admin, id).await;
            assert_eq!(status, 200, "{meta}");
            let name = meta["fileName"].as_str().unwrap().to_string();
            let (status, bytes) = download(&admin, id, &name).await;
            assert_eq!(status, 200, "attachment {id}: {meta}");
            assert_eq!(meta["fileSize"], bytes.len(), "attachment {id}");
            assert_eq!(meta["fileChecksum"], sha256_hex(&bytes), "attachment {id}");
            seen += 1;
        }
    }
    assert!(seen >= acked.iter().filter(|a| a.route == "multipart").count());

    // The start-up cleanup left no temporary file.
    assert_eq!(server.temporaries(), 0, "temporaries left after start-up");

    // No orphan blob: every stored blob is referenced, or pinned by the upload that was killed
    // between committing it and recording it (the collector takes those when the pin expires).
    server.kill9();
    let store =
        hangar_db::SqliteStore::open(&format!("sqlite://{}/hangar.db", server.data_dir.display()))
            .await
            .expect("the database opens");
    use hangar_core::store::BlobLifecycleStore;
    let acked_shas: HashSet<&str> = acked.iter().map(|a| a.sha256.as_str()).collect();
    let blobs = server.blob_files();
    let mut orphans = Vec::new();
    for path in &blobs {
        let sha = path.file_name().unwrap().to_str().unwrap();
        let record = store.blob_record(sha).await.unwrap();
        if record.refcount.unwrap_or(0) == 0 && !record.pinned {
            orphans.push(format!(
                "{sha} ({} bytes, acknowledged: {})",
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
                acked_shas.contains(sha)
            ));
        }
    }
    assert!(orphans.is_empty(), "blobs nothing refers to: {orphans:#?}");
    // And the count never drops below the acknowledged references.
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for a in &acked {
        *expected.entry(a.sha256.as_str()).or_default() += 1;
    }
    for (sha, n) in expected {
        let refcount = store.blob_record(sha).await.unwrap().refcount.unwrap_or(0);
        assert!(refcount >= n, "blob {sha}: refcount {refcount} < {n}");
    }
    let log = server.output_text();
    let swept = |what: &str| -> u64 {
        log.lines()
            .filter_map(|l| l.split("removed ").nth(1))
            .filter(|rest| rest.contains(what))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    println!(
        "{} blob files, {} acknowledged uploads, {seen} attachments on the message; start-up sweeps \
         removed {} temporaries and {} unreferenced blobs",
        blobs.len(),
        acked.len(),
        swept("temporary files left"),
        swept("stored blobs that the database did not know"),
    );
}

// ---------------------------------------------------------------------------------------------------
// 2. A full disk
// ---------------------------------------------------------------------------------------------------

/// A server whose data directory is a small tmpfs. Dropping it kills the server, then unmounts.
struct TmpfsServer {
    server: Server,
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TmpfsServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl TmpfsServer {
    /// Mounts a tmpfs of `size` and starts the server on it; `Err` says why the machine cannot.
    fn start(size: &str) -> Result<TmpfsServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path().join("data");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TmpfsServer {
            server: Server::start_in(mount.clone(), &[]),
            mount,
            _dir: dir,
        })
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.mount)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TmpfsServer {
    fn drop(&mut self) {
        self.server.kill9();
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_uploads_with_507_and_loses_nothing() {
    let server = match TmpfsServer::start("16M") {
        Ok(s) => s,
        Err(why) => {
            println!("SKIPPED: the disk-full test needs a tmpfs it can mount: {why}");
            return;
        }
    };
    let token = login_token(&server.base, "admin", ADMIN_PASSWORD).await;
    let admin = User {
        base: server.base.clone(),
        http: client_with_timeout(60),
        token,
        username: "admin".into(),
    };
    const MIB: usize = 1 << 20;
    let upload = |seed: u64| {
        let admin = admin.clone();
        async move {
            let bytes = pseudo_random_bytes(MIB, seed);
            let name = format!("full{seed}.bin");
            let (status, text) = send(
                &format!("upload {name}"),
                admin
                    .post("/uploads")
                    .query(&[("name", name.as_str())])
                    .header("content-type", "application/octet-stream")
                    .body(bytes),
            )
            .await;
            (status, text, name)
        }
    };
    let mut stored: Vec<(i64, String, u64)> = Vec::new();
    let mut refusal = None;
    for seed in 1..=40u64 {
        let (status, text, name) = upload(seed).await;
        if status == 200 {
            stored.push((text.parse().expect("an attachment id"), name, seed));
            continue;
        }
        refusal = Some((status, text));
        break;
    }
    let (status, text) = refusal.expect("40 MiB do not fit on a 16 MiB disk: an upload is refused");
    println!(
        "{} uploads of 1 MiB fitted; then {status}: {text}; {} bytes free; server log tail: {:?}",
        stored.len(),
        server.free_bytes(),
        server
            .output
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the refusal is a JSON error, got {status}: {text:?}"));
    match status {
        507 => assert_eq!(body["error"], "storage-full", "{body}"),
        413 => assert_eq!(body["error"], "limits-reached", "{body}"),
        _ => panic!("a full disk must answer 507 storage-full (or 413), got {status}: {body}"),
    }
    assert_eq!(body["httpStatusCode"], status, "{body}");
    assert!(stored.len() >= 5, "a 16 MiB disk holds several 1 MiB files");

    // Everything acknowledged before is intact, and the server still serves.
    for (id, name, seed) in &stored {
        let (status, bytes) = download(&admin, *id, name).await;
        assert_eq!(status, 200, "download of {name} on a full disk");
        assert!(
            bytes == pseudo_random_bytes(MIB, *seed),
            "{name} is byte-exact"
        );
    }
    let (status, text) = send(
        "healthz",
        admin.http.get(format!("{}/healthz", server.base)),
    )
    .await;
    assert_eq!(status, 200, "healthz on a full disk: {text}");
    let temporaries = std::fs::read_dir(server.mount.join("blobs/tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        temporaries, 0,
        "the refused upload's temporary file is gone"
    );

    // Deleting frees room: new uploads succeed again.
    for (id, name, _) in stored.drain(..3) {
        let (status, text) = send(
            &format!("delete {name}"),
            admin.delete(&format!("/api/v1/attachments/{id}")),
        )
        .await;
        assert!(
            status == 200 || status == 204,
            "delete {name} on a full disk: {status} {text}"
        );
        let (status, _) = metadata(&admin, id).await;
        assert_eq!(status, 404, "{name} is gone");
    }
    // The bytes go in the background (the tests' grace period is zero).
    wait_for_collector(&server.mount);
    for seed in 101..=102u64 {
        let (status, text, name) = upload(seed).await;
        assert_eq!(status, 200, "an upload after deleting files: {text}");
        let id: i64 = text.parse().unwrap();
        let (status, bytes) = download(&admin, id, &name).await;
        assert_eq!(status, 200);
        assert!(
            bytes == pseudo_random_bytes(MIB, seed),
            "{name} is byte-exact"
        );
        stored.push((id, name, seed));
    }
    for (id, name, seed) in &stored {
        let (status, bytes) = download(&admin, *id, name).await;
        assert_eq!(status, 200, "{name}");
        assert!(
            bytes == pseudo_random_bytes(MIB, *seed),
            "{name} is byte-exact"
        );
    }
    drop(server); // kills the server, then unmounts
}

/// Uploads `len` pseudo-random bytes as `POST /uploads`: status, body text, file name.
async fn upload_seeded(admin: &User, len: usize, seed: u64) -> (u16, String, String) {
    let name = format!("fill{seed}.bin");
    let (status, text) = send(
        &format!("upload {name} ({len} bytes)"),
        admin
            .post("/uploads")
            .query(&[("name", name.as_str())])
            .header("content-type", "application/octet-stream")
            .body(pseudo_random_bytes(len, seed)),
    )
    .await;
    (status, text, name)
}

/// After a 1 MiB file no longer fits, ever smaller files fill the disk to its last blocks, where the
/// database's own writes run out of room too: every refusal is still 507 (or 413), never another 5xx,
/// and nothing stored before is lost.
#[tokio::test]
async fn a_disk_filled_to_the_last_block_still_answers_507() {
    let server = match TmpfsServer::start("16M") {
        Ok(s) => s,
        Err(why) => {
            println!("SKIPPED: the disk-full test needs a tmpfs it can mount: {why}");
            return;
        }
    };
    let token = login_token(&server.base, "admin", ADMIN_PASSWORD).await;
    let admin = User {
        base: server.base.clone(),
        http: client_with_timeout(60),
        token,
        username: "admin".into(),
    };
    let mut stored: Vec<(i64, String, usize, u64)> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut seed = 1000u64;
    let mut requests = 0;
    for len in [
        1 << 20,
        256 << 10,
        64 << 10,
        16 << 10,
        4 << 10,
        1 << 10,
        100,
    ] {
        // Until this size is refused (bounded: 16 MiB cannot take more than this many).
        for _ in 0..200 {
            seed += 1;
            requests += 1;
            let (status, text, name) = upload_seeded(&admin, len, seed).await;
            if status == 200 {
                stored.push((text.parse().expect("an attachment id"), name, len, seed));
                continue;
            }
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let expected = match status {
                507 => body["error"] == "storage-full",
                413 => body["error"] == "limits-reached",
                _ => false,
            };
            if expected && body["httpStatusCode"] == status {
                refusals.push(format!("{len} bytes: {status}"));
            } else {
                wrong.push(format!("{len} bytes: {status} {text}"));
            }
            break;
        }
    }
    println!(
        "{requests} uploads: {} stored, refusals {refusals:?}; {} bytes free",
        stored.len(),
        server.free_bytes()
    );
    assert!(
        !refusals.is_empty() || !wrong.is_empty(),
        "the disk filled up"
    );

    // Nothing stored before is lost, and the server still serves (every outcome is gathered first,
    // so that one run tells the whole story).
    let mut problems = wrong;
    for (id, name, len, seed) in &stored {
        let (status, bytes) = download(&admin, *id, name).await;
        if status != 200 || bytes != pseudo_random_bytes(*len, *seed) {
            problems.push(format!(
                "download of {name} on a full disk: {status}, {} bytes",
                bytes.len()
            ));
        }
    }
    for attempt in 0..3 {
        let (status, text) = send(
            "healthz",
            admin.http.get(format!("{}/healthz", server.base)),
        )
        .await;
        if status != 200 {
            problems.push(format!(
                "healthz #{attempt} on a full disk: {status} {text}"
            ));
        }
    }

    // Deleting the large files frees room for new uploads.
    let large: Vec<_> = stored
        .iter()
        .filter(|f| f.2 == 1 << 20)
        .take(3)
        .cloned()
        .collect();
    for (id, name, _, _) in &large {
        let (status, text) = send(
            &format!("delete {name}"),
            admin.delete(&format!("/api/v1/attachments/{id}")),
        )
        .await;
        if status != 200 && status != 204 {
            problems.push(format!("delete {name} on a full disk: {status} {text}"));
        }
    }
    wait_for_collector(&server.mount);
    println!("{} bytes free after the deletes", server.free_bytes());
    for seed in [9998, 9999] {
        let (status, text, name) = upload_seeded(&admin, 1 << 20, seed).await;
        if status != 200 {
            problems.push(format!("an upload after deleting files: {status} {text}"));
            continue;
        }
        let (status, bytes) = download(&admin, text.parse().unwrap(), &name).await;
        if status != 200 || bytes != pseudo_random_bytes(1 << 20, seed) {
            problems.push(format!("download of {name}: {status}"));
        }
    }
    let errors: Vec<String> = server
        .output
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("ERROR hangar"))
        .cloned()
        .collect();
    assert!(
        problems.is_empty(),
        "a full disk must answer 507 storage-full (or 413 limits-reached), and the server must \
         recover: {problems:#?}\nserver errors: {errors:#?}"
    );
    drop(server); // kills the server, then unmounts
}

// ---------------------------------------------------------------------------------------------------
// 3. Slow clients
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn hundreds_of_stalled_connections_do_not_starve_a_normal_client() {
    let server = Server::start();
    let admin = bounded(&server.admin().await, 30);
    let limit = open_files_limit();
    // Each side holds one descriptor per connection (the server also one temporary file per stalled
    // body); leave room for everything else.
    let wanted = 500u64;
    let n = wanted.min(limit.saturating_sub(400)) as usize;
    if (n as u64) < wanted {
        println!("open-files limit {limit}: using {n} stalled connections instead of {wanted}");
    }
    let mut stalled = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        if i % 2 == 0 {
            // A request head that never ends.
            s.write_all(b"POST /uploads HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        } else {
            // A complete head announcing 1 MB, a few body bytes, then silence.
            let head = format!(
                "POST /uploads?name=slow{i}.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\nabcdefgh",
                admin.token
            );
            s.write_all(head.as_bytes()).unwrap();
        }
        stalled.push(s);
    }

    // A normal client is served meanwhile.
    let (status, text) = send("healthz", admin.http.get(server.url("/healthz"))).await;
    assert_eq!(status, 200, "{text}");
    let bytes = pseudo_random_bytes(300_000, 77);
    let (status, text) = send(
        "upload",
        admin
            .post("/uploads")
            .query(&[("name", "normal.bin")])
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
    )
    .await;
    assert_eq!(status, 200, "upload while {n} connections stall: {text}");
    let id: i64 = text.parse().unwrap();
    let (status, got) = download(&admin, id, "normal.bin").await;
    assert_eq!(status, 200);
    assert!(got == bytes, "the download is byte-exact");
    let (status, meta) = metadata(&admin, id).await;
    assert_eq!(status, 200);
    assert_eq!(meta["fileChecksum"], sha256_hex(&bytes));

    // The stalled connections were kept, not dropped: one of them still gets its answer.
    let mut first = stalled.swap_remove(0);
    first
        .write_all(b"Connection: close\r\n\r\n")
        .expect("the stalled connection is still open");
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = first.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "the completed head is answered (no token: 401): {answer:?}"
    );

    // When the slow clients go, their temporary files go too.
    drop(stalled);
    assert!(
        settle(|| server.temporaries() == 0),
        "temporaries of abandoned uploads: {}",
        server.temporaries()
    );
    let (status, _) = send("healthz", admin.http.get(server.url("/healthz"))).await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------------
// 4. Malformed requests
// ---------------------------------------------------------------------------------------------------

/// Collects outcomes that break the rule "bad input gets a 4xx JSON error, never a 5xx".
#[derive(Default)]
struct Corpus {
    failures: Vec<String>,
    cases: usize,
}

impl Corpus {
    /// An API error: a 4xx with the JSON body of SPEC §4.
    async fn expect_4xx(&mut self, label: &str, req: RequestBuilder) -> u16 {
        self.cases += 1;
        let (status, text) = send(label, req).await;
        if !(400..500).contains(&status) {
            self.failures
                .push(format!("{label}: expected a 4xx, got {status}: {text}"));
            return status;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(body)
                if body["httpStatusCode"] == status
                    && body["error"].is_string()
                    && body["errorText"].as_str().is_some_and(|t| !t.is_empty()) => {}
            _ => self.failures.push(format!(
                "{label}: {status} without the JSON error body: {text:?}"
            )),
        }
        status
    }

    /// A request malformed at the HTTP level: a 4xx or a closed connection, never a 5xx or a hang.
    fn expect_refused_raw(&mut self, label: &str, addr: &str, request: &[u8]) -> String {
        self.cases += 1;
        let answer = raw_exchange(addr, request);
        let seen = match &answer {
            RawAnswer::Status(code, _) => format!("{code}"),
            RawAnswer::Closed(how) => format!("connection closed: {how}"),
        };
        println!("{label}: {seen}");
        if let RawAnswer::Status(code, head) = &answer {
            if !(400..500).contains(code) {
                self.failures
                    .push(format!("{label}: expected a 4xx, got {code}: {head}"));
            }
        }
        seen
    }

    /// An upload whose file name needs sanitizing: refused with a 4xx, or stored under a name without
    /// control characters of at most 255 bytes.
    async fn expect_sanitized_name(&mut self, label: &str, user: &User, req: RequestBuilder) {
        self.cases += 1;
        let (status, text) = send(label, req).await;
        match status {
            200 => {
                let (_, meta) = metadata(user, text.parse().unwrap()).await;
                let name = meta["fileName"].as_str().unwrap_or_default();
                if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
                    self.failures
                        .push(format!("{label}: stored under the name {name:?}"));
                }
            }
            400..=499 => {}
            _ => self.failures.push(format!(
                "{label}: expected a 200 or a 4xx, got {status}: {text}"
            )),
        }
    }

    /// A download with a `Range` header: the expected status.
    async fn expect_range(&mut self, user: &User, path: &str, range: &str, expected: &[u16]) {
        self.cases += 1;
        let label = format!("Range: {range}");
        let (status, text) = send(&label, user.get(path).header("range", range)).await;
        if !expected.contains(&status) {
            self.failures.push(format!(
                "{label}: expected {expected:?}, got {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
    }
}

fn b64url(s: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_leave_the_server_healthy() {
    let server = Server::start();
    let admin = bounded(&server.admin().await, 30);
    let channel = admin.channel("corpus", &[]).await;
    let message = admin.message(channel, "target").await;
    let (status, text) = send(
        "create space",
        admin
            .post("/api/v1/spaces")
            .json(&json!({"id": "s", "name": "S"})),
    )
    .await;
    assert!(status == 200 || status == 201, "{text}");
    let file = pseudo_random_bytes(100, 5);
    let file_id = admin
        .upload("range.bin", "application/octet-stream", &file)
        .await;
    let mut c = Corpus::default();
    let attach = format!("/api/v1/messages/{message}/attachments");
    let storage_upload = format!("/api/v1/space/s/storage/{}/upload", b64url(b"dir/f.bin"));

    // --- Multipart with broken boundaries and truncated parts, on both multipart routes.
    let whole = multipart_part("B0undary", "files", "a.bin", "", b"hello");
    let mut closed = whole.clone();
    closed.extend_from_slice(b"--B0undary--\r\n");
    let storage_whole = multipart_part("B0undary", "file", "a.bin", "", b"hello");
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "multipart without a boundary",
            "multipart/form-data".into(),
            closed.clone(),
        ),
        (
            "multipart with an empty boundary",
            "multipart/form-data; boundary=".into(),
            closed.clone(),
        ),
        (
            "multipart with a quoted empty boundary",
            "multipart/form-data; boundary=\"\"".into(),
            closed.clone(),
        ),
        (
            "multipart whose body uses another boundary",
            "multipart/form-data; boundary=Other".into(),
            closed.clone(),
        ),
        (
            "multipart with a 200-byte boundary",
            format!("multipart/form-data; boundary={}", "b".repeat(200)),
            closed.clone(),
        ),
        (
            "multipart without the closing delimiter",
            "multipart/form-data; boundary=B0undary".into(),
            whole.clone(),
        ),
        (
            "multipart cut inside a part's body",
            "multipart/form-data; boundary=B0undary".into(),
            whole[..whole.len() - 4].to_vec(),
        ),
        (
            "multipart cut inside a part's headers",
            "multipart/form-data; boundary=B0undary".into(),
            b"--B0undary\r\nContent-Disposition: form-data; name=\"fi".to_vec(),
        ),
        (
            "multipart whose part has no header end",
            "multipart/form-data; boundary=B0undary".into(),
            b"--B0undary\r\nContent-Disposition: form-data; name=\"files\"\r\nabc\r\n--B0undary--\r\n"
                .to_vec(),
        ),
        (
            "multipart with only the closing delimiter",
            "multipart/form-data; boundary=B0undary".into(),
            b"--B0undary--\r\n".to_vec(),
        ),
        (
            "multipart with an empty body",
            "multipart/form-data; boundary=B0undary".into(),
            Vec::new(),
        ),
        (
            "multipart with garbage",
            "multipart/form-data; boundary=B0undary".into(),
            pseudo_random_bytes(5000, 9),
        ),
        (
            "multipart with a part without Content-Disposition",
            "multipart/form-data; boundary=B0undary".into(),
            b"--B0undary\r\nContent-Type: text/plain\r\n\r\nabc\r\n--B0undary--\r\n".to_vec(),
        ),
    ];
    for (label, content_type, body) in &cases {
        c.expect_4xx(
            &format!("message attachments: {label}"),
            admin
                .post(&attach)
                .header("content-type", content_type.as_str())
                .body(body.clone()),
        )
        .await;
        let body = String::from_utf8_lossy(body)
            .replace("name=\"files\"", "name=\"file\"")
            .into_bytes();
        c.expect_4xx(
            &format!("storage upload: {label}"),
            admin
                .post(&storage_upload)
                .header("content-type", content_type.as_str())
                .body(body),
        )
        .await;
    }
    // The storage route, cut inside its `file` part.
    c.expect_4xx(
        "storage upload: multipart cut inside the file part",
        admin
            .post(&storage_upload)
            .header("content-type", "multipart/form-data; boundary=B0undary")
            .body(storage_whole[..storage_whole.len() - 4].to_vec()),
    )
    .await;

    // --- JSON nested 10 000 levels deep.
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let deep_in_field = format!(
        "{{\"name\":\"x\",\"members\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for (label, body) in [
        ("deep array", &deep_array),
        ("deep object", &deep_object),
        ("deep members", &deep_in_field),
    ] {
        c.expect_4xx(
            &format!("channels: JSON {label}"),
            admin
                .post("/api/v1/channels")
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        c.expect_4xx(
            &format!("storage upload: JSON {label}"),
            admin
                .post(&storage_upload)
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
    }
    c.expect_4xx(
        "channels: unterminated JSON",
        admin
            .post("/api/v1/channels")
            .header("content-type", "application/json")
            .body("{\"name\": \"x"),
    )
    .await;

    // --- A 200 KiB header: 431 or a closed connection.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let seen = c.expect_refused_raw("a 200 KiB header", &server.addr, big_header.as_bytes());
    println!("a 200 KiB header → {seen}");
    let many_headers: String = (0..5000).map(|i| format!("X-H{i}: {i:040}\r\n")).collect();
    let many =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n");
    c.expect_refused_raw(
        "5000 headers (about 250 KiB)",
        &server.addr,
        many.as_bytes(),
    );

    // --- Bad base64 pathIds.
    let bad_ids: Vec<String> = vec![
        "!!!".into(),
        "%2A%2A%2A".into(),
        "====".into(),
        "Zm9v*".into(),
        "a".into(),
        "%00".into(),
        "%FF%FE".into(),
        b64url(&[0xff, 0xfe, 0xfd]), // not UTF-8
        b64url(b"../etc/passwd"),    // escapes the space
        b64url(b"a/../../b"),        // escapes the space
        b64url(b"/abs"),             // absolute
        b64url(b"a//b"),             // empty segment
        b64url(b"a\0b"),             // NUL
        b64url(b"a\nb"),             // control character
        b64url(b"."),                // dot segment
        b64url(b"dir/"),             // trailing slash
        b64url(&vec![b'x'; 5000]),   // very long
        "A".repeat(20_000),          // decodes to garbage, very long
    ];
    for id in &bad_ids {
        let shown: String = id.chars().take(40).collect();
        c.expect_4xx(
            &format!("storage upload to pathId {shown:?}"),
            admin
                .post(&format!("/api/v1/space/s/storage/{id}/upload"))
                .header("content-type", "application/octet-stream")
                .body("x"),
        )
        .await;
        c.expect_4xx(
            &format!("storage download of pathId {shown:?}"),
            admin.get(&format!("/api/v1/space/s/storage/{id}")),
        )
        .await;
    }
    c.expect_4xx(
        "storage listing of dir %00",
        admin.get("/api/v1/space/s/storage?dir=%00"),
    )
    .await;
    c.expect_4xx(
        "storage listing of dir !!!",
        admin.get("/api/v1/space/s/storage?dir=!!!"),
    )
    .await;

    // --- Bad data URLs (and other bad `file` values) in a JSON upload.
    for body in [
        json!({"file": "data:;base64,@@@"}),
        json!({"file": "data:;base64,A"}),
        json!({"file": "data:text/plain"}),
        json!({"file": "data:"}),
        json!({"file": "data:;base64,%%%"}),
        json!({"file": "javascript:alert(1)"}),
        json!({"file": "file:///etc/passwd"}),
        json!({"file": ""}),
        json!({"file": 12}),
        json!({"file": null}),
        json!({"file": ["data:,a"]}),
        json!({"other": "data:,a"}),
        json!({}),
        json!([1, 2]),
        json!("data:,a"),
    ] {
        c.expect_4xx(
            &format!("JSON upload {body}"),
            admin.post(&storage_upload).json(&body),
        )
        .await;
    }

    // --- Bad Range headers: invalid ones are ignored (200), unsatisfiable ones answer 416.
    let download_path = format!("/api/v1/attachments/{file_id}/range.bin");
    for (range, expected) in [
        ("bytes=5-2", &[200][..]),
        ("bytes=abc", &[200]),
        ("bytes=", &[200]),
        ("bytes=-", &[200]),
        ("bytes=--1", &[200]),
        ("bytes=1-2-3", &[200]),
        ("pages=0-1", &[200]),
        ("bytes=0-1,2-3", &[200, 206]), // several ranges: a multipart answer is optional
        ("bytes=-0", &[416]),
        ("bytes=100-", &[416]),
        ("bytes=100-200", &[416]),
        ("bytes=0-0", &[206]),
        ("bytes=-1000", &[206]),
    ] {
        c.expect_range(&admin, &download_path, range, expected)
            .await;
    }
    let (status, whole) = download(&admin, file_id, "range.bin").await;
    assert_eq!(status, 200);
    assert!(
        whole == file,
        "a download after the Range corpus is byte-exact"
    );
    let r = admin
        .get(&download_path)
        .header("range", "bytes=-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("bytes */100".to_string()),
        "a 416 says the current length (RFC 9110 §15.5.17)"
    );

    // --- Bad checksum headers, on the raw route and inside a multipart part.
    let data = b"checksummed";
    for (name, value) in [
        ("x-checksum-sha256", "zz"),
        ("x-checksum-sha256", "abc"),
        ("x-checksum-sha256", &"g".repeat(64)),
        ("x-checksum-sha256", &"a".repeat(65)),
        ("x-checksum-sha256", ""),
        ("repr-digest", "sha-256=:not base64!:"),
        ("repr-digest", "sha-256=abc"),
        ("repr-digest", "sha-256=:AAAA:"),
        ("repr-digest", "sha-256"),
        ("repr-digest", "sha-512=:AAAA:"),
        ("repr-digest", ""),
        ("content-digest", "sha-256=:::"),
        ("content-digest", "md5=:AAAA:, sha-256=:@@@@:"),
    ] {
        c.expect_4xx(
            &format!("POST /uploads with {name}: {value:?}"),
            admin
                .post("/uploads")
                .query(&[("name", "sum.bin")])
                .header("content-type", "application/octet-stream")
                .header(name, value)
                .body(&data[..]),
        )
        .await;
        let mut body = multipart_part(
            "B0undary",
            "files",
            "sum.bin",
            &format!("{name}: {value}\r\n"),
            data,
        );
        body.extend_from_slice(b"--B0undary--\r\n");
        c.expect_4xx(
            &format!("multipart part with {name}: {value:?}"),
            admin
                .post(&attach)
                .header("content-type", "multipart/form-data; boundary=B0undary")
                .body(body),
        )
        .await;
    }
    let wrong = "0".repeat(64);
    let status = c
        .expect_4xx(
            "POST /uploads with a well-formed but wrong checksum",
            admin
                .post("/uploads")
                .query(&[("name", "sum.bin")])
                .header("content-type", "application/octet-stream")
                .header("x-checksum-sha256", wrong.as_str())
                .body(&data[..]),
        )
        .await;
    assert_eq!(status, 422, "a checksum mismatch is 422");

    // --- NUL in a query string.
    c.expect_refused_raw(
        "a raw NUL byte in the query",
        &server.addr,
        format!(
            "POST /uploads?name=a\0b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
            admin.token
        )
        .as_bytes(),
    );
    // A NUL in a file name is sanitized away (SPEC §11: control characters removed), never stored.
    for name in ["\0", "a\0b.txt", "\0\0\0.txt"] {
        c.expect_sanitized_name(
            &format!("an encoded NUL in the name {name:?}"),
            &admin,
            admin
                .post("/uploads")
                .query(&[("name", name)])
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    }
    c.expect_4xx(
        "an encoded NUL in spaceMediaType",
        admin
            .post("/uploads?name=a.png&spaceMediaType=chat-image-attachment%00")
            .header("content-type", "image/png")
            .body("x"),
    )
    .await;
    c.expect_4xx(
        "an encoded NUL in a listing limit",
        admin.get("/api/v1/space/s/storage?limit=1%00"),
    )
    .await;

    // --- Very long URLs (100 KiB): 414/431 or a closed connection.
    let long_query = format!(
        "GET /healthz?x={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    c.expect_refused_raw("a 100 KiB query", &server.addr, long_query.as_bytes());
    let long_path = format!(
        "GET /api/v1/attachments/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        "9".repeat(100 * 1024),
        admin.token
    );
    c.expect_refused_raw("a 100 KiB path", &server.addr, long_path.as_bytes());
    // Just under the head limit, a long path reaches the router and is refused there.
    c.expect_4xx(
        "a 30 KiB attachment id",
        admin.get(&format!("/api/v1/attachments/{}", "9".repeat(30 * 1024))),
    )
    .await;
    // A 30 KiB file name is cut to 255 bytes (SPEC §11), or refused.
    c.expect_sanitized_name(
        "a 30 KiB file name in the query",
        &admin,
        admin
            .post(&format!("/uploads?name={}.txt", "n".repeat(30 * 1024)))
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;

    // --- Other broken heads.
    for (label, request) in [
        ("a request line of garbage", "\x01\x02\x03 / HTTP/1.1\r\n\r\n".to_string()),
        (
            "two Content-Length values",
            "POST /uploads?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\nxx"
                .to_string(),
        ),
        (
            "a non-numeric Content-Length",
            "POST /uploads?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"
                .to_string(),
        ),
        (
            "broken chunked encoding",
            format!(
                "POST /uploads?name=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n",
                admin.token
            ),
        ),
    ] {
        c.expect_refused_raw(label, &server.addr, request.as_bytes());
    }

    println!("{} malformed requests sent", c.cases);
    assert!(
        c.failures.is_empty(),
        "{} of {} malformed requests were not answered with a 4xx: {:#?}",
        c.failures.len(),
        c.cases,
        c.failures
    );

    // The server is healthy, small, and left nothing behind.
    let (status, text) = send("healthz", admin.http.get(server.url("/healthz"))).await;
    assert_eq!(status, 200, "{text}");
    let rss = rss_kib(server.pid());
    println!("server RSS after the corpus: {} KiB", rss);
    assert!(rss < 200 * 1024, "server RSS {rss} KiB after the corpus");
    assert!(
        settle(|| server.temporaries() == 0),
        "temporaries after the corpus: {}",
        server.temporaries()
    );
    let (status, got) = download(&admin, file_id, "range.bin").await;
    assert_eq!(status, 200);
    assert!(got == file);
}

/// `bytes=99999999999999999999-` is a valid byte-range-spec (first-pos is 1*DIGIT) beyond the end of
/// any file: RFC 9110 §14.1.1 makes it unsatisfiable, and §14.2/§15.5.17 say to answer 416 with
/// `Content-Range: bytes */LEN` (not to choke on the number's size).
#[tokio::test]
async fn a_range_starting_past_u64_is_unsatisfiable() {
    let server = Server::start();
    let admin = bounded(&server.admin().await, 30);
    let id = admin
        .upload("r.bin", "application/octet-stream", &[7u8; 100])
        .await;
    for range in ["bytes=99999999999999999999-", "bytes=18446744073709551616-"] {
        let r = admin
            .get(&format!("/api/v1/attachments/{id}/r.bin"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let content_range = r
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(status, 416, "Range: {range}");
        assert_eq!(
            content_range.as_deref(),
            Some("bytes */100"),
            "Range: {range}"
        );
    }
}
