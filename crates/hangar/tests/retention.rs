//! Lifecycle and limits (SPEC §9.5, §1 `--user-quota` and `--unattached-ttl`): deleting a message or
//! an issue releases its attachments, unattached attachments expire only with a TTL (with their
//! events), a member's attachments never exceed their quota in any upload mode or under concurrency,
//! and `/api/v1/limits` tells the member where they stand. Run on every backend.

mod common;
use common::*;

use serde_json::{json, Value};
use std::time::Duration;

/// Posts a message with these attachments (Space-style links); answers the message id.
async fn message_with(user: &User, channel: i64, ids: &[i64]) -> i64 {
    let attachments: Vec<Value> = ids
        .iter()
        .map(|id| json!({"className": "FileAttachment", "id": id.to_string()}))
        .collect();
    let r = user
        .post(&format!("/api/v1/channels/{channel}/messages"))
        .json(&json!({"text": "files", "attachments": attachments}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["messageId"]
        .as_i64()
        .unwrap()
}

async fn status_of(user: &User, id: i64) -> u16 {
    let r = user
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn limits(user: &User) -> Value {
    let r = user.get("/api/v1/limits").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn deleting_a_message_releases_its_attachments_to_their_uploader() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let channel = alice.channel("general", &["bob"]).await;
    let id = alice
        .upload("notes.txt", "text/plain", b"meeting notes")
        .await;
    let message = message_with(&alice, channel, &[id]).await;
    assert_eq!(
        status_of(&bob, id).await,
        200,
        "bob reads it through the message"
    );

    // Only the author (or an admin) deletes a message; a wrong channel or id is 404.
    let path = format!("/api/v1/channels/{channel}/messages/{message}");
    expect_error(bob.delete(&path).send().await.unwrap(), 403, "forbidden").await;
    let other = alice.channel("other", &[]).await;
    let r = alice
        .delete(&format!("/api/v1/channels/{other}/messages/{message}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = alice
        .delete(&format!("/api/v1/channels/{channel}/messages/x1"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-message").await;

    let r = alice.delete(&path).send().await.unwrap();
    assert_eq!(r.status(), 204);
    expect_error(alice.delete(&path).send().await.unwrap(), 404, "not-found").await;
    let r = alice
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");

    // The attachment stays, readable by its uploader only.
    assert_eq!(status_of(&bob, id).await, 404);
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/notes.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"meeting notes");

    // An admin may delete anyone's message.
    let id2 = bob.upload("b.txt", "text/plain", b"bob's").await;
    let second = message_with(&bob, channel, &[id2]).await;
    let r = app
        .admin()
        .await
        .delete(&format!("/api/v1/channels/{channel}/messages/id:{second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(status_of(&bob, id2).await, 200);
    assert_eq!(status_of(&alice, id2).await, 404);
}

#[tokio::test]
async fn deleting_an_issue_releases_its_attachments() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let r = alice
        .post("/api/http/projects")
        .json(&json!({"key": "PRJ", "name": "Project", "members": ["bob"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = alice
        .upload("trace.txt", "text/plain", b"stack trace")
        .await;
    let r = alice
        .post("/api/http/projects/key:PRJ/planning/issues")
        .json(&json!({"title": "It breaks", "status": "Open",
            "attachments": [{"className": "FileAttachment", "id": id.to_string()}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(status_of(&bob, id).await, 200);

    let path = "/api/http/projects/key:PRJ/planning/issues/key:PRJ-T-1";
    expect_error(bob.delete(path).send().await.unwrap(), 403, "forbidden").await;
    let r = alice
        .delete("/api/http/projects/key:PRJ/planning/issues/key:PRJ-T-9")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    assert_eq!(alice.delete(path).send().await.unwrap().status(), 204);
    expect_error(alice.get(path).send().await.unwrap(), 404, "not-found").await;
    assert_eq!(status_of(&bob, id).await, 404);
    assert_eq!(status_of(&alice, id).await, 200);
}

#[tokio::test]
async fn unattached_attachments_expire_after_the_ttl_with_their_event() {
    // A TTL of a few seconds: `released` must outlive its release, the jobs run and the checks
    // below on a loaded machine (on two nodes, through PostgreSQL and S3).
    let app = TestApp::start_with(&["--unattached-ttl", "4s"]).await;
    let alice = app.member("alice").await;
    let channel = alice.channel("general", &[]).await;
    let loose = alice.upload("loose.txt", "text/plain", b"loose").await;
    let kept = alice.upload("kept.txt", "text/plain", b"kept").await;
    let released = alice
        .upload("released.txt", "text/plain", b"released")
        .await;
    message_with(&alice, channel, &[kept]).await;
    let message = message_with(&alice, channel, &[released]).await;
    tokio::time::sleep(Duration::from_millis(4200)).await;
    // Released just now: its TTL counts from the release.
    let r = alice
        .delete(&format!("/api/v1/channels/{channel}/messages/{message}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.run_jobs().await;
    assert_eq!(status_of(&alice, loose).await, 404, "expired");
    assert_eq!(status_of(&alice, kept).await, 200, "attached: kept");
    assert_eq!(status_of(&alice, released).await, 200, "released < 4 s ago");
    let events = app
        .state()
        .storage
        .recent_events(20)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "Attachment.Deleted")
        .map(|e| e.payload["attachmentId"].as_i64())
        .collect::<Vec<_>>();
    assert_eq!(events, vec![Some(loose)]);
}

#[tokio::test]
async fn without_a_ttl_unattached_attachments_stay() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let id = alice.upload("loose.txt", "text/plain", b"loose").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.run_jobs().await;
    assert_eq!(status_of(&alice, id).await, 200);
}

#[tokio::test]
async fn a_members_attachments_stay_within_the_user_quota_in_every_mode() {
    let app = TestApp::start_with(&["--user-quota", "100"]).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let l = limits(&alice).await;
    assert_eq!(l["user"], json!({"quotaBytes": 100, "usedBytes": 0}), "{l}");

    let first = alice
        .upload("a.bin", "application/octet-stream", &[1; 60])
        .await;
    let r = alice
        .post("/uploads?name=b.bin")
        .header("content-type", "application/octet-stream")
        .body(vec![2u8; 41])
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    assert_eq!(limits(&alice).await["user"]["usedBytes"], 60);
    // Each member has a quota of their own.
    bob.upload("b.bin", "application/octet-stream", &[2; 41])
        .await;

    // Multipart into a message counts every file.
    let channel = alice.channel("general", &[]).await;
    let message = alice.message(channel, "files").await;
    let form = reqwest::multipart::Form::new()
        .part(
            "files",
            reqwest::multipart::Part::bytes(vec![3u8; 30]).file_name("c.bin"),
        )
        .part(
            "files",
            reqwest::multipart::Part::bytes(vec![4u8; 30]).file_name("d.bin"),
        );
    let r = alice
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;

    // A resumable upload is refused at creation when its length does not fit.
    let r = alice
        .post("/api/v1/tus")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "41")
        .header("upload-metadata", "filename ZS5iaW4=")
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    // One that fits holds its room while it is under way.
    let r = alice
        .post("/api/v1/tus")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "40")
        .header("upload-metadata", "filename ZS5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(limits(&alice).await["user"]["usedBytes"], 100);
    let r = alice
        .post("/uploads?name=f.bin")
        .header("content-type", "application/octet-stream")
        .body(vec![5u8; 1])
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 413, "limits-reached").await;
    assert_eq!(body["quotaBytes"], 100, "{body}");

    // Deleting frees room.
    let r = alice
        .delete(&format!("/api/v1/attachments/{first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(limits(&alice).await["user"]["usedBytes"], 40);
    alice
        .upload("g.bin", "application/octet-stream", &[6; 60])
        .await;
    assert_eq!(limits(&alice).await["user"]["usedBytes"], 100);
}

#[tokio::test]
async fn concurrent_uploads_never_exceed_the_user_quota() {
    let app = TestApp::start_with(&["--user-quota", "1000"]).await;
    let alice = app.member("alice").await;
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let r = alice
                .post(&format!("/uploads?name=f{i}.bin"))
                .header("content-type", "application/octet-stream")
                .body(vec![i; 150])
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            413 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 6, "1000 bytes hold six files of 150");
    assert_eq!(limits(&alice).await["user"]["usedBytes"], 900);
}

#[tokio::test]
async fn without_a_user_quota_limits_say_unlimited() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    alice
        .upload("a.bin", "application/octet-stream", &[1; 10])
        .await;
    let l = limits(&alice).await;
    assert_eq!(
        l["user"],
        json!({"quotaBytes": null, "usedBytes": 10}),
        "{l}"
    );
}
