//! Faults across several nodes on one PostgreSQL database and one S3 bucket (SPEC §13): a node
//! killed with SIGKILL while uploads, two-stage PUTs and webhook deliveries are in flight; a quota
//! raced from two nodes; PostgreSQL restarted under traffic; the object store gone and back. Every
//! wait is bounded and every check is on outcomes (statuses, bodies, stored bytes, what a receiver
//! got), never on how long something took.

mod common;
use common::*;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use reqwest::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A client whose every request gives up after `secs`: a hang becomes a failure, not a stuck run.
fn client(secs: u64) -> Client {
    Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}

/// The same caller on another node (tokens work on every node), with a client that times out.
fn on(user: &User, node: &Server, secs: u64) -> User {
    User {
        base: node.base.clone(),
        http: client(secs),
        ..user.clone()
    }
}

fn path_id(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)
}

/// Waits (at most `secs`) until `done` holds; answers whether it did. The caller asserts.
async fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Whether an answer is the SPEC §4 error body for `status` and `code`; the body otherwise, to
/// report.
fn is_error(status: u16, text: &str, want_status: u16, code: &str) -> Result<(), String> {
    let body: Value = serde_json::from_str(text).map_err(|_| format!("{status} {text}"))?;
    let ok = status == want_status
        && body["httpStatusCode"] == want_status
        && body["error"] == code
        && body["errorText"].as_str().is_some_and(|t| !t.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!("{status} {text}"))
    }
}

