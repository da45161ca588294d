//! Slow and greedy clients (SPEC §9.2, §11; issue 11 item 5): a client that stops reading a response
//! is disconnected after the send time-out, and past `--max-connections` new connections wait in the
//! listen queue instead of taking more descriptors. Run against the real binary, whose connection
//! loop these are.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads until the server ends the connection; answers the bytes read. Panics when the server keeps
/// the connection open and silent for `patience`.
fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> usize {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("the server kept the connection open ({e}) after {total} bytes"),
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let server = Server::start_with(&["--send-timeout", "2s"]);
    let alice = server.member("alice").await;
    let big = pseudo_random_bytes(64 << 20, 7);
    let id = alice
        .upload("big.bin", "application/octet-stream", &big)
        .await;

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET /api/v1/attachments/{id}/big.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.addr, alice.token
    )
    .unwrap();
    // Read nothing for well past the time-out: the socket buffers fill and the server's writes wait.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let received = read_until_closed(&mut stream, Duration::from_secs(30));
    assert!(
        received < big.len(),
        "the whole file arrived ({received} bytes): the connection was not dropped"
    );
    assert!(received > 0, "not even the headers arrived");

    // A client that reads keeps its download, however long it takes.
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), big.len());
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_in_the_listen_queue() {
    let server = Server::start_with(&["--max-connections", "2"]);
    // Two connections that send nothing hold both places.
    let first = TcpStream::connect(&server.addr).unwrap();
    let _second = TcpStream::connect(&server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // A third is queued by the kernel: its request gets no answer while the others stay.
    let mut third = TcpStream::connect(&server.addr).unwrap();
    write!(
        third,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 512];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served past --max-connections 2: {other:?}"),
    }

    // One place frees: the queued connection is served.
    drop(first);
    let started = Instant::now();
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "after {:?}: {answer:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with(&["--idle-timeout", "1s"]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .unwrap();
    // The answer arrives, then the keep-alive connection ends once idle (well before the 30 s
    // allowed for a request head).
    let received = read_until_closed(&mut stream, Duration::from_secs(15));
    assert!(received > 0, "no answer before the connection ended");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start_with(&["--idle-timeout", "1s"]);
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = axum::http::Request::get(format!("http://{}/healthz", server.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // The client keeps its side open (and answers pings); the server ends the idle connection.
    let ended = tokio::time::timeout(Duration::from_secs(15), connection).await;
    assert!(
        ended.is_ok(),
        "the server kept an idle HTTP/2 connection open past the idle time-out"
    );
    drop(client);
}
