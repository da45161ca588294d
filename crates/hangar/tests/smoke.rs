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
