//! Applications end to end over real HTTP: webhook delivery to a real receiver on 127.0.0.1
//! (allow-listed), its signatures (HMAC, Ed25519 against the JWKS, Standard Webhooks), retries with
//! backoff, delivery after a restart, payload templates, key rotation, InitPayload and uninstall,
//! the OAuth authorization-code flow with PKCE, and rights enforcement for application tokens.

mod common;
use common::*;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Client;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A webhook receiver: records every request; answers 500 to the first `fail_first` ones, and
/// 503 while `down` is set.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    fail_first: Arc<Mutex<usize>>,
    down: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.hits.lock().unwrap().push((headers, body));
                    if *state.down.lock().unwrap() {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let mut fail = state.fail_first.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn hits(&self) -> Vec<(HeaderMap, String)> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or 20 s passed); answers them all.
    async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, String)> {
        let start = Instant::now();
        while self.hits.lock().unwrap().len() < n && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let hits = self.hits();
        assert!(
            hits.len() >= n,
            "expected {n} deliveries, got {}",
            hits.len()
        );
        hits
    }
}

fn start_server() -> Server {
    Server::start_with(&["--fetch-allow", "127.0.0.1"])
}

struct App {
    id: String,
    client_id: String,
    secret: String,
    /// A client acting as the application (client-credentials token).
    user: User,
}