/// `POST /uploads` of `bytes`: status and body, or the transport error.
async fn raw_upload(user: &User, name: &str, bytes: Vec<u8>) -> Result<(u16, String), String> {
    let r = user
        .post("/uploads")
        .query(&[("name", name)])
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// A storage upload of `bytes` to `path` in `space`: status and body, or the transport error.
async fn storage_upload(
    user: &User,
    space: &str,
    path: &str,
    bytes: Vec<u8>,
) -> Result<(u16, String), String> {
    let r = user
        .post(&format!(
            "/api/v1/space/{space}/storage/{}/upload",
            path_id(path)
        ))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// The first stage of a two-stage upload: the URL to PUT the bytes to (on S3, the object store's
/// presigned URL), or the answer.
async fn declare(user: &User, space: &str, path: &str, size: usize) -> Result<String, String> {
    let r = user
        .post(&format!(
            "/api/v1/space/{space}/storage/{}/upload",
            path_id(path)
        ))
        .json(&json!({"file": {"type": "application/octet-stream", "size": size}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status} {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|_| text.clone())?;
    match body["uploadRequest"]["url"].as_str() {
        Some(url) if url.starts_with("http") => Ok(url.to_string()),
        _ => Err(format!("no upload URL in {text}")),
    }
}

/// The second stage, sent without credentials: status and body, or the transport error.
async fn put_stage(http: &Client, url: &str, bytes: Vec<u8>) -> Result<(u16, String), String> {
    let r = http
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// A storage file's bytes: status and bytes.
async fn read_file(user: &User, space: &str, path: &str) -> (u16, Vec<u8>) {
    let r = user
        .get(&format!("/api/v1/space/{space}/storage/{}", path_id(path)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

/// An attachment's bytes: status and bytes.
async fn read_attachment(user: &User, id: i64, name: &str) -> (u16, Vec<u8>) {
    let r = user
        .get(&format!("/api/v1/attachments/{id}/{name}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading attachment {id}: {e}"));
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn create_space(admin: &User, id: &str, quota: Option<u64>) {
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": id, "name": id, "quotaBytes": quota}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn space_json(user: &User, id: &str) -> Value {
    expect_json(
        user.get(&format!("/api/v1/spaces/{id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// The files at the top of a space: path and size.
async fn top_files(user: &User, space: &str) -> Vec<(String, u64)> {
    let r = user
        .get(&format!("/api/v1/space/{space}/storage?limit=1000"))
        .send()
        .await
        .unwrap();
    let body = expect_json(r, 200).await;
    assert!(body["next"].is_null(), "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "file")
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The space's `reservedBytes` in `GET /api/v1/limits`.
async fn reserved_bytes(user: &User, space: &str) -> u64 {
    let body = expect_json(user.get("/api/v1/limits").send().await.unwrap(), 200).await;
    body["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == space)
        .unwrap_or_else(|| panic!("{space} in {body}"))["reservedBytes"]
        .as_u64()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------
// A node killed while work is in flight
// ---------------------------------------------------------------------------------------------------

/// One delivery request as the receiver saw it: when it arrived, when it ended (answered, or the
/// sender's connection dropped), and whether it was answered 200.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    path: String,
    start: Instant,
    end: Option<Instant>,
    answered: bool,
}

/// A webhook receiver that holds every request a moment before answering 200, so that a delivery
/// sent by two nodes at once would show as two overlapping requests with one `webhook-id`.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// Marks a hit ended when the handler finishes or is dropped (the sender went away).
struct Ending {
    hits: Arc<Mutex<Vec<Hit>>>,
    index: usize,
    answered: bool,
}

impl Drop for Ending {
    fn drop(&mut self) {
        let mut hits = self.hits.lock().unwrap();
        let hit = &mut hits[self.index];
        hit.end = Some(Instant::now());
        hit.answered = self.answered;
    }
}

const HOLD: Duration = Duration::from_millis(300);

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let hits = r.hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let hits = hits.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let path = payload["payload"]["path"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let index = {
                        let mut all = hits.lock().unwrap();
                        all.push(Hit {
                            id,
                            path,
                            start: Instant::now(),
                            end: None,
                            answered: false,
                        });
                        all.len() - 1
                    };
                    let mut ending = Ending {
                        hits: hits.clone(),
                        index,
                        answered: false,
                    };
                    tokio::time::sleep(HOLD).await;
                    ending.answered = true;
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn in_flight(&self) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.end.is_none())
            .count()
    }
}

/// What the clients of the kill test got acknowledged, and the answers no kill explains.
#[derive(Default)]
struct Acks {
    /// `POST /uploads`: attachment id, name, SHA-256.
    raw: Vec<(i64, String, String)>,
    /// Storage uploads and two-stage PUTs: path, SHA-256.
    files: Vec<(String, String)>,
    two_stage: usize,
    problems: Vec<String>,
}

/// One client: raw uploads, storage uploads or two-stage uploads (by `kind`), to the two nodes in
/// turn, until told to stop. A request that fails in transport (its node was killed) is forgotten.
async fn work(
    kind: usize,
    worker: usize,
    bases: [String; 2],
    token: String,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Acks>>,
) {
    let http = client(60);
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let base = &bases[n % 2];
        let user = User {
            base: base.clone(),
            http: http.clone(),
            token: token.clone(),
            username: "admin".into(),
        };
        let seed = (worker as u64) << 32 | n as u64;
        let problem = |what: &str, status: u16, text: &str| {
            (status >= 500 || status == 0).then(|| format!("{what} answered {status}: {text}"))
        };
        match kind {
            0 => {
                let len = 2 * MIB + (seed as usize * 7919) % (2 * MIB);
                let bytes = pseudo_random_bytes(len, seed);
                let sha = sha256_hex(&bytes);
                let name = format!("r{worker}-{n}.bin");
                if let Ok((status, text)) = raw_upload(&user, &name, bytes).await {
                    let mut acks = acks.lock().unwrap();
                    match text.parse::<i64>() {
                        Ok(id) if status == 200 => acks.raw.push((id, name, sha)),
                        _ => acks
                            .problems
                            .extend(problem("POST /uploads", status, &text)),
                    }
                }
            }
            1 => {
                let len = 256 * KIB + (seed as usize * 7919) % (768 * KIB);
                let bytes = pseudo_random_bytes(len, seed);
                let sha = sha256_hex(&bytes);
                let path = format!("s{worker}-{n}.bin");
                if let Ok((status, text)) = storage_upload(&user, "team", &path, bytes).await {
                    let mut acks = acks.lock().unwrap();
                    if status == 201 {
                        acks.files.push((path, sha));
                    } else {
                        acks.problems
                            .extend(problem("a storage upload", status, &text));
                    }
                }
            }
            _ => {
                let len = 64 * KIB + (seed as usize * 7919) % (960 * KIB);
                let bytes = pseudo_random_bytes(len, seed);
                let sha = sha256_hex(&bytes);
                let path = format!("t{worker}-{n}.bin");
                // Declared on a node, the bytes sent straight to the object store; the file is
                // recorded by whichever node finds them first.
                let url = match declare(&user, "team", &path, len).await {
                    Ok(url) => url,
                    Err(e) => {
                        let status = e.split(' ').next().and_then(|s| s.parse().ok());
                        if let Some(status) = status {
                            acks.lock().unwrap().problems.extend(problem(
                                "a two-stage declaration",
                                status,
                                &e,
                            ));
                        }
                        continue;
                    }
                };
                if let Ok((status, text)) = put_stage(&http, &url, bytes).await {
                    let mut acks = acks.lock().unwrap();
                    if (200..300).contains(&status) {
                        acks.files.push((path, sha));
                        acks.two_stage += 1;
                    } else {
                        acks.problems
                            .extend(problem("a two-stage PUT", status, &text));
                    }
                }
            }
        }
    }
}

/// SIGKILL of one of two nodes while raw uploads of a few MiB, storage uploads, two-stage PUTs and
/// webhook deliveries are in flight: every acknowledged upload is whole on the survivor, every
/// file's `StorageFile.Created` delivery reaches the receiver (the survivor takes over the dead
/// node's jobs once their lease runs out), and no delivery id is ever in flight twice at once. A
/// delivery id arrives again only after its earlier attempt was cut off or was the dead node's
/// (SPEC §13: at least once, again only after a failure or the sender's death).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_traffic_loses_nothing_acknowledged_and_its_deliveries_are_taken_over() {
    let mut cluster = Cluster::new().await;
    let mut a = cluster.node_with(&["--fetch-allow", "127.0.0.1"]);
    let b = cluster.node_with(&["--fetch-allow", "127.0.0.1"]);
    let admin = a.admin().await;
    let admin_b = on(&admin, &b, 60);

    let (rx, hook_url) = Receiver::start().await;
    let app = new_app_with(&admin, json!({"name": "Hooks", "endpointUri": hook_url})).await;
    let r = admin
        .patch(&app.path("/authorizations/authorized-rights"))
        .json(&json!({"contextIdentifier": "global",
                      "rights": [{"rightCode": "Space.Files.Read", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = admin
        .post(&app.path("/webhooks"))
        .json(&json!({"name": "files",
                      "subscriptions": [{"name": "f", "eventTypes": ["StorageFile.Created"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    create_space(&admin, "team", None).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let bases = [a.base.clone(), b.base.clone()];
    let workers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(work(
                w % 3,
                w,
                bases.clone(),
                admin.token.clone(),
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();

    // Kill once every kind of work has been acknowledged and deliveries are being sent.
    let busy = wait_until(60, || {
        let acks = acks.lock().unwrap();
        acks.raw.len() >= 3 && acks.files.len() >= 6 && acks.two_stage >= 2 && rx.in_flight() >= 2
    })
    .await;
    a.kill9();
    // Reaped: every attempt of the dead node started before this (a request it had sent may still
    // reach the receiver's handler a moment later on a loaded machine, hence the margin).
    let killed_at = Instant::now() + Duration::from_secs(1);
    // The clients go on against the survivor for a moment, past the margin.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(acks.problems.is_empty(), "{:#?}", acks.problems);
    assert!(
        busy,
        "work never got going: {} raw, {} files, {} in flight",
        acks.raw.len(),
        acks.files.len(),
        rx.in_flight()
    );

    // Every acknowledged upload is whole on the survivor.
    for (id, name, sha) in &acks.raw {
        let (status, bytes) = read_attachment(&admin_b, *id, name).await;
        assert_eq!(status, 200, "attachment {id} {name}");
        assert_eq!(&sha256_hex(&bytes), sha, "attachment {id} {name}");
    }
    // A two-stage upload's bytes were acknowledged by the object store; the file shows once a node
    // records it. One the dead node was recording waits for its claim to lapse (a minute).
    for (path, sha) in &acks.files {
        let deadline = Instant::now() + Duration::from_secs(90);
        let (status, bytes) = loop {
            let (status, bytes) = read_file(&admin_b, "team", path).await;
            if status != 404 || Instant::now() > deadline {
                break (status, bytes);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(status, 200, "{path}");
        assert_eq!(&sha256_hex(&bytes), sha, "{path}");
    }

    // Every acknowledged file's event is delivered (and answered), within the dead node's job
    // lease (60 s) and a little more.
    let delivered = |paths: &[(String, String)]| {
        let hits = rx.hits();
        paths
            .iter()
            .filter(|(p, _)| !hits.iter().any(|h| &h.path == p && h.answered))
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()
    };
    wait_until(100, || delivered(&acks.files).is_empty()).await;
    let missing = delivered(&acks.files);
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // Whatever is still being sent ends.
    assert!(wait_until(30, || rx.in_flight() == 0).await);

    // No delivery id in flight twice at once; one id is one event.
    let mut by_id: BTreeMap<String, Vec<Hit>> = BTreeMap::new();
    for hit in rx.hits() {
        assert!(!hit.id.is_empty(), "a delivery without webhook-id: {hit:?}");
        by_id.entry(hit.id.clone()).or_default().push(hit);
    }
    let hits = rx.hits();
    eprintln!(
        "acknowledged: {} raw uploads, {} files ({} two-stage); {} delivery requests for {} ids, \
         {} cut off by the kill, {} ids sent again",
        acks.raw.len(),
        acks.files.len(),
        acks.two_stage,
        hits.len(),
        by_id.len(),
        hits.iter().filter(|h| !h.answered).count(),
        by_id.values().filter(|h| h.len() > 1).count()
    );
    for (id, mut hits) in by_id {
        hits.sort_by_key(|h| h.start);
        for pair in hits.windows(2) {
            let (first, next) = (&pair[0], &pair[1]);
            assert_eq!(first.path, next.path, "delivery {id}: one id, one event");
            let end = first.end.expect("every request ended");
            assert!(
                end <= next.start,
                "delivery {id} was in flight twice at once: {hits:#?}"
            );
            // Sent again: only after an attempt cut off by the kill, or one the dead node made
            // (answered, but killed before it could record so).
            assert!(
                first.start <= killed_at,
                "delivery {id} sent again after a successful attempt: {hits:#?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// A quota raced from two nodes
// ---------------------------------------------------------------------------------------------------

/// 100 uploads of 64 KiB into a space with room for 40 and a half, sent at once, half to each node:
/// exactly 40 are accepted (the quota is neither exceeded nor left unused), the others answer 413
/// `limits-reached`, and the space's usage is the size of the files it holds, with no reservation
/// left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_raced_from_two_nodes_is_never_exceeded() {
    const SIZE: usize = 64 * KIB;
    const FIT: usize = 40;
    let quota = (FIT * SIZE + SIZE / 2) as u64;
    let mut cluster = Cluster::new().await;
    let a = cluster.node();
    let b = cluster.node();
    let admin_a = on(&a.admin().await, &a, 60);
    let admin_b = on(&admin_a, &b, 60);
    create_space(&admin_a, "q", Some(quota)).await;

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let user = if i % 2 == 0 {
                admin_a.clone()
            } else {
                admin_b.clone()
            };
            tokio::spawn(async move {
                let bytes = pseudo_random_bytes(SIZE, 1000 + i);
                storage_upload(&user, "q", &format!("f{i}.bin"), bytes).await
            })
        })
        .collect();
    let mut accepted = 0;
    let mut problems = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((201, _)) => accepted += 1,
            Ok((status, text)) => {
                if let Err(e) = is_error(status, &text, 413, "limits-reached") {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!((accepted * SIZE) as u64 <= quota, "{accepted} accepted");
    assert_eq!(accepted, FIT, "the quota's room is used");

    for user in [&admin_a, &admin_b] {
        let files = top_files(user, "q").await;
        let stored: u64 = files.iter().map(|(_, size)| size).sum();
        assert_eq!(files.len(), accepted, "{files:?}");
        assert_eq!(stored, (accepted * SIZE) as u64);
        let space = space_json(user, "q").await;
        assert_eq!(space["usedBytes"], stored, "{space}");
        assert_eq!(reserved_bytes(user, "q").await, 0);
    }
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL restarted under traffic
// ---------------------------------------------------------------------------------------------------

/// One request of the database test: when it was sent and answered, and what it got.
#[derive(Debug)]
struct Exchange {
    sent: Instant,
    done: Instant,
    outcome: Result<(u16, String), String>,
    /// An acknowledged upload: attachment id, name, SHA-256.
    acked: Option<(i64, String, String)>,
}

/// PostgreSQL (a server of the test's own) stopped and started again while two nodes take uploads:
/// every request answered while it is down is 503 `database-unavailable` with the SPEC §4 body, in
/// bounded time (the clients give up after 30 s); the nodes, never restarted, take uploads again as
/// soon as it is back; and every upload acknowledged before, during or after is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_traffic_answers_503_then_recovers_losing_nothing() {
    let pg = OwnPostgres::start();
    let mut cluster = Cluster::on(Some(&pg.url), None).await;
    let a = cluster.node();
    let b = cluster.node();
    let admin = on(&a.admin().await, &a, 30);
    let users = [admin.clone(), on(&admin, &b, 30)];

    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|w| {
            let (user, stop, log) = (users[w % 2].clone(), stop.clone(), log.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let seed = (w as u64) << 32 | n;
                    let bytes =
                        pseudo_random_bytes(64 * KIB + (n as usize * 997) % (192 * KIB), seed);
                    let sha = sha256_hex(&bytes);
                    let name = format!("p{w}-{n}.bin");
                    let sent = Instant::now();
                    let outcome = raw_upload(&user, &name, bytes).await;
                    let acked = match &outcome {
                        Ok((200, text)) => text.parse().ok().map(|id| (id, name, sha)),
                        _ => None,
                    };
                    log.lock().unwrap().push(Exchange {
                        sent,
                        done: Instant::now(),
                        outcome,
                        acked,
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    let count = |after: Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|e| e.sent >= after)
            .count()
    };

    let begin = Instant::now();
    assert!(wait_until(30, || count(begin) >= 8).await, "no traffic");
    pg.pause();
    let down = Instant::now();
    // A request of each kind while it is down, on each node: an upload, a read, a listing (at
    // once: each may wait for a connection up to the pool's time-out).
    let mut probes = Vec::new();
    for user in &users {
        for (what, request) in [
            ("upload", user.post("/uploads?name=x.txt").body("x")),
            ("read", user.get("/api/v1/auth/me")),
            ("listing", user.get("/api/v1/spaces")),
        ] {
            probes.push(async move {
                let r = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{what} while the database is down: {e}"));
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                if let Err(e) = is_error(status, &text, 503, "database-unavailable") {
                    panic!("{what} while the database is down: {e}");
                }
            });
        }
    }
    futures_util::future::join_all(probes).await;
    assert!(
        wait_until(40, || count(down) >= 4).await,
        "the clients got no answer while the database was down"
    );
    let resuming = Instant::now();
    pg.resume();
    let up = Instant::now();
    assert!(
        wait_until(40, || log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.sent >= up && e.acked.is_some())
            .count()
            >= 8)
        .await,
        "uploads did not succeed again after the database came back"
    );
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut problems = Vec::new();
    for e in &log {
        let during = e.sent >= down && e.done <= resuming;
        let after = e.sent >= up;
        match &e.outcome {
            Ok((200, _)) if e.acked.is_some() && !during => {}
            Ok((status, text)) if !after => {
                if let Err(bad) = is_error(*status, text, 503, "database-unavailable") {
                    problems.push(format!("around the restart: {bad}"));
                }
            }
            Ok((status, text)) => problems.push(format!("after the restart: {status} {text}")),
            Err(err) => problems.push(format!("no answer (a hang or a broken connection): {err}")),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let refused = log
        .iter()
        .filter(|e| matches!(e.outcome, Ok((503, _))))
        .count();
    assert!(refused >= 4, "{refused} answered 503");

    // Nothing acknowledged is lost, whichever node took it and reads it.
    for (i, (id, name, sha)) in log.iter().filter_map(|e| e.acked.as_ref()).enumerate() {
        let (status, bytes) = read_attachment(&users[i % 2], *id, name).await;
        assert_eq!(status, 200, "attachment {id}");
        assert_eq!(&sha256_hex(&bytes), sha, "attachment {id}");
    }
}

// ---------------------------------------------------------------------------------------------------
// The object store unreachable
// ---------------------------------------------------------------------------------------------------

/// Rows of a table of the installation's database.
async fn rows(database_url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    n
}

/// The S3 server (one of the test's own) stopped: uploads of every kind and reads answer 503
/// `storage-unavailable` with the SPEC §4 body on both nodes, and nothing is recorded for them (no
/// attachment, no storage entry, no usage); started again on the same directory and port, the same
/// requests succeed (a two-stage PUT that failed is retried with its URL) and what was stored
/// before is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_object_store_answers_503_and_records_nothing() {
    let s3 = OwnS3::start();
    let mut cluster = Cluster::on(None, Some(&s3.server)).await;
    let a = cluster.node();
    let b = cluster.node();
    let admin = on(&a.admin().await, &a, 90);
    let users = [admin.clone(), on(&admin, &b, 90)];
    create_space(&admin, "team", None).await;
    let before = pseudo_random_bytes(300 * KIB, 1);
    let (status, text) = raw_upload(&admin, "before.bin", before.clone())
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let before_id: i64 = text.parse().unwrap();
    let (status, text) = storage_upload(&admin, "team", "before.bin", before.clone())
        .await
        .unwrap();
    assert_eq!(status, 201, "{text}");

    let tables = ["attachments", "storage_entries", "blobs"];
    let mut counted = HashMap::new();
    for table in tables {
        counted.insert(table, rows(&cluster.database_url, table).await);
    }
    let used = space_json(&admin, "team").await["usedBytes"].clone();

    s3.pause();
    let bytes = pseudo_random_bytes(MIB + 5, 2);
    let mut put_urls = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let unavailable = |what: &str, outcome: Result<(u16, String), String>| {
            let (status, text) = outcome.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
            if let Err(e) = is_error(status, &text, 503, "storage-unavailable") {
                panic!("{what} while the store is down: {e}");
            }
        };
        unavailable(
            "POST /uploads",
            raw_upload(user, &format!("down{i}.bin"), bytes.clone()).await,
        );
        unavailable(
            "a storage upload",
            storage_upload(user, "team", &format!("down{i}.bin"), bytes.clone()).await,
        );
        let url = declare(user, "team", &format!("two{i}.bin"), bytes.len())
            .await
            .unwrap();
        // The PUT goes to the object store itself, which is down: no answer at all.
        let sent = put_stage(&user.http, &url, bytes.clone()).await;
        assert!(
            sent.is_err(),
            "a two-stage PUT reached a stopped store: {sent:?}"
        );
        put_urls.push(url);
        let (status, body) = read_attachment(user, before_id, "before.bin").await;
        let text = String::from_utf8_lossy(&body);
        if let Err(e) = is_error(status, &text, 503, "storage-unavailable") {
            panic!("a read while the store is down: {e}");
        }
    }
    // Nothing was recorded for them.
    for table in tables {
        assert_eq!(
            rows(&cluster.database_url, table).await,
            counted[table],
            "{table}"
        );
    }
    for user in &users {
        assert_eq!(space_json(user, "team").await["usedBytes"], used);
        let files = top_files(user, "team").await;
        assert_eq!(files, [("before.bin".to_string(), before.len() as u64)]);
    }

    s3.resume();
    for (i, user) in users.iter().enumerate() {
        let (status, text) = raw_upload(user, &format!("up{i}.bin"), bytes.clone())
            .await
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let id: i64 = text.parse().unwrap();
        let (status, text) = storage_upload(user, "team", &format!("up{i}.bin"), bytes.clone())
            .await
            .unwrap();
        assert_eq!(status, 201, "{text}");
        // The PUT that failed is sent again; the other node records the file when it is read.
        let other = &users[1 - i];
        let (status, text) = put_stage(&other.http, &put_urls[i], bytes.clone())
            .await
            .unwrap();
        assert!((200..300).contains(&status), "{status} {text}");
        for (status, got) in [
            read_attachment(other, id, &format!("up{i}.bin")).await,
            read_file(other, "team", &format!("up{i}.bin")).await,
            read_file(other, "team", &format!("two{i}.bin")).await,
        ] {
            assert_eq!(status, 200);
            assert_eq!(sha256_hex(&got), sha256_hex(&bytes));
        }
        let (status, got) = read_attachment(user, before_id, "before.bin").await;
        assert_eq!((status, sha256_hex(&got)), (200, sha256_hex(&before)));
        let (status, got) = read_file(user, "team", "before.bin").await;
        assert_eq!((status, sha256_hex(&got)), (200, sha256_hex(&before)));
    }
}
