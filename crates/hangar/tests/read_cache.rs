//! The read caches (issue 15, SPEC §3, §12, §13): a token, a member or an attachment that a node has
//! cached stops working at once on the node where it is revoked, disabled or deleted, and on every
//! other node as soon as it hears of the change. With `HANGAR_TEST_BACKEND=two-nodes` each test
//! talks to both nodes directly; on one node the "other nodes" part is empty.

mod common;
use common::*;

use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `user` talking to one node directly (not through the balancer).
fn on(user: &User, addr: &str) -> User {
    User {
        base: format!("http://{addr}"),
        ..user.clone()
    }
}

/// Waits until every node uses its read caches (a PostgreSQL node does once its listener hears
/// the other nodes).
async fn caches_in_use(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.read_caches().iter().all(|c| c.is_enabled()) {
        assert!(
            Instant::now() < deadline,
            "the read caches are not in use 10 s after start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` to a node until it answers `status`, for at most 5 s; panics otherwise.
async fn answers_within<F, Fut>(what: &str, status: u16, mut request: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = request().await.unwrap().status().as_u16();
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got} after 5 s, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second personal token of `user`: (id, token).
async fn second_token(user: &User) -> (i64, String) {
    let r = user
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap().to_string(),
    )
}

async fn me_status(user: &User) -> u16 {
    user.get("/api/v1/auth/me")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_where_revoked_and_soon_everywhere() {
    let app = TestApp::start().await;
    caches_in_use(&app).await;
    let ann = app.member("ann").await;
    let (id, token) = second_token(&ann).await;
    let second = User {
        token,
        ..ann.clone()
    };
    let nodes = app.node_addrs();
    for addr in &nodes {
        // Twice: the second answer comes from the cache.
        assert_eq!(me_status(&on(&second, addr)).await, 200);
        assert_eq!(me_status(&on(&second, addr)).await, 200);
    }
    for cache in app.read_caches() {
        assert!(cache.sizes().0 >= 1, "every node has cached a caller");
    }
    let r = on(&ann, &nodes[0])
        .delete(&format!("/api/v1/me/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = on(&second, &nodes[0])
        .get("/api/v1/auth/me")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
    for addr in &nodes[1..] {
        let other = on(&second, addr);
        answers_within("the revoked token on another node", 401, || {
            other.get("/api/v1/auth/me").send()
        })
        .await;
    }
    // The token that revoked it still works everywhere.
    for addr in &nodes {
        assert_eq!(me_status(&on(&ann, addr)).await, 200);
    }
}

#[tokio::test]
async fn a_disabled_member_and_a_reset_password_end_cached_tokens() {
    let app = TestApp::start().await;
    caches_in_use(&app).await;
    let admin = app.admin().await;
    let ann = app.member("ann").await;
    let bob = app.member("bob").await;
    let nodes = app.node_addrs();
    for addr in &nodes {
        for user in [&ann, &bob] {
            assert_eq!(me_status(&on(user, addr)).await, 200);
            assert_eq!(me_status(&on(user, addr)).await, 200);
        }
    }
    let r = on(&admin, &nodes[0])
        .patch("/api/v1/members/ann")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = on(&admin, &nodes[0])
        .patch("/api/v1/members/bob")
        .json(&json!({"password": "a new password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for user in [&ann, &bob] {
        assert_eq!(
            me_status(&on(user, &nodes[0])).await,
            401,
            "{}",
            user.username
        );
    }
    for addr in &nodes[1..] {
        for user in [&ann, &bob] {
            let other = on(user, addr);
            answers_within(&format!("{} on another node", user.username), 401, || {
                other.get("/api/v1/auth/me").send()
            })
            .await;
        }
    }
}

#[tokio::test]
async fn a_deleted_attachment_is_not_served_from_the_cache() {
    let app = TestApp::start().await;
    caches_in_use(&app).await;
    let ann = app.member("ann").await;
    let bytes = pseudo_random_bytes(4096, 15);
    let id = ann
        .upload("small.bin", "application/octet-stream", &bytes)
        .await;
    let path = format!("/api/v1/attachments/{id}/small.bin");
    let nodes = app.node_addrs();
    for addr in &nodes {
        for _ in 0..2 {
            let r = on(&ann, addr).get(&path).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..]);
        }
    }
    for cache in app.read_caches() {
        assert!(cache.sizes().1 >= 1, "every node has cached the attachment");
    }
    let r = on(&ann, &nodes[0])
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = on(&ann, &nodes[0]).get(&path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    for addr in &nodes[1..] {
        let other = on(&ann, addr);
        let path = path.clone();
        answers_within("the deleted attachment on another node", 404, || {
            other.get(&path).send()
        })
        .await;
    }
}

#[tokio::test]
async fn a_reader_through_a_deleted_message_loses_the_attachment() {
    let app = TestApp::start().await;
    caches_in_use(&app).await;
    let ann = app.member("ann").await;
    let bob = app.member("bob").await;
    let channel = ann.channel("room", &["bob"]).await;
    let attachment = ann.upload("note.txt", "text/plain", b"for bob").await;
    let r = ann
        .post(&format!("/api/v1/channels/{channel}/messages"))
        .json(&json!({
            "text": "see attached",
            "attachments": [{"className": "FileAttachment", "id": attachment.to_string()}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let message: Value = r.json().await.unwrap();
    let message_id = message["messageId"].as_i64().unwrap();
    let path = format!("/api/v1/attachments/{attachment}/note.txt");
    let nodes = app.node_addrs();
    for addr in &nodes {
        for _ in 0..2 {
            let r = on(&bob, addr).get(&path).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.unwrap().as_ref(), b"for bob");
        }
    }
    for cache in app.read_caches() {
        assert!(cache.sizes().2 >= 1, "every node knows bob reads it");
    }
    let r = on(&ann, &nodes[0])
        .delete(&format!("/api/v1/channels/{channel}/messages/{message_id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = on(&bob, &nodes[0]).get(&path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    for addr in &nodes[1..] {
        let other = on(&bob, addr);
        let path = path.clone();
        answers_within("the unlinked attachment on another node", 404, || {
            other.get(&path).send()
        })
        .await;
    }
    // Its uploader still reads it.
    assert_eq!(ann.get(&path).send().await.unwrap().status(), 200);
}