async fn create_app(server: &Server, admin: &User, body: Value) -> App {
    let r = admin
        .post("/api/http/applications")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let app: Value = r.json().await.unwrap();
    let client_id = app["clientId"].as_str().unwrap().to_string();
    let secret: String = admin
        .get(&format!(
            "/api/http/applications/clientId:{client_id}/client-secret"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let token: Value = r.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    let access = token["access_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("hgr_"));
    App {
        id: app["id"].as_str().unwrap().to_string(),
        client_id,
        secret,
        user: User {
            base: server.base.clone(),
            http: Client::new(),
            token: access,
            username: "app".into(),
        },
    }
}

async fn grant(admin: &User, app: &App, context: &str, rights: &[&str]) {
    let rights: Vec<Value> = rights
        .iter()
        .map(|r| json!({"rightCode": r, "status": "GRANTED"}))
        .collect();
    let r = admin
        .patch(&format!(
            "/api/http/applications/id:{}/authorizations/authorized-rights",
            app.id
        ))
        .json(&json!({"contextIdentifier": context, "rights": rights}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn webhook(admin: &User, app: &App, body: Value) -> Value {
    let r = admin
        .post(&format!("/api/http/applications/id:{}/webhooks", app.id))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn get_string(user: &User, path: &str) -> String {
    let r = user.get(path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json::<Value>()
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .to_str()
        .unwrap()
}

/// Verifies every signature of a delivery: X-Space-Signature with the hex key, the Ed25519 one with
/// the JWKS, and the Standard Webhooks one with the `whsec_` form of the key. Answers how many
/// `v1,` signatures `webhook-signature` carried that verify with `key_hex`.
fn verify(h: &HeaderMap, body: &str, key_hex: &str, jwks: &Value, space_sig_key: bool) -> usize {
    let key = hex::decode(key_hex).unwrap();
    let ts = header(h, "x-space-timestamp");
    let message = format!("{ts}:{body}");
    if space_sig_key {
        assert_eq!(
            header(h, "x-space-signature"),
            hex::encode(hmac(&key, message.as_bytes())),
            "X-Space-Signature"
        );
    }
    // Ed25519 against the published JWKS.
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    let public =
        ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).expect("JWKS key");
    let sig = B64
        .decode(header(h, "x-space-public-key-signature"))
        .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    public
        .verify_strict(message.as_bytes(), &sig)
        .expect("X-Space-Public-Key-Signature verifies with the JWKS");
    // Standard Webhooks: the secret is whsec_ + base64 of the key bytes.
    let whsec = format!("whsec_{}", B64.encode(&key));
    let secret = B64.decode(whsec.trim_start_matches("whsec_")).unwrap();
    let id = header(h, "webhook-id");
    let wts = header(h, "webhook-timestamp");
    assert_eq!(
        wts.parse::<i64>().unwrap(),
        ts.parse::<i64>().unwrap() / 1000
    );
    let expected = B64.encode(hmac(&secret, format!("{id}.{wts}.{body}").as_bytes()));
    header(h, "webhook-signature")
        .split(' ')
        .filter(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
        .count()
}

async fn jwks(user: &User, app: &App) -> Value {
    let text = get_string(
        user,
        &format!("/api/http/applications/id:{}/public-keys", app.id),
    )
    .await;
    let jwks: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    jwks
}

#[tokio::test]
async fn deliveries_are_signed_authenticated_and_limited_to_granted_contexts() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    let app = create_app(&server, &admin, json!({"name": "Watcher"})).await;
    let seen = admin.channel("seen", &[]).await;
    let unseen = admin.channel("unseen", &[]).await;
    grant(
        &admin,
        &app,
        &format!("channel:id:{seen}"),
        &["Channel.ViewMessages"],
    )
    .await;
    let hook = webhook(
        &admin,
        &app,
        json!({
            "name": "chat",
            "endpoint": {"url": url},
            "endpointAuth": {"type": "bearer", "token": "receiver-secret"},
            "subscriptions": [{"name": "messages", "eventTypes": ["ChatMessage.Created"]}],
        }),
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap();
    assert_eq!(
        hook["subscriptions"][0]["eventTypes"][0],
        "ChatMessage.Created"
    );
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/custom-headers",
            app.id
        ))
        .json(&json!({"headers": [{"name": "X-Team", "value": "blue"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    admin.message(unseen, "not for the app").await;
    let message = admin.message(seen, "hello \"app\"").await;
    let hits = rx.wait_for(1).await;
    // Give a wrongly dispatched second delivery time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits_after = rx.hits();
    assert_eq!(hits_after.len(), 1, "only the granted channel's message");
    let (h, body) = &hits[0];
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["className"], "WebhookRequestPayload");
    assert_eq!(payload["clientId"], app.client_id.as_str());
    assert_eq!(payload["webhookId"], hook_id);
    assert_eq!(payload["payload"]["className"], "ChatMessage.Created");
    assert_eq!(payload["payload"]["messageId"], message);
    assert_eq!(payload["payload"]["text"], "hello \"app\"");
    assert_eq!(payload["deliveryId"], header(h, "webhook-id"));
    assert_eq!(header(h, "authorization"), "Bearer receiver-secret");
    assert_eq!(header(h, "x-team"), "blue");
    assert_eq!(header(h, "content-type"), "application/json");
    let key = get_string(
        &admin,
        &format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/signing-key",
            app.id
        ),
    )
    .await;
    assert_eq!(key.len(), 64);
    let jwks = jwks(&app.user, &app).await;
    assert_eq!(verify(h, body, &key, &jwks, true), 1);
    // A member cannot read the key; the application can read its own.
    let bob = server.member("bob").await;
    let r = bob
        .get(&format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/signing-key",
            app.id
        ))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    assert_eq!(
        get_string(
            &app.user,
            &format!("/api/http/applications/me/webhooks/{hook_id}/signing-key")
        )
        .await,
        key
    );

    // Rotation: the next delivery is signed by the new key and, in webhook-signature, also the old.
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/signing-key/regenerate",
            app.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_key = get_string(
        &admin,
        &format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/signing-key",
            app.id
        ),
    )
    .await;
    assert_ne!(new_key, key);
    admin.message(seen, "after rotation").await;
    let hits = rx.wait_for(2).await;
    let (h, body) = &hits[1];
    assert_eq!(verify(h, body, &new_key, &jwks, true), 1);
    assert_eq!(
        verify(h, body, &key, &jwks, false),
        1,
        "old key still signs"
    );
    assert_ne!(header(h, "webhook-id"), header(&hits[0].0, "webhook-id"));
}

#[tokio::test]
async fn a_failing_receiver_gets_one_retry_per_failure_then_no_more() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    *rx.fail_first.lock().unwrap() = 2;
    let app = create_app(
        &server,
        &admin,
        json!({"name": "Retry", "endpointUri": url}),
    )
    .await;
    grant(&admin, &app, "global", &["Space.Files.Read"]).await;
    // No endpoint on the webhook: the application's endpointUri serves.
    let hook = webhook(
        &admin,
        &app,
        json!({"name": "files", "subscriptions": [{"name": "f", "eventTypes": ["StorageFile.Created"]}]}),
    )
    .await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "Docs"}))
        .send()
        .await
        .unwrap();
    let space = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin
        .post(&format!("/api/v1/space/{space}/storage/YS50eHQ/upload"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hits = rx.wait_for(3).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hits_after = rx.hits();
    assert_eq!(
        hits_after.len(),
        3,
        "two failures, one success, nothing more"
    );
    let ids: Vec<&str> = hits.iter().map(|(h, _)| header(h, "webhook-id")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one stable delivery id");
    let bodies: Vec<&String> = hits.iter().map(|(_, b)| b).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    let payload: Value = serde_json::from_str(bodies[0]).unwrap();
    assert_eq!(payload["payload"]["className"], "StorageFile.Created");
    assert_eq!(payload["payload"]["path"], "a.txt");
    // Every attempt is signed afresh and verifies.
    let key = get_string(
        &admin,
        &format!(
            "/api/http/applications/id:{}/webhooks/{}/signing-key",
            app.id,
            hook["id"].as_str().unwrap()
        ),
    )
    .await;
    let jwks = jwks(&admin, &app).await;
    for (h, body) in &hits {
        assert_eq!(verify(h, body, &key, &jwks, true), 1);
    }
}
#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let mut server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    *rx.down.lock().unwrap() = true;
    let app = create_app(&server, &admin, json!({"name": "Durable"})).await;
    grant(&admin, &app, "global", &["Channel.ViewMessages"]).await;
    webhook(
        &admin,
        &app,
        json!({"name": "chat", "endpoint": {"url": url},
               "subscriptions": [{"name": "m", "eventTypes": ["ChatMessage.Created"]}]}),
    )
    .await;
    let channel = admin.channel("c", &[]).await;
    let message = admin.message(channel, "survive").await;
    rx.wait_for(1).await;
    // The first attempt failed and is recorded (the delivery queued again for its retry); the
    // server dies before the retry.
    common::wait_for_record(
        &server.data_dir,
        "SELECT COUNT(*) FROM jobs WHERE kind = 'deliver' AND state = 'queued' AND attempts > 0",
    );
    server.kill9();
    *rx.down.lock().unwrap() = false;
    let before = rx.hits().len();
    server.restart();
    let hits = rx.wait_for(before + 1).await;
    let (h, body) = hits.last().unwrap();
    assert_eq!(
        *h.get("webhook-id").unwrap(),
        *hits[0].0.get("webhook-id").unwrap()
    );
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["payload"]["messageId"], message);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        rx.hits().len(),
        before + 1,
        "delivered once after the restart"
    );
}

#[tokio::test]
async fn payload_templates_render_with_json_escaping_and_fields_filter() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    let app = create_app(&server, &admin, json!({"name": "Templ"})).await;
    grant(&admin, &app, "global", &["Channel.ViewMessages"]).await;
    let template = r#"{"said":"{{text}}","id":{{messageId}},"literal":"\{{text}} \\\\ done"}"#;
    webhook(
        &admin,
        &app,
        json!({"name": "t", "endpoint": {"url": url}, "payloadTemplate": template,
               "subscriptions": [{"name": "m", "eventTypes": ["ChatMessage.Created"]}]}),
    )
    .await;
    let channel = admin.channel("c", &[]).await;
    let text = "quote \" backslash \\ newline \n end {{x}}";
    let message = admin.message(channel, text).await;
    let hits = rx.wait_for(1).await;
    let body: Value = serde_json::from_str(&hits[0].1).expect("the rendered template is JSON");
    assert_eq!(body["said"], text);
    assert_eq!(body["id"], message);
    assert_eq!(body["literal"], "{{text}} \\ done");

    // payloadFields keeps only the named fields of the payload.
    let (rx2, url2) = Receiver::start().await;
    webhook(
        &admin,
        &app,
        json!({"name": "f", "endpoint": {"url": url2}, "payloadFields": "messageId,channelId",
               "subscriptions": [{"name": "m", "eventTypes": ["ChatMessage.Created"]}]}),
    )
    .await;
    admin.message(channel, "second").await;
    let hits = rx2.wait_for(1).await;
    let body: Value = serde_json::from_str(&hits[0].1).unwrap();
    let mut keys: Vec<&String> = body["payload"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["channelId", "className", "messageId"]);

    // A template that does not parse is refused when the webhook is made.
    let r = admin
        .post(&format!("/api/http/applications/id:{}/webhooks", app.id))
        .json(&json!({"name": "bad", "endpoint": {"url": url}, "payloadTemplate": "{{oops"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-template").await;
}

#[tokio::test]
async fn multi_org_install_sends_init_payload_and_uninstall_archives() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    let r = admin
        .post("/api/http/applications")
        .json(&json!({"name": "Market", "endpointUri": url, "connectToSpace": true, "state": "step-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let app: Value = r.json().await.unwrap();
    assert_eq!(app["multiOrg"], true);
    let id = app["id"].as_str().unwrap();
    let hits = rx.wait_for(1).await;
    let (h, body) = &hits[0];
    let init: Value = serde_json::from_str(body).unwrap();
    assert_eq!(init["className"], "InitPayload");
    assert_eq!(init["state"], "step-1");
    assert_eq!(init["clientId"], app["clientId"]);
    let secret = get_string(
        &admin,
        &format!("/api/http/applications/id:{id}/client-secret"),
    )
    .await;
    assert_eq!(init["clientSecret"], secret.as_str());
    // Signed with the application's own signing key.
    let key = get_string(
        &admin,
        &format!("/api/http/applications/id:{id}/signing-key"),
    )
    .await;
    let keys_text = get_string(
        &admin,
        &format!("/api/http/applications/id:{id}/public-keys"),
    )
    .await;
    let jwks: Value = serde_json::from_str(&keys_text).unwrap();
    assert_eq!(verify(h, body, &key, &jwks, true), 1);

    // A multi-org application is updated only by itself.
    let r = admin
        .patch(&format!("/api/http/applications/id:{id}"))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // Delete: ApplicationUninstalledPayload, archived once acknowledged.
    let r = admin
        .delete(&format!("/api/http/applications/id:{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hits = rx.wait_for(2).await;
    let bye: Value = serde_json::from_str(&hits[1].1).unwrap();
    assert_eq!(bye["className"], "ApplicationUninstalledPayload");
    let start = Instant::now();
    loop {
        let app: Value = admin
            .get(&format!("/api/http/applications/id:{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if app["archived"] == true {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{app}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An application that never answers can be force-removed after its first failure.
    let (rx2, url2) = Receiver::start().await;
    *rx2.down.lock().unwrap() = true;
    let r = admin
        .post("/api/http/applications")
        .json(&json!({"name": "Gone", "endpointUri": url2, "connectToSpace": true}))
        .send()
        .await
        .unwrap();
    let gone: Value = r.json().await.unwrap();
    let gone_id = gone["id"].as_str().unwrap();
    rx2.wait_for(1).await; // InitPayload, refused
    let r = admin
        .post(&format!("/api/http/applications/id:{gone_id}/force-remove"))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "not-failed-uninstall").await;
    admin
        .delete(&format!("/api/http/applications/id:{gone_id}"))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let uninstalls = rx2
            .hits()
            .iter()
            .filter(|(_, b)| b.contains("ApplicationUninstalledPayload"))
            .count();
        if uninstalls >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Force-removing waits for the uninstall's failed attempt to be recorded (409 before).
    let start = Instant::now();
    let r = loop {
        let r = admin
            .post(&format!("/api/http/applications/id:{gone_id}/force-remove"))
            .send()
            .await
            .unwrap();
        if r.status() != 409 || start.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status(), 200);
    let app: Value = admin
        .get(&format!("/api/http/applications/id:{gone_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["archived"], true);
}

#[tokio::test]
async fn app_tokens_do_only_what_their_rights_allow() {
    let server = start_server();
    let admin = server.admin().await;
    let app = create_app(&server, &admin, json!({"name": "Poster"})).await;
    let a = admin.channel("a", &[]).await;
    let b = admin.channel("b", &[]).await;
    let post = |channel: i64| {
        app.user
            .post(&format!("/api/v1/channels/{channel}/messages"))
            .json(&json!({"text": "from the app"}))
            .send()
    };
    // Nothing granted: the channel does not exist for the application.
    expect_error(post(a).await.unwrap(), 404, "not-found").await;
    grant(
        &admin,
        &app,
        &format!("channel:id:{a}"),
        &["Channel.PostMessages"],
    )
    .await;
    let r = post(a).await.unwrap();
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["text"], "from the app");
    expect_error(post(b).await.unwrap(), 404, "not-found").await;
    // Seeing channel b is not posting to it; posting to a is not reading it.
    grant(
        &admin,
        &app,
        &format!("channel:id:{b}"),
        &["Channel.ViewMessages"],
    )
    .await;
    expect_error(post(b).await.unwrap(), 403, "forbidden").await;
    let r = app
        .user
        .get(&format!("/api/v1/channels/{a}/messages"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .post("/api/http/chats/messages/send-message")
        .json(&json!({"channel": format!("channel:id:{b}"), "content": {"text": "x"}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // The message the app posted is there for members, authored by the application.
    let list: Value = admin
        .get(&format!("/api/v1/channels/{a}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["text"], "from the app");

    // Issues: creating needs Project.Issues.Create in that project.
    let r = admin
        .post("/api/http/projects")
        .json(&json!({"key": "OPS", "name": "Ops"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let issue = || {
        app.user
            .post("/api/http/projects/key:OPS/planning/issues")
            .json(&json!({"title": "from app", "status": "Open"}))
            .send()
    };
    expect_error(issue().await.unwrap(), 404, "not-found").await;
    grant(&admin, &app, "project:key:OPS", &["Project.Issues.View"]).await;
    expect_error(issue().await.unwrap(), 403, "forbidden").await;
    grant(&admin, &app, "project:key:OPS", &["Project.Issues.Create"]).await;
    let r = issue().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Space files: reading and writing are separate rights.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"name": "S"}))
        .send()
        .await
        .unwrap();
    let space = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upload = || {
        app.user
            .post(&format!("/api/v1/space/{space}/storage/YS50eHQ/upload"))
            .body("bytes")
            .send()
    };
    expect_error(upload().await.unwrap(), 404, "not-found").await;
    grant(
        &admin,
        &app,
        &format!("space:id:{space}"),
        &["Space.Files.Read"],
    )
    .await;
    expect_error(upload().await.unwrap(), 403, "forbidden").await;
    grant(
        &admin,
        &app,
        &format!("space:id:{space}"),
        &["Space.Files.Write"],
    )
    .await;
    assert_eq!(upload().await.unwrap().status(), 201);

    // A token scoped to one right cannot use another even when granted.
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/permanent-tokens",
            app.id
        ))
        .json(&json!({"name": "reader", "scope": "Channel.ViewMessages"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let scoped = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = Client::new()
        .post(server.url(&format!("/api/v1/channels/{b}/messages")))
        .bearer_auth(&scoped)
        .json(&json!({"text": "scoped"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // An application token cannot mint a personal token, nor change who is in a channel.
    let r = app
        .user
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "escape"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .post(&format!("/api/v1/channels/{b}/members"))
        .json(&json!({"username": "admin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // A `read` token reads where a reading right is granted, and writes nowhere.
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/permanent-tokens",
            app.id
        ))
        .json(&json!({"name": "ro", "scope": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ro = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = Client::new()
        .get(server.url(&format!("/api/v1/channels/{b}/messages")))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = Client::new()
        .post(server.url(&format!("/api/v1/space/{space}/storage/Yi50eHQ/upload")))
        .bearer_auth(&ro)
        .body("x")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // Nor can it manage the application (no minting of a broader token).
    let r = Client::new()
        .get(server.url("/api/http/applications/me/client-secret"))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
}
#[tokio::test]
async fn authorization_code_flow_with_pkce_issues_member_tokens() {
    let server = start_server();
    let admin = server.admin().await;
    let redirect = "https://app.example/callback";
    let app = create_app(
        &server,
        &admin,
        json!({"name": "Web", "codeFlowEnabled": true, "codeFlowRedirectURIs": redirect, "pkceRequired": true}),
    )
    .await;
    server.member("carol").await;
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Not logged in: to the web UI's login page, which comes back to this very request; no code.
    let verifier = "a-long-verifier-with-enough-entropy-0123456789abcdefghijklmnop";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let query = [
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", redirect),
        ("state", "xyz"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let next = location
        .strip_prefix("/login?next=")
        .unwrap_or_else(|| panic!("{location}"));
    let next: String = url::form_urlencoded::parse(format!("n={next}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert!(next.starts_with("/oauth/auth?"), "{next}");
    assert!(!location.contains("code="), "{location}");
    let r = browser
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let page = r.text().await.unwrap();
    assert!(page.contains("Web") && page.contains("carol"), "{page}");
    // Without PKCE the request is refused back to the application.
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&query[..4])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=invalid_request"));
    // With PKCE required, `plain` is refused; a member's token has scope ** or read only.
    let mut plain = query.to_vec();
    plain[5] = ("code_challenge_method", "plain");
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=invalid_request"));
    let mut scoped = query.to_vec();
    scoped.push(("scope", "Channel.PostMessages"));
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&scoped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=invalid_scope"));
    // An unregistered redirect URI is never redirected to.
    let r = browser
        .get(server.url("/oauth/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A cross-site form post is refused.
    let mut form: Vec<(&str, &str)> = query.to_vec();
    form.push(("decision", "approve"));
    let r = browser
        .post(server.url("/oauth/auth"))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post(server.url("/oauth/auth"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz");
    let code = params["code"].clone();

    let exchange = |code: String, verifier: &'static str| {
        Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&app.client_id, Some(&app.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let r = exchange(
        code.clone(),
        "wrong-verifier-wrong-verifier-wrong-verifier-00",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The failed attempt used the code up (single use).
    let r = exchange(code.clone(), verifier).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Again, properly.
    let r = browser
        .post(server.url("/oauth/auth"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let r = exchange(code.clone(), verifier).await.unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("hgr_") && refresh.starts_with("hgr_"));
    let carol = User {
        base: server.base.clone(),
        http: Client::new(),
        token: access,
        username: "carol".into(),
    };
    let me: Value = carol
        .get("/api/v1/auth/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "carol");
    // Profile parameters need exactly this kind of token; app parameters refuse it.
    let r = carol
        .patch("/api/http/applications/parameters/profile/theme")
        .json(&json!({"value": "dark"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = carol
        .get("/api/http/applications/parameters/profile/theme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, "dark");
    let r = carol
        .get("/api/http/applications/parameters")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // Refresh rotates: the old refresh token is spent.
    let refresh_with = |token: String| {
        Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&app.client_id, Some(&app.secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ])
            .send()
    };
    let r = refresh_with(refresh.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_ne!(again["refresh_token"], refresh.as_str());
    let r = refresh_with(refresh).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Approved through an expiring personal token: the tokens it yields expire with it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = browser
        .post(server.url("/api/v1/me/tokens"))
        .json(&json!({"name": "short", "expires": now + 60_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let short = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/oauth/auth"))
        .bearer_auth(&short)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let r = exchange(code.clone(), verifier).await.unwrap();
    assert_eq!(r.status(), 200);
    let capped: Value = r.json().await.unwrap();
    assert!(capped["expires_in"].as_i64().unwrap() <= 60, "{capped}");
    let capped_token = capped["access_token"].as_str().unwrap().to_string();
    let r = Client::new()
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&capped_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Replaying the code revokes what it yielded (RFC 6749 §4.1.2).
    let r = exchange(code, verifier).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = Client::new()
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&capped_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, Some(&app.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", capped["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // The client credentials grant of an app with that flow disabled is refused.
    let r = admin
        .patch(&format!("/api/http/applications/id:{}", app.id))
        .json(&json!({"clientCredentialsFlowEnabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, Some(&app.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn links_in_messages_reach_the_unfurl_queue_and_content_is_stored() {
    let server = start_server();
    let admin = server.admin().await;
    let app = create_app(&server, &admin, json!({"name": "Unfurler"})).await;
    grant(&admin, &app, "global", &["Unfurls.Provide"]).await;
    let r = app
        .user
        .patch("/api/http/applications/unfurls/domains")
        .json(&json!({"domains": ["example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let channel = admin.channel("c", &[]).await;
    // Not yet approved: nothing is queued.
    admin
        .message(channel, "early https://docs.example.com/a")
        .await;
    // Let the dispatcher handle that message before the domain is approved (its job is queued
    // with the message, and goes once done).
    common::wait_for_record(
        &server.data_dir,
        "SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE kind = 'dispatch-event')",
    );
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/unfurl-domains/authorize",
            app.id
        ))
        .json(&json!({"domains": ["example.com"], "approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let message = admin
        .message(
            channel,
            "see https://docs.example.com/page and https://other.org/x",
        )
        .await;
    let start = Instant::now();
    let items = loop {
        let items: Value = app
            .user
            .get("/api/http/applications/unfurls/queue?batchSize=10")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !items.as_array().unwrap().is_empty() {
            break items;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let items: Value = app
        .user
        .get("/api/http/applications/unfurls/queue?batchSize=10")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(items);
    let list = items.as_array().unwrap();
    assert_eq!(list.len(), 1, "{items}");
    assert_eq!(list[0]["target"], "https://docs.example.com/page");
    assert_eq!(list[0]["messageId"], message);
    let etag = list[0]["etag"].as_i64().unwrap();
    let after: Value = app
        .user
        .get(&format!(
            "/api/http/applications/unfurls/queue?batchSize=10&fromEtag={etag}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, json!([]));
    let r = app
        .user
        .post("/api/http/applications/unfurls/queue/content")
        .json(&json!({"unfurls": [{"etag": etag, "content": {"title": "Docs page"}}]}))
        .send()
        .await
        .unwrap();
    let results: Value = r.json().await.unwrap();
    assert_eq!(results[0]["success"], true, "{results}");
    let messages: Value = admin
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["messageId"] == message)
        .unwrap();
    assert_eq!(m["unfurls"][0]["content"]["title"], "Docs page");
    assert_eq!(m["unfurls"][0]["target"], "https://docs.example.com/page");

    // External ids matched by an approved prefix are queued too.
    let r = app
        .user
        .patch("/api/http/applications/unfurls/patterns")
        .json(&json!({"patterns": ["OPS-"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .post(&format!(
            "/api/http/applications/id:{}/unfurl-patterns/authorize",
            app.id
        ))
        .json(&json!({"patterns": ["OPS-"], "approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let second = admin.message(channel, "fixed in OPS-42.").await;
    let start = Instant::now();
    loop {
        let items: Value = app
            .user
            .get(&format!(
                "/api/http/applications/unfurls/queue?batchSize=10&fromEtag={etag}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(item) = items.as_array().unwrap().first() {
            assert_eq!(item["target"], "OPS-42");
            assert_eq!(item["messageId"], second);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_event_type_is_delivered_and_signed() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    let app = create_app(&server, &admin, json!({"name": "All"})).await;
    grant(
        &admin,
        &app,
        "global",
        &[
            "Attachments.View",
            "Space.Files.Read",
            "Channel.ViewMessages",
            "Project.Issues.View",
        ],
    )
    .await;
    let all = [
        "Attachment.Created",
        "Attachment.Deleted",
        "StorageFile.Created",
        "StorageFile.Updated",
        "StorageFile.Deleted",
        "StorageFile.Moved",
        "ChatMessage.Created",
        "Issue.Created",
        "Issue.Updated",
    ];
    let hook = webhook(
        &admin,
        &app,
        json!({"name": "all", "endpoint": {"url": url},
               "subscriptions": [{"name": "everything", "eventTypes": all}]}),
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap();

    // Storage: create, update (same path again), move, delete.
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "ev", "name": "Events"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let s = "/api/v1/space/ev/storage";
    for body in ["one", "two"] {
        let r = admin
            .post(&format!("{s}/YS50eHQ/upload"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let r = admin
        .post(&format!("{s}/YS50eHQ/move"))
        .json(&json!({"to": "b.txt"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = admin.delete(&format!("{s}/Yi50eHQ")).send().await.unwrap();
    assert!(r.status().is_success());
    // Chat and attachments.
    let channel = admin.channel("events", &[]).await;
    admin.message(channel, "hi").await;
    let attachment = admin.upload("note.txt", "text/plain", b"note").await;
    let r = admin
        .delete(&format!("/api/v1/attachments/{attachment}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // Issues: create, then update by attaching a file.
    let r = admin
        .post("/api/http/projects")
        .json(&json!({"key": "EV", "name": "Events"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = admin
        .post("/api/http/projects/key:EV/planning/issues")
        .json(&json!({"title": "t", "status": "Open"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let issue: Value = r.json().await.unwrap();
    let file = admin.upload("i.txt", "text/plain", b"i").await;
    let r = admin
        .post(&format!(
            "/api/http/projects/key:EV/planning/issues/id:{}/attachments",
            issue["id"]
        ))
        .json(&json!({"attachments": [{"className": "FileAttachment", "id": file.to_string()}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let key = get_string(
        &admin,
        &format!(
            "/api/http/applications/id:{}/webhooks/{hook_id}/signing-key",
            app.id
        ),
    )
    .await;
    let jwks = jwks(&admin, &app).await;
    let start = Instant::now();
    loop {
        let seen: std::collections::BTreeSet<String> = rx
            .hits()
            .iter()
            .map(|(_, b)| {
                serde_json::from_str::<Value>(b).unwrap()["payload"]["className"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        if all.iter().all(|t| seen.contains(*t)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "missing event types; got {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (h, body) in rx.hits() {
        assert_eq!(verify(&h, &body, &key, &jwks, true), 1, "{body}");
    }
}

#[tokio::test]
async fn app_level_auth_verification_token_puts_the_token_in_the_envelope() {
    let server = start_server();
    let admin = server.admin().await;
    let (rx, url) = Receiver::start().await;
    let channel = admin.channel("c", &[]).await;
    // One application asks for the token by appLevelAuth only, one asks for nothing.
    let mut tokens = Vec::new();
    for (name, auth) in [("Token", "verificationToken"), ("Plain", "none")] {
        let app = create_app(
            &server,
            &admin,
            json!({"name": name, "appLevelAuth": auth, "hasVerificationToken": false}),
        )
        .await;
        grant(
            &admin,
            &app,
            &format!("channel:id:{channel}"),
            &["Channel.ViewMessages"],
        )
        .await;
        webhook(
            &admin,
            &app,
            json!({
                "name": "chat",
                "endpoint": {"url": url},
                "subscriptions": [{"name": "m", "eventTypes": ["ChatMessage.Created"]}],
            }),
        )
        .await;
        let token = get_string(
            &admin,
            &format!("/api/http/applications/id:{}/verification-token", app.id),
        )
        .await;
        tokens.push((app.client_id.clone(), token));
    }
    admin.message(channel, "hello").await;
    let hits = rx.wait_for(2).await;
    for (client_id, token) in &tokens {
        let payload: Value = hits
            .iter()
            .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap())
            .find(|p| p["clientId"] == client_id.as_str())
            .expect("a delivery for each application");
        if client_id == &tokens[0].0 {
            assert_eq!(payload["verificationToken"], token.as_str(), "{payload}");
        } else {
            assert_eq!(payload["verificationToken"], Value::Null, "{payload}");
        }
    }
}
