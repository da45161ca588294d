//! Share links (SPEC §9.4) over real HTTP, on the backend `HANGAR_TEST_BACKEND` names (with
//! `two-nodes`, requests alternate between two nodes, so counts and throttles are proven shared):
//! links to attachments and storage files, downloads with Range and ETag, passwords by header and by
//! the browser form, the throttle, expiry, the download cap, revocation, listing, and rights.

mod common;
use common::*;

use base64::Engine;
use reqwest::{Client, Response};
use serde_json::{json, Value};

fn path_id(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Creates a link; asserts 201 and answers its JSON.
async fn share(user: &User, body: Value) -> Value {
    let r = user
        .post("/api/v1/share-links")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "creating a link {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn url(link: &Value) -> String {
    link["url"].as_str().expect("the link's url").to_string()
}

/// An anonymous client (no token, no cookie).
fn anonymous() -> Client {
    Client::new()
}

async fn bytes_of(r: Response) -> Vec<u8> {
    r.bytes().await.unwrap().to_vec()
}

/// Creates a space with `member` in it and a file at `path`; answers nothing.
async fn space_with_file(admin: &User, member: &User, space: &str, path: &str, bytes: &[u8]) {
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": space, "name": space}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post(&format!("/api/v1/spaces/{space}/members"))
        .json(&json!({"username": member.username}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = member
        .post(&format!(
            "/api/v1/space/{space}/storage/{}/upload",
            path_id(path)
        ))
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_link_downloads_byte_exact_with_range_etag_and_safe_headers() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let bytes = pseudo_random_bytes(10_000, 1);
    let id = alice
        .upload("report.bin", "application/octet-stream", &bytes)
        .await;
    let link = share(&alice, json!({"attachmentId": id})).await;
    let u = url(&link);
    assert!(u.starts_with(&format!("{}/s/hgr_", app.base)), "{u}");
    let token = u.rsplit('/').next().unwrap();
    assert_eq!(token.len(), 4 + 32, "128 random bits in hex: {token}");
    assert!(link["id"].as_i64().is_some());
    assert_eq!(link["attachmentId"], id);
    assert_eq!(link["downloads"], 0);
    assert_eq!(link["hasPassword"], false);
    assert_eq!(link["expiresAt"], Value::Null);
    assert_eq!(link["maxDownloads"], Value::Null);
    assert!(link["createdUtc"].as_i64().unwrap() > 0);

    let http = anonymous();
    let r = http.get(&u).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&bytes)));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("report.bin"));
    assert_eq!(bytes_of(r).await, bytes);

    let r = http
        .get(&u)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(bytes_of(r).await, &bytes[100..200]);

    let r = http
        .get(&u)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = http.head(&u).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "10000");

    // The GETs from byte 0 were counted (the whole one), not the Range, the 304 or the HEAD.
    let list: Value = alice
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["downloads"], 1, "{list}");
    assert!(
        list["data"][0].get("url").is_none(),
        "the token is shown once"
    );

    // A token that is not one, or an unknown one: 404 in the §4 shape.
    expect_error(
        http.get(app.url("/s/nothing")).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let unknown = format!("{}/s/hgr_{}", app.base, "0".repeat(32));
    expect_error(http.get(&unknown).send().await.unwrap(), 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_file_link_follows_its_file_and_dies_with_it() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let bob = app.member("bob").await;
    let bytes = b"quarterly numbers\n".to_vec();
    space_with_file(&admin, &bob, "finance", "q1/report.txt", &bytes).await;
    let link = share(
        &bob,
        json!({"spaceId": "finance", "pathId": path_id("q1/report.txt")}),
    )
    .await;
    assert_eq!(link["spaceId"], "finance");
    assert_eq!(link["pathId"], path_id("q1/report.txt"));
    let u = url(&link);
    let http = anonymous();
    let r = http.get(&u).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(bytes_of(r).await, bytes);

    // Moving the directory: the link follows the file.
    let r = bob
        .post(&format!(
            "/api/v1/space/finance/storage/{}/move",
            path_id("q1")
        ))
        .json(&json!({"to": "archive/q1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(&u).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bytes_of(r).await, bytes);

    // Deleting the file: the link is gone, and stays gone when a new file takes the path.
    let moved = path_id("archive/q1/report.txt");
    let r = bob
        .delete(&format!("/api/v1/space/finance/storage/{moved}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(http.get(&u).send().await.unwrap(), 404, "not-found").await;
    let r = bob
        .post(&format!("/api/v1/space/finance/storage/{moved}/upload"))
        .header("content-type", "text/plain")
        .body("new content")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    expect_error(http.get(&u).send().await.unwrap(), 404, "not-found").await;
    let list: Value = bob
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));

    // Directories and missing files cannot be shared.
    let r = bob
        .post("/api/v1/share-links")
        .json(&json!({"spaceId": "finance", "pathId": path_id("archive")}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "is-a-directory").await;
    let r = bob
        .post("/api/v1/share-links")
        .json(&json!({"spaceId": "finance", "pathId": path_id("none.txt")}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dies_with_its_attachment() {
    let app = TestApp::start().await;
    let carol = app.member("carol").await;
    let id = carol.upload("a.txt", "text/plain", b"hello").await;
    let u = url(&share(&carol, json!({"attachmentId": id})).await);
    assert_eq!(anonymous().get(&u).send().await.unwrap().status(), 200);
    let r = carol
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(anonymous().get(&u).send().await.unwrap(), 404, "not-found").await;
    let list: Value = carol
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_asked_by_header_or_by_a_form() {
    let app = TestApp::start().await;
    let dave = app.member("dave").await;
    let bytes = pseudo_random_bytes(3000, 2);
    let id = dave
        .upload("plan.bin", "application/octet-stream", &bytes)
        .await;
    let link = share(
        &dave,
        json!({"attachmentId": id, "password": "open sesame"}),
    )
    .await;
    assert_eq!(link["hasPassword"], true);
    let u = url(&link);
    let http = anonymous();

    expect_error(http.get(&u).send().await.unwrap(), 401, "password-required").await;
    let r = http
        .get(&u)
        .header("x-share-password", "guess")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "wrong-password").await;
    let r = http
        .get(&u)
        .header("x-share-password", "open sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bytes_of(r).await, bytes);

    // A browser: a small form, posted back to the same URL, answered with the file.
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = http.get(&u).header("accept", html).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("<form method=post"), "{page}");
    assert!(page.contains("<label for=password>"), "{page}");
    assert!(page.contains("name=password"), "{page}");
    assert!(!page.contains("<script"), "{page}");

    let r = http
        .post(&u)
        .header("accept", html)
        .form(&[("password", "open sesame")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bytes_of(r).await, bytes);
    let r = http
        .post(&u)
        .header("accept", html)
        .form(&[("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Wrong password") && page.contains("<form"),
        "{page}"
    );
    // A form from another site is refused.
    let r = http
        .post(&u)
        .header("origin", "https://evil.example")
        .form(&[("password", "open sesame")])
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf-rejected").await;

    // Errors of unknown links are pages for a browser too.
    let r = http
        .get(app.url("/s/hgr_00000000000000000000000000000000"))
        .header("accept", html)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_throttled_per_link() {
    let app = TestApp::start().await;
    let erin = app.member("erin").await;
    let id = erin.upload("s.txt", "text/plain", b"secret").await;
    let u = url(&share(&erin, json!({"attachmentId": id, "password": "right one"})).await);
    let other = url(&share(&erin, json!({"attachmentId": id, "password": "right one"})).await);
    let http = anonymous();
    for _ in 0..5 {
        let r = http
            .get(&u)
            .header("x-share-password", "wrong")
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "wrong-password").await;
    }
    // Now even the right password waits, on every node.
    for _ in 0..2 {
        let r = http
            .get(&u)
            .header("x-share-password", "right one")
            .send()
            .await
            .unwrap();
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 900, "{retry}");
        expect_error(r, 429, "too-many-requests").await;
    }
    // The form says so too.
    let r = http
        .post(&u)
        .header("accept", "text/html")
        .form(&[("password", "right one")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Another link is counted apart.
    let r = http
        .get(&other)
        .header("x-share-password", "right one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_guesses_gets_five_checked() {
    let app = TestApp::start().await;
    let kay = app.member("kay").await;
    let id = kay.upload("k.txt", "text/plain", b"burst").await;
    let u = url(&share(&kay, json!({"attachmentId": id, "password": "right one"})).await);
    let http = anonymous();
    // Twenty wrong guesses at once: each is counted before it is checked, so five are checked (403)
    // and the others refused unchecked (429), however they interleave across nodes.
    let guesses = (0..20).map(|i| {
        http.get(&u)
            .header("x-share-password", format!("guess {i}"))
            .send()
    });
    let mut statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [[403; 5].as_slice(), [429; 15].as_slice()].concat()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_expires() {
    let app = TestApp::start().await;
    let fred = app.member("fred").await;
    let id = fred.upload("e.txt", "text/plain", b"soon gone").await;
    let r = fred
        .post("/api/v1/share-links")
        .json(&json!({"attachmentId": id, "expiresAt": now_ms() - 1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-expiry").await;
    // A few seconds ahead: creating the link must not take longer on a loaded machine.
    let expires = now_ms() + 3_000;
    let link = share(&fred, json!({"attachmentId": id, "expiresAt": expires})).await;
    assert_eq!(link["expiresAt"], expires);
    // Wait past the expiry (the server compares with its own clock; both are this machine's).
    let wait = (expires + 500 - now_ms()).max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let r = anonymous().get(url(&link)).send().await.unwrap();
    expect_error(r, 410, "link-expired").await;
    let list: Value = fred
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_cap_counts_downloads_from_byte_zero_on_every_node() {
    let app = TestApp::start().await;
    let gina = app.member("gina").await;
    let bytes = pseudo_random_bytes(5000, 3);
    let id = gina
        .upload("c.bin", "application/octet-stream", &bytes)
        .await;
    let link = share(&gina, json!({"attachmentId": id, "maxDownloads": 2})).await;
    assert_eq!(link["maxDownloads"], 2);
    let u = url(&link);
    let http = anonymous();
    // Resuming (a range not from 0) and HEAD do not count.
    for _ in 0..3 {
        let r = http
            .get(&u)
            .header("range", "bytes=10-")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(bytes_of(r).await, &bytes[10..]);
        assert_eq!(http.head(&u).send().await.unwrap().status(), 200);
    }
    // Two downloads from byte 0 (one whole, one a range from 0): the second request of each pair
    // reaches the other node with two-nodes.
    let r = http.get(&u).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bytes_of(r).await, bytes);
    let r = http
        .get(&u)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(bytes_of(r).await, &bytes[..100]);
    for _ in 0..2 {
        expect_error(
            http.get(&u).send().await.unwrap(),
            410,
            "download-limit-reached",
        )
        .await;
        let r = http
            .get(&u)
            .header("range", "bytes=10-")
            .send()
            .await
            .unwrap();
        expect_error(r, 410, "download-limit-reached").await;
    }
    let list: Value = gina
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["downloads"], 2);
    assert_eq!(list["data"][0]["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_listed_and_revoked_by_their_creator_or_an_admin() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let hal = app.member("hal").await;
    let ivy = app.member("ivy").await;
    let a = hal.upload("h.txt", "text/plain", b"hal's").await;
    let b = ivy.upload("i.txt", "text/plain", b"ivy's").await;
    let hal_link = share(&hal, json!({"attachmentId": a})).await;
    let ivy_link = share(&ivy, json!({"attachmentId": b, "password": "pw"})).await;
    let ids = |v: &Value| -> Vec<i64> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    let mine: Value = hal
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&mine), [hal_link["id"].as_i64().unwrap()]);
    let all: Value = admin
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = ids(&all);
    assert!(
        all.contains(&hal_link["id"].as_i64().unwrap())
            && all.contains(&ivy_link["id"].as_i64().unwrap())
    );

    // Someone else's link does not exist for a member.
    let r = ivy
        .delete(&format!("/api/v1/share-links/{}", hal_link["id"]))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    assert_eq!(
        anonymous()
            .get(url(&hal_link))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Its creator revokes it: at once.
    let r = hal
        .delete(&format!("/api/v1/share-links/{}", hal_link["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(
        anonymous().get(url(&hal_link)).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    let r = hal
        .delete(&format!("/api/v1/share-links/{}", hal_link["id"]))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // An administrator revokes anyone's.
    let r = admin
        .delete(&format!("/api/v1/share-links/{}", ivy_link["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = anonymous()
        .get(url(&ivy_link))
        .header("x-share-password", "pw")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Without credentials, nothing is listed or made.
    let r = anonymous()
        .get(app.url("/api/v1/share-links"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_someone_who_may_read_a_file_can_share_it() {
    let app = TestApp::start().await;
    let admin = app.admin().await;
    let jo = app.member("jo").await;
    let kim = app.member("kim").await;
    let private = jo.upload("p.txt", "text/plain", b"jo's own").await;
    let r = kim
        .post("/api/v1/share-links")
        .json(&json!({"attachmentId": private}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    space_with_file(&admin, &jo, "jos-space", "f.txt", b"in jo's space").await;
    let r = kim
        .post("/api/v1/share-links")
        .json(&json!({"spaceId": "jos-space", "pathId": path_id("f.txt")}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Once kim can read the attachment (through a channel message), kim can share it.
    let channel = jo.channel("shared", &["kim"]).await;
    let r = jo
        .post("/api/http/chats/messages/send-message")
        .json(&json!({
            "channel": format!("channel:id:{channel}"),
            "content": {"className": "ChatMessage.Text", "text": "see"},
            "attachments": [{"className": "FileAttachment", "id": private.to_string()}],
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    share(&kim, json!({"attachmentId": private})).await;
    // An administrator may share anything.
    let admins = share(
        &admin,
        json!({"spaceId": "jos-space", "pathId": path_id("f.txt")}),
    )
    .await;
    // A link speaks for its creator: removed from the space, jo's link stops (the admin's does not).
    let jos = share(
        &jo,
        json!({"spaceId": "jos-space", "pathId": path_id("f.txt")}),
    )
    .await;
    assert_eq!(
        anonymous().get(url(&jos)).send().await.unwrap().status(),
        200
    );
    let r = admin
        .delete("/api/v1/spaces/jos-space/members/jo")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    expect_error(
        anonymous().get(url(&jos)).send().await.unwrap(),
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        anonymous().get(url(&admins)).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_naming_the_problem() {
    let app = TestApp::start().await;
    let lee = app.member("lee").await;
    let id = lee.upload("b.txt", "text/plain", b"x").await;
    let cases = [
        (json!({}), "bad-target"),
        (json!({"attachmentId": id.to_string()}), "bad-target"),
        (
            json!({"attachmentId": id, "spaceId": "s", "pathId": path_id("a")}),
            "bad-target",
        ),
        (json!({"spaceId": "s"}), "bad-target"),
        (json!({"spaceId": "s", "pathId": "Li4"}), "bad-path"),
        (
            json!({"attachmentId": id, "maxDownloads": 0}),
            "bad-max-downloads",
        ),
        (
            json!({"attachmentId": id, "maxDownloads": "3"}),
            "bad-max-downloads",
        ),
        (json!({"attachmentId": id, "expiresAt": 12.5}), "bad-expiry"),
        (json!({"attachmentId": id, "password": ""}), "bad-password"),
        (
            json!({"attachmentId": id, "password": "p".repeat(1025)}),
            "bad-password",
        ),
        (json!({"attachmentId": id, "expires": 1}), "bad-field"),
        (json!([id]), "bad-json"),
    ];
    for (body, code) in cases {
        let r = lee
            .post("/api/v1/share-links")
            .json(&body)
            .send()
            .await
            .unwrap();
        let got = expect_error(r, 400, code).await;
        assert!(!got["errorText"].as_str().unwrap().is_empty(), "{body}");
    }
    let r = lee
        .post("/api/v1/share-links")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = lee
        .post("/api/v1/share-links")
        .json(&json!({"attachmentId": 9_007_199_254_740_000_i64}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = lee.delete("/api/v1/share-links/abc").send().await.unwrap();
    expect_error(r, 400, "bad-path").await;
    let r = lee
        .delete("/api/v1/share-links/12345")
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
}
