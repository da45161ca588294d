//! The server starts on port 0, reports where it listens, answers health checks and stops on SIGTERM.

mod common;
use common::*;

#[tokio::test]
async fn starts_reports_its_port_and_stops_cleanly_on_sigterm() {
    let mut server = Server::start();
    assert!(
        !server.addr.ends_with(":0"),
        "the real port is printed: {}",
        server.addr
    );
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let r = reqwest::get(server.url("/no/such/route")).await.unwrap();
    expect_error(r, 404, "not-found").await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let server = Server::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hangar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("another hangar process"), "{text}");
    // The first server is untouched.
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tokens_made_with_a_token_never_outlive_it_and_read_tokens_cannot_publish() {
    let server = Server::start();
    let admin = server.admin().await;
    let soon = hangar_core::now_ms() + 3_600_000;
    let r = admin
        .post("/api/v1/me/tokens")
        .json(&serde_json::json!({"name": "short", "expires": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let short = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/me/tokens"))
        .bearer_auth(&short)
        .json(&serde_json::json!({"name": "forever"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let minted: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        minted["expires"], soon,
        "capped at the creating token's expiry"
    );

    let channel = admin.channel("c", &[]).await;
    let id = admin.upload("a.txt", "text/plain", b"abc").await;
    let r = admin
        .post("/api/http/chats/messages/send-message")
        .json(&serde_json::json!({
            "channel": format!("channel:id:{channel}"),
            "content": {"className": "ChatMessage.Text", "text": "x"},
            "attachments": [{"className": "FileAttachment", "id": id.to_string()}],
        }))
        .send()
        .await
        .unwrap();
    let message = r.json::<serde_json::Value>().await.unwrap()["messageId"]
        .as_i64()
        .unwrap();
    let r = admin
        .post("/api/v1/me/tokens")
        .json(&serde_json::json!({"name": "reader", "scope": "read"}))
        .send()
        .await
        .unwrap();
    let reader = r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = server.url(&format!(
        "/api/http/uploads/chat/public-url/channel:id:{channel}/id:{message}/{id}"
    ));
    let r = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let meta: serde_json::Value = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["public"], false, "a refused publish changes nothing");
}
