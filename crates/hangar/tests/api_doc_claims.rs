//! What docs/api.md says in the places issue 11 found drifting, checked against the real server: spaces
//! count their files' bytes and enforce their quota, only a message's author (or an admin) attaches
//! files to it, and JSON of the wrong shape is 400, not 422 (SPEC §4).

mod common;
use common::*;

use serde_json::json;

#[tokio::test]
async fn the_documented_answers_hold() {
    let server = Server::start();
    let admin = server.admin().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;

    // Spaces have storage and a quota that is enforced.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "q1", "name": "Q", "quotaBytes": 10, "nonsense": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "q1", "name": "Q", "quotaBytes": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post("/api/v1/space/q1/storage/YS50eHQ/upload")
        .header("content-type", "text/plain")
        .body("123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let space = expect_json(admin.get("/api/v1/spaces/q1").send().await.unwrap(), 200).await;
    assert_eq!(space["usedBytes"], 6, "{space}");
    let r = admin
        .post("/api/v1/space/q1/storage/Yi50eHQ/upload")
        .header("content-type", "text/plain")
        .body("12345")
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;

    // Only the author (or an admin) attaches files to a message; other channel members get 403.
    let channel = alice.channel("c", &["bob"]).await;
    let message = alice.message(channel, "hello").await;
    let form = || {
        reqwest::multipart::Form::new().part(
            "files",
            reqwest::multipart::Part::bytes(b"abc".to_vec())
                .file_name("a.txt")
                .mime_str("text/plain")
                .unwrap(),
        )
    };
    let path = format!("/api/v1/messages/{message}/attachments");
    let r = bob.post(&path).multipart(form()).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let outsider = server.member("carol").await;
    let r = outsider.post(&path).multipart(form()).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = alice.post(&path).multipart(form()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = admin.post(&path).multipart(form()).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // An unknown field in a JSON body is bad input: 400 bad-json (422 is for checksum mismatches).
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "dave", "password": "dave-password", "colour": "red"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
}
