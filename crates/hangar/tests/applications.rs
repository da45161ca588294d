//! The Applications API over real HTTP (`/api/http/applications`, `/oauth/token`): applications and
//! their listing, secrets, permanent tokens, parameters, rights, GPG/SSH keys, unfurls, UI extensions,
//! webhooks with custom headers and subscriptions, and the OAuth token endpoint's errors.
//!
//! The permission policy checked throughout: administrators may do everything; a plain member may
//! view (403 on changes and secrets); an application acting as itself may operate on itself only
//! (404 for other applications); unknown applications are 404, malformed identifiers 400.

mod common;
use common::*;

use base64::Engine;
use reqwest::{Client, Response};
use serde_json::{json, Value};

const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// SHA-1 (RFC 3174), for checking OpenPGP v4 fingerprints independently of the server.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (slot, word) in w.iter_mut().zip(chunk.chunks(4)) {
            *slot = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let tmp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = tmp;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// The CRC-24 of OpenPGP ASCII armor (RFC 4880 §6.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB704CE;
    for &b in data {
        crc ^= (b as u32) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

/// An armored public key block holding one v4 Ed25519 public-key packet with this key material, and
/// its expected fingerprint (SHA-1 over 0x99, the body length and the body).
fn gpg_block(material: u8) -> (String, String) {
    let mut body = vec![4, 0x5F, 0, 0, 0, 22, 9];
    body.extend_from_slice(&[0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01]);
    body.extend_from_slice(&[0x01, 0x07, 0x40]);
    body.extend_from_slice(&[material; 32]);
    let mut packet = vec![0xC6, body.len() as u8];
    packet.extend_from_slice(&body);
    let b64 = base64::engine::general_purpose::STANDARD;
    let crc = b64.encode(&crc24(&packet).to_be_bytes()[1..]);
    let data = b64.encode(&packet);
    let lines: Vec<&str> = data
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let block = format!(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: made by a test\n\n{}\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n",
        lines.join("\n")
    );
    let mut hashed = vec![0x99, 0, body.len() as u8];
    hashed.extend_from_slice(&body);
    (block, hex::encode_upper(sha1(&hashed)))
}

/// The `SHA256:…` fingerprint `ssh-keygen -l` prints for an OpenSSH public key line.
fn ssh_fingerprint(line: &str) -> String {
    use sha2::Digest;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(line.split_whitespace().nth(1).unwrap())
        .unwrap();
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob))
    )
}

// ---------------------------------------------------------------------------------------------
// Applications: create, list, get, update
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn apps_are_created_listed_read_and_updated() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;

    // A generated clientId (UUID form) and secret; the ES_App shape.
    let created = create_app(
        &admin,
        json!({"name": "Charlie", "description": "first", "endpointUri": "http://127.0.0.1:9/"}),
    )
    .await;
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let parts: Vec<&str> = client_id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12],
        "{client_id}"
    );
    assert!(client_id
        .replace('-', "")
        .bytes()
        .all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["name"], "Charlie");
    assert_eq!(created["description"], "first");
    assert_eq!(created["archived"], false);
    assert_eq!(created["state"], "active");
    assert_eq!(created["clientCredentialsFlowEnabled"], true);
    assert_eq!(created["endpointUri"], "http://127.0.0.1:9/");
    assert!(created["id"].as_str().unwrap().parse::<i64>().is_ok());
    assert!(
        created.get("clientSecret").is_none(),
        "no secret in {created}"
    );
    let secret = read_client_secret(&admin, &client_id).await;
    assert!(secret.len() >= 32, "{secret}");

    // A given clientId and secret.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let given = create_app(
        &admin,
        json!({"name": "alpha", "clientId": "my-client.1", "clientSecret": "0123456789abcdef-secret"}),
    )
    .await;
    assert_eq!(given["clientId"], "my-client.1");
    assert_eq!(
        read_client_secret(&admin, "my-client.1").await,
        "0123456789abcdef-secret"
    );
    // Duplicate clientId, missing name, bad clientId, short secret, unknown field.
    let r = admin
        .post(APPS)
        .json(&json!({"name": "again", "clientId": "my-client.1"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "already-exists").await;
    let r = admin
        .post(APPS)
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "  "}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "x", "clientId": "has space"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "x", "clientSecret": "short"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "x", "colour": "red"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "x", "endpointUri": "ftp://example.com/"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    // Members cannot create applications.
    let r = bob
        .post(APPS)
        .json(&json!({"name": "bobs"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let bravo = new_app(&admin, "Bravo").await;

    // Paged listing: by name (case-insensitive) by default, or by creation.
    let page = expect_json(
        admin.get(&format!("{APPS}/paged")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(names(&page), ["alpha", "Bravo", "Charlie"]);
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["next"], "3");
    let r = admin
        .get(&format!("{APPS}/paged?ordering=created"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        names(&expect_json(r, 200).await),
        ["Charlie", "alpha", "Bravo"]
    );
    let r = admin
        .get(&format!("{APPS}/paged?$top=2"))
        .send()
        .await
        .unwrap();
    let first = expect_json(r, 200).await;
    assert_eq!(names(&first), ["alpha", "Bravo"]);
    assert_eq!(first["next"], "2");
    assert_eq!(first["totalCount"], 3);
    let r = admin
        .get(&format!("{APPS}/paged?$top=2&$skip=2"))
        .send()
        .await
        .unwrap();
    let second = expect_json(r, 200).await;
    assert_eq!(names(&second), ["Charlie"]);
    assert_eq!(second["next"], "3");
    assert_eq!(second["totalCount"], 3);
    // Name filter (substring, case-insensitive); members may list too.
    let r = bob
        .get(&format!("{APPS}/paged?name=RAV"))
        .send()
        .await
        .unwrap();
    let filtered = expect_json(r, 200).await;
    assert_eq!(names(&filtered), ["Bravo"]);
    assert_eq!(filtered["totalCount"], 1);
    let r = admin
        .get(&format!("{APPS}/paged?name=%25"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["totalCount"], 0, "% is literal");
    for bad in ["$top=0", "$top=1001", "$skip=-1", "$skip=x"] {
        let r = admin
            .get(&format!("{APPS}/paged?{bad}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-page").await;
    }
    let r = admin
        .get(&format!("{APPS}/paged?ordering=colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-ordering").await;
    // An application lists itself only.
    let r = bravo
        .user
        .get(&format!("{APPS}/paged"))
        .send()
        .await
        .unwrap();
    let own = expect_json(r, 200).await;
    assert_eq!(names(&own), ["Bravo"]);
    assert_eq!(own["totalCount"], 1);

    // Get by id:, clientId: and me.
    let by_id = expect_json(
        admin
            .get(&format!("{APPS}/id:{}", created["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(by_id, created);
    let r = bob
        .get(&format!("{APPS}/clientId:{client_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["name"], "Charlie");
    let r = bravo.user.get(&format!("{APPS}/me")).send().await.unwrap();
    let me = expect_json(r, 200).await;
    assert_eq!(me["id"], bravo.id.as_str());
    assert_eq!(me["clientId"], bravo.client_id.as_str());
    let r = bravo.user.get(&bravo.path("")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await["name"], "Bravo");
    let r = bravo
        .user
        .get(&format!("{APPS}/clientId:{}", bravo.client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["name"], "Bravo");
    // Another application does not exist for it; unknown → 404; malformed → 400; `me` needs an app.
    let r = bravo
        .user
        .get(&format!("{APPS}/clientId:{client_id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.get(&format!("{APPS}/id:12345")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/clientId:nobody"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/name:Bravo"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application").await;
    let r = bob.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 400, "bad-application").await;
    let r = admin.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 400, "bad-application").await;
    // Without a token: 401.
    let r = Client::new()
        .get(server.url(&format!("{APPS}/paged")))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthenticated").await;

    // Update: by the administrator, by the application itself; a member 403; another app 404.
    let charlie = format!("{APPS}/clientId:{client_id}");
    let r = admin
        .patch(&charlie)
        .json(&json!({"name": "Charlie 2", "description": null, "email": "x@y"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await; // email is only given at creation
    let r = admin
        .patch(&charlie)
        .json(&json!({"name": "Charlie 2", "description": null, "codeFlowEnabled": true}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(updated["name"], "Charlie 2");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["codeFlowEnabled"], true);
    assert_eq!(updated["clientId"], client_id.as_str());
    let r = admin.get(&charlie).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await["name"], "Charlie 2");
    let r = bob
        .patch(&charlie)
        .json(&json!({"name": "Bob's"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bravo
        .user
        .patch(&charlie)
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bravo
        .user
        .patch(&format!("{APPS}/me"))
        .json(&json!({"description": "self-described"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["description"], "self-described");
    let r = admin
        .patch(&charlie)
        .json(&json!({"clientId": "other"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .patch(&charlie)
        .json(&json!({"codeFlowEnabled": "yes"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = admin
        .patch(&charlie)
        .json(&json!({"publicClientsAllowed": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await; // needs pkceRequired
    let r = admin
        .patch(&format!("{APPS}/id:999"))
        .json(&json!({"name": "z"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&charlie)
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
}

// ---------------------------------------------------------------------------------------------
// Applications: delete (archive), restore, force-remove
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_archives_an_app_and_ends_its_access() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Doomed").await;
    let other = new_app(&admin, "Other").await;
    // A permanent token too: every token of the application ends.
    let r = admin
        .post(&app.path("/permanent-tokens"))
        .json(&json!({"name": "ci", "scope": "**"}))
        .send()
        .await
        .unwrap();
    let permanent = expect_json(r, 201).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let permanent = user_with(&server.base, &permanent, "app-permanent");
    expect_json(
        permanent.get(&format!("{APPS}/me")).send().await.unwrap(),
        200,
    )
    .await;

    // Who may not delete.
    let r = bob.delete(&app.path("")).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.delete(&app.path("")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .delete(&format!("{APPS}/id:4242"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.delete(&format!("{APPS}/bogus")).send().await.unwrap();
    expect_error(r, 400, "bad-application").await;

    // force-remove is for an application stuck uninstalling: 409 for an active one.
    let r = admin.post(&app.path("/force-remove")).send().await.unwrap();
    expect_error(r, 409, "not-failed-uninstall").await;
    let r = bob.post(&app.path("/force-remove")).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&app.path("/force-remove"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{APPS}/id:4242/force-remove"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    expect_ok(admin.delete(&app.path("")).send().await.unwrap()).await;
    let got = expect_json(admin.get(&app.path("")).send().await.unwrap(), 200).await;
    assert_eq!(got["archived"], true);
    assert_eq!(got["state"], "archived");
    let list = expect_json(
        admin.get(&format!("{APPS}/paged")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(names(&list), ["Other"]);
    assert_eq!(list["totalCount"], 1);
    let r = admin
        .get(&format!("{APPS}/paged?withArchived=true"))
        .send()
        .await
        .unwrap();
    let all = expect_json(r, 200).await;
    assert_eq!(names(&all), ["Doomed", "Other"]);
    assert_eq!(all["totalCount"], 2);
    // Its tokens stop working, and it cannot get new ones.
    let r = app.user.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = permanent.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(expect_json(r, 401).await["error"], "invalid_client");
    // Deleting again is harmless.
    expect_ok(admin.delete(&app.path("")).send().await.unwrap()).await;

    // Restore: administrators only.
    let r = bob.post(&app.path("/restore")).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.post(&app.path("/restore")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{APPS}/id:4242/restore"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(admin.post(&app.path("/restore")).send().await.unwrap()).await;
    let got = expect_json(admin.get(&app.path("")).send().await.unwrap(), 200).await;
    assert_eq!(got["archived"], false);
    assert_eq!(got["state"], "active");
    let list = expect_json(
        admin.get(&format!("{APPS}/paged")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(names(&list), ["Doomed", "Other"]);
    // The old tokens stay dead; a new one works.
    let r = app.user.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let token = access_token(&server.base, &app.client_id, &app.secret).await;
    let again = user_with(&server.base, &token, "app");
    let me = expect_json(again.get(&format!("{APPS}/me")).send().await.unwrap(), 200).await;
    assert_eq!(me["name"], "Doomed");
    // An application may archive itself.
    expect_ok(again.delete(&format!("{APPS}/me")).send().await.unwrap()).await;
    let got = expect_json(admin.get(&app.path("")).send().await.unwrap(), 200).await;
    assert_eq!(got["archived"], true);
}

// ---------------------------------------------------------------------------------------------
// Error message, health, last access, public keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn apps_report_errors_health_and_access() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let created = create_app(
        &admin,
        json!({"name": "Reporter", "endpointUri": "http://127.0.0.1:9/"}),
    )
    .await;
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let path = format!("{APPS}/clientId:{client_id}");
    assert_eq!(created["errorMessage"], Value::Null);
    assert_eq!(created["lastHealthyUtc"], Value::Null);

    // Never accessed with client credentials yet.
    let r = admin
        .get(&format!("{path}/last-client-credentials-access"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, Value::Null);
    let secret = read_client_secret(&admin, &client_id).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&client_id, Some(&secret))
        .header("user-agent", "reporter-bot/1.0")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let token = expect_json(r, 200).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let app = user_with(&server.base, &token, "app");
    // Recorded off the token answer's path: wait for it.
    let started = std::time::Instant::now();
    let access = loop {
        let r = bob
            .get(&format!("{path}/last-client-credentials-access"))
            .send()
            .await
            .unwrap();
        let access = expect_json(r, 200).await;
        if !access.is_null() || started.elapsed() > std::time::Duration::from_secs(5) {
            break access;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(access["userAgent"], "reporter-bot/1.0", "{access}");
    let time = access["time"].as_i64().unwrap();
    assert!(time >= before - 1000 && time <= before + 60_000, "{access}");
    let r = app
        .get(&format!("{APPS}/me/last-client-credentials-access"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, access);

    // error-message: the application's own, visible in GET; null clears it.
    let r = app
        .post(&format!("{APPS}/error-message"))
        .json(&json!({"message": "cannot reach the database"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let got = expect_json(bob.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(got["errorMessage"], "cannot reach the database");
    let r = app
        .post(&format!("{APPS}/error-message"))
        .json(&json!({"message": "x".repeat(1001)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
    let r = app
        .post(&format!("{APPS}/error-message"))
        .json(&json!({"message": "m", "extra": 1}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    for member in [&bob, &admin] {
        let r = member
            .post(&format!("{APPS}/error-message"))
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    let got = expect_json(admin.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(got["errorMessage"], "cannot reach the database");
    let r = app
        .post(&format!("{APPS}/error-message"))
        .json(&json!({"message": null}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let got = expect_json(admin.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(got["errorMessage"], Value::Null);

    // report-application-as-healthy.
    for member in [&bob, &admin] {
        let r = member
            .post(&format!("{APPS}/report-application-as-healthy"))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    let got = expect_json(admin.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(got["lastHealthyUtc"], Value::Null);
    expect_ok(
        app.post(&format!("{APPS}/report-application-as-healthy"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let got = expect_json(admin.get(&path).send().await.unwrap(), 200).await;
    let healthy = got["lastHealthyUtc"].as_i64().expect("a time");
    assert!(healthy >= before - 1000, "{got}");

    // public-keys: a JSON string holding a JWKS with one Ed25519 key.
    let r = bob
        .get(&format!("{path}/public-keys"))
        .send()
        .await
        .unwrap();
    let keys = expect_json(r, 200).await;
    let jwks: Value = serde_json::from_str(keys.as_str().expect("a JSON string")).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap();
    assert_eq!(x.len(), 32);
    ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).expect("a valid Ed25519 key");
    let r = app
        .get(&format!("{APPS}/me/public-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, keys);

    // Other applications: 404; unknown 404; malformed 400.
    let other = new_app(&admin, "Other").await;
    for rest in ["/last-client-credentials-access", "/public-keys"] {
        let r = other
            .user
            .get(&format!("{path}{rest}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = admin
            .get(&format!("{APPS}/id:77{rest}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = admin
            .get(&format!("{APPS}/xyz{rest}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-application").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn app_secrets_are_read_and_regenerated() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Secretive").await;
    let other = new_app(&admin, "Other").await;

    // client-secret: the administrator and the application itself with a permanent token; never
    // with the OAuth access token the secret was exchanged for (tests/containment.rs).
    let r = admin.get(&app.path("/client-secret")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, app.secret.as_str());
    let r = app
        .user
        .post(&app.path("/permanent-tokens"))
        .json(&json!({"name": "secrets", "scope": "**"}))
        .send()
        .await
        .unwrap();
    let permanent = expect_json(r, 201).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let app_itself = User {
        token: permanent,
        ..app.user.clone()
    };
    let r = app_itself
        .get(&format!("{APPS}/me/client-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, app.secret.as_str());
    let r = app
        .user
        .get(&format!("{APPS}/me/client-secret"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // Secrets and their regeneration: 403 for a member, 404 for another app or an unknown one.
    for name in [
        "client-secret",
        "signing-key",
        "verification-token",
        "bearer-token",
    ] {
        let r = bob
            .get(&app.path(&format!("/{name}")))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = other
            .user
            .get(&app.path(&format!("/{name}")))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = admin
            .get(&format!("{APPS}/id:1/{name}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = bob.get(&format!("{APPS}/me/{name}")).send().await.unwrap();
        expect_error(r, 400, "bad-application").await;
    }
    for name in ["client-secret", "signing-key", "verification-token"] {
        let r = bob
            .post(&app.path(&format!("/{name}/regenerate")))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = other
            .user
            .post(&app.path(&format!("/{name}/regenerate")))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = admin
            .post(&format!("{APPS}/id:1/{name}/regenerate"))
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }

    // Regenerating the client secret: the old one fails at the token endpoint.
    expect_ok(
        admin
            .post(&app.path("/client-secret/regenerate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin.get(&app.path("/client-secret")).send().await.unwrap();
    let fresh = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert_ne!(fresh, app.secret);
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(expect_json(r, 401).await["error"], "invalid_client");
    access_token(&server.base, &app.client_id, &fresh).await;
    // The application can regenerate its own with a permanent token (its access token keeps working).
    expect_ok(
        app_itself
            .post(&format!("{APPS}/me/client-secret/regenerate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = app_itself
        .get(&format!("{APPS}/me/client-secret"))
        .send()
        .await
        .unwrap();
    let third = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert_ne!(third, fresh);
    access_token(&server.base, &app.client_id, &third).await;

    // Signing key: 64 hex digits, changed by regenerate.
    let r = admin.get(&app.path("/signing-key")).send().await.unwrap();
    let key = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(is_hex(&key, 64), "{key}");
    let r = app
        .user
        .get(&format!("{APPS}/me/signing-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, key.as_str());
    expect_ok(
        admin
            .post(&app.path("/signing-key/regenerate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin.get(&app.path("/signing-key")).send().await.unwrap();
    let key2 = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(is_hex(&key2, 64), "{key2}");
    assert_ne!(key, key2);
    // Another application's key differs.
    let r = admin.get(&other.path("/signing-key")).send().await.unwrap();
    assert_ne!(expect_json(r, 200).await, key2.as_str());

    // Verification token.
    let r = admin
        .get(&app.path("/verification-token"))
        .send()
        .await
        .unwrap();
    let vt = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(vt.len() >= 32, "{vt}");
    expect_ok(
        app.user
            .post(&format!("{APPS}/me/verification-token/regenerate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = app
        .user
        .get(&format!("{APPS}/me/verification-token"))
        .send()
        .await
        .unwrap();
    let vt2 = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(vt2.len() >= 32);
    assert_ne!(vt, vt2);

    // Bearer token (for calls to the application's endpoint): null until set.
    let r = admin.get(&app.path("/bearer-token")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, Value::Null);
    let r = admin
        .patch(&app.path(""))
        .json(&json!({"bearerAuthToken": "endpoint-bearer-123"}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(updated["hasBearerAuthToken"], true);
    assert!(
        !updated.to_string().contains("endpoint-bearer-123"),
        "{updated}"
    );
    let r = admin.get(&app.path("/bearer-token")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, "endpoint-bearer-123");
    let r = app
        .user
        .get(&format!("{APPS}/me/bearer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "endpoint-bearer-123");
    // Members see neither it nor whether there is one (endpoint credentials are for those who
    // manage the application).
    let got = expect_json(bob.get(&app.path("")).send().await.unwrap(), 200).await;
    assert!(got.get("hasBearerAuthToken").is_none(), "{got}");
    assert!(!got.to_string().contains("endpoint-bearer-123"));
    assert!(!got.to_string().contains(&third));
}

// ---------------------------------------------------------------------------------------------
// Permanent tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn permanent_tokens_lifecycle() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Tokens").await;
    let other = new_app(&admin, "Other").await;
    let tokens = app.path("/permanent-tokens");

    let r = admin
        .post(&tokens)
        .json(&json!({"name": "deploy", "scope": "**", "expires": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    let created = expect_json(r, 201).await;
    let value = created["token"].as_str().unwrap().to_string();
    assert!(value.starts_with("hgr_"), "{value}");
    assert_eq!(created["name"], "deploy");
    assert_eq!(created["scope"], "**");
    assert_eq!(created["expires"], 4070908800000i64);
    assert_eq!(created["lastAccess"], Value::Null);
    let id = created["id"].as_str().unwrap().to_string();
    // The token works as a bearer for the application.
    let permanent = user_with(&server.base, &value, "permanent");
    let me = expect_json(
        permanent.get(&format!("{APPS}/me")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(me["id"], app.id.as_str());
    let r = permanent.get(&other.path("")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;

    // The application creates one too (epoch milliseconds expiry, a right-code scope).
    let r = app
        .user
        .post(&format!("{APPS}/me/permanent-tokens"))
        .json(&json!({"name": "self", "scope": "Channel.ViewMessages Unfurls.Provide", "expires": 4102444800000i64}))
        .send()
        .await
        .unwrap();
    let second = expect_json(r, 201).await;
    assert_eq!(second["scope"], "Channel.ViewMessages Unfurls.Provide");
    // Made with the application's OAuth access token, it expires no later than that token
    // (SPEC §3: ten minutes), whatever was asked.
    let expires = second["expires"].as_i64().unwrap();
    assert!(
        expires <= hangar_core::now_ms() + 10 * 60 * 1000,
        "{second}"
    );
    let second_id = second["id"].as_str().unwrap().to_string();

    // Bad input.
    for (body, code) in [
        (json!({"scope": "**"}), "bad-name"),
        (json!({"name": "", "scope": "**"}), "bad-name"),
        (json!({"name": "n"}), "bad-scope"),
        (json!({"name": "n", "scope": "Nope.Right"}), "bad-scope"),
        (json!({"name": "n", "scope": 5}), "bad-scope"),
        (
            json!({"name": "n", "scope": "**", "expires": "2001-01-01T00:00:00Z"}),
            "bad-expiry",
        ),
        (
            json!({"name": "n", "scope": "**", "expires": "tomorrow"}),
            "bad-expiry",
        ),
        (
            json!({"name": "n", "scope": "**", "colour": "red"}),
            "bad-field",
        ),
    ] {
        let r = admin.post(&tokens).json(&body).send().await.unwrap();
        expect_error(r, 400, code).await;
    }
    // Who may not.
    let r = bob
        .post(&tokens)
        .json(&json!({"name": "b", "scope": "**"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob.get(&tokens).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&tokens)
        .json(&json!({"name": "b", "scope": "**"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other.user.get(&tokens).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/id:9/permanent-tokens"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // The list shows both, never their values.
    let list = expect_json(admin.get(&tokens).send().await.unwrap(), 200).await;
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["next"], "2");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|t| t.get("token").is_none()), "{list}");
    assert!(!list.to_string().contains(&value));
    let mut listed: Vec<&str> = data.iter().map(|t| t["name"].as_str().unwrap()).collect();
    listed.sort();
    assert_eq!(listed, ["deploy", "self"]);
    let r = permanent
        .get(&format!("{APPS}/me/permanent-tokens?$top=1"))
        .send()
        .await
        .unwrap();
    let page = expect_json(r, 200).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], "1");
    assert_eq!(page["totalCount"], 2);
    // OAuth access tokens are not permanent tokens.
    assert!(data.iter().all(|t| t["name"] != "OAuth access token"));

    // Update name, scope and expiry.
    let r = admin
        .patch(&format!("{tokens}/{id}"))
        .json(&json!({"name": "deploy-ro", "scope": "read", "expires": null}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let list = expect_json(admin.get(&tokens).send().await.unwrap(), 200).await;
    let t = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(t["name"], "deploy-ro");
    assert_eq!(t["scope"], "read");
    assert_eq!(t["expires"], Value::Null);
    // A read-only token reads but cannot change.
    expect_json(
        permanent.get(&format!("{APPS}/me")).send().await.unwrap(),
        200,
    )
    .await;
    let r = permanent
        .patch(&format!("{APPS}/me"))
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    for (body, status, code) in [
        (json!({"scope": "bad"}), 400, "bad-scope"),
        (json!({"expires": 1}), 400, "bad-expiry"),
        (json!({"name": 3}), 400, "bad-name"),
        (json!({"owner": "x"}), 400, "bad-field"),
    ] {
        let r = admin
            .patch(&format!("{tokens}/{id}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, status, code).await;
    }
    let r = admin
        .patch(&format!("{tokens}/123"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&format!("{tokens}/abc"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-token-id").await;
    let r = bob
        .patch(&format!("{tokens}/{id}"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&format!("{tokens}/{id}"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Another application's token id is not found under this one.
    let r = other
        .user
        .post(&format!("{APPS}/me/permanent-tokens"))
        .json(&json!({"name": "theirs", "scope": "**"}))
        .send()
        .await
        .unwrap();
    let theirs = expect_json(r, 201).await;
    let theirs_id = theirs["id"].as_str().unwrap();
    let r = admin
        .delete(&format!("{tokens}/{theirs_id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Delete by id: the token stops working.
    let r = bob.delete(&format!("{tokens}/{id}")).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .delete(&format!("{tokens}/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .delete(&format!("{tokens}/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = permanent.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let r = admin
        .delete(&format!("{tokens}/{id}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.delete(&format!("{tokens}/x1")).send().await.unwrap();
    expect_error(r, 400, "bad-token-id").await;

    // Delete current: only with the permanent token being deleted.
    let r = admin
        .delete(&format!("{tokens}/current"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "not-a-permanent-token").await;
    let r = app
        .user
        .delete(&format!("{APPS}/me/permanent-tokens/current"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "not-a-permanent-token").await;
    let theirs_user = user_with(&server.base, theirs["token"].as_str().unwrap(), "theirs");
    let r = theirs_user
        .delete(&format!("{tokens}/current"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&tokens)
        .json(&json!({"name": "short-lived", "scope": "**"}))
        .send()
        .await
        .unwrap();
    let third = expect_json(r, 201).await;
    let third_user = user_with(&server.base, third["token"].as_str().unwrap(), "third");
    expect_ok(
        third_user
            .delete(&format!("{APPS}/me/permanent-tokens/current"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = third_user.get(&format!("{APPS}/me")).send().await.unwrap();
    expect_error(r, 401, "unauthenticated").await;
    let list = expect_json(admin.get(&tokens).send().await.unwrap(), 200).await;
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["data"][0]["id"], second_id.as_str());
    // The OAuth access token still works.
    expect_json(
        app.user.get(&format!("{APPS}/me")).send().await.unwrap(),
        200,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn app_parameters_and_their_limits() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Params").await;
    let other = new_app(&admin, "Other").await;
    let params = format!("{APPS}/parameters");

    let r = app.user.get(&params).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = app
        .user
        .patch(&format!("{params}/colour"))
        .json(&json!({"value": "blue"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .patch(&format!("{params}/a%20b"))
        .json(&json!({"value": ""}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .get(&format!("{params}/colour"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "blue");
    let r = app
        .user
        .get(&format!("{params}/a%20b"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "");
    // Overwrite.
    let r = app
        .user
        .patch(&format!("{params}/colour"))
        .json(&json!({"value": "green"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app.user.get(&params).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"key": "a b", "value": ""}, {"key": "colour", "value": "green"}])
    );
    // Each application has its own.
    let r = other
        .user
        .get(&format!("{params}/colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other.user.get(&params).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));

    // Limits and bad input.
    let long_key = "k".repeat(65);
    let r = app
        .user
        .patch(&format!("{params}/{long_key}"))
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-key").await;
    let ok_key = "k".repeat(64);
    let r = app
        .user
        .patch(&format!("{params}/{ok_key}"))
        .json(&json!({"value": "v".repeat(1000)}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .patch(&format!("{params}/big"))
        .json(&json!({"value": "v".repeat(1001)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-value").await;
    let r = app
        .user
        .patch(&format!("{params}/big"))
        .json(&json!({"value": 5}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = app.user.get(&format!("{params}/big")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;

    // Member tokens (administrator included): 403 on all four.
    for member in [&bob, &admin] {
        let r = member.get(&params).send().await.unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = member
            .get(&format!("{params}/colour"))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = member
            .patch(&format!("{params}/colour"))
            .json(&json!({"value": "red"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = member
            .delete(&format!("{params}/colour"))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    // Profile parameters need a member's token issued to an application, not the app's own.
    let profile = format!("{params}/profile");
    let r = app.user.get(&profile).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .get(&format!("{profile}/colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .patch(&format!("{profile}/colour"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .delete(&format!("{profile}/colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob.get(&profile).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;

    // Delete.
    expect_ok(
        app.user
            .delete(&format!("{params}/colour"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = app
        .user
        .get(&format!("{params}/colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = app
        .user
        .delete(&format!("{params}/colour"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .delete(&format!("{params}/a%20b"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        app.user
            .delete(&format!("{params}/a%20b"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_ok(
        app.user
            .delete(&format!("{params}/{ok_key}"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // 100 keys at most, even when 120 distinct keys arrive at once.
    let requests = (0..120).map(|i| {
        let user = app.user.clone();
        let path = format!("{params}/key-{i:03}");
        async move {
            let r = user
                .patch(&path)
                .json(&json!({"value": format!("v{i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s != 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok, 100, "{refused:?}");
    assert_eq!(refused.len(), 20);
    for body in refused {
        assert_eq!(body["httpStatusCode"], 413, "{body}");
        assert_eq!(body["error"], "limits-reached", "{body}");
    }
    let list = expect_json(app.user.get(&params).send().await.unwrap(), 200).await;
    assert_eq!(list.as_array().unwrap().len(), 100);
    // At the limit: updating an existing key works, a new key does not; after a delete it does.
    let existing = list[0]["key"].as_str().unwrap().to_string();
    let r = app
        .user
        .patch(&format!("{params}/{existing}"))
        .json(&json!({"value": "new"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .get(&format!("{params}/{existing}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "new");
    let r = app
        .user
        .patch(&format!("{params}/one-more"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    expect_ok(
        app.user
            .delete(&format!("{params}/{existing}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = app
        .user
        .patch(&format!("{params}/one-more"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    // The other application's limit is its own.
    let r = other
        .user
        .patch(&format!("{params}/mine"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
}

#[tokio::test]
async fn profile_parameters_need_a_member_token_issued_to_the_app() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    server.member("carol").await;
    let redirect = "http://127.0.0.1:9/callback";
    let app = new_app_with(
        &admin,
        json!({"name": "Profiles", "endpointUri": "http://127.0.0.1:9/", "codeFlowEnabled": true,
               "codeFlowRedirectURIs": redirect}),
    )
    .await;
    let tokens = code_flow_tokens(&server.base, &app, "bob", redirect).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("hgr_"));
    let bob_via_app = user_with(
        &server.base,
        tokens["access_token"].as_str().unwrap(),
        "bob-app",
    );
    let carol_tokens = code_flow_tokens(&server.base, &app, "carol", redirect).await;
    let carol_via_app = user_with(
        &server.base,
        carol_tokens["access_token"].as_str().unwrap(),
        "carol-app",
    );
    let profile = format!("{APPS}/parameters/profile");

    let r = bob_via_app.get(&profile).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = bob_via_app
        .patch(&format!("{profile}/theme"))
        .json(&json!({"value": "dark"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = bob_via_app
        .get(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "dark");
    let r = bob_via_app.get(&profile).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"key": "theme", "value": "dark"}])
    );
    // Each member's profile is their own.
    let r = carol_via_app
        .get(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = carol_via_app.get(&profile).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    // Limits as for application parameters.
    let r = bob_via_app
        .patch(&format!("{profile}/{}", "k".repeat(65)))
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-key").await;
    let r = bob_via_app
        .patch(&format!("{profile}/big"))
        .json(&json!({"value": "v".repeat(1001)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-value").await;
    // The application's own parameters are not for a member's token, and vice versa.
    let r = bob_via_app
        .get(&format!("{APPS}/parameters"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .get(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // A member's personal token is not issued to an application.
    let r = bob.get(&format!("{profile}/theme")).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .patch(&format!("{profile}/theme"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .delete(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // Delete.
    let r = carol_via_app
        .delete(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        bob_via_app
            .delete(&format!("{profile}/theme"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = bob_via_app
        .get(&format!("{profile}/theme"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // The member token views the application like its member would, not as the application.
    let r = bob_via_app.get(&format!("{APPS}/me")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await["id"], app.id.as_str());
    let r = bob_via_app
        .get(&format!("{APPS}/me/client-secret"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // The refresh token gives a new pair once.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    let renewed = expect_json(r, 200).await;
    let renewed_user = user_with(
        &server.base,
        renewed["access_token"].as_str().unwrap(),
        "bob-app2",
    );
    let r = renewed_user.get(&profile).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(expect_json(r, 400).await["error"], "invalid_grant");
}

// ---------------------------------------------------------------------------------------------
// Rights
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rights_are_required_requested_granted_and_revoked() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Rightful").await;
    let other = new_app(&admin, "Other").await;
    let required = app.path("/authorizations/required-rights");
    let authorized = app.path("/authorizations/authorized-rights");
    let project = "project:key:ABC";

    // Required rights.
    let r = admin.get(&required).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = app
        .user
        .patch(&format!("{APPS}/me/authorizations/required-rights"))
        .json(&json!({"rightCodesToAdd": ["Project.Issues.View", "Channel.PostMessages", "Unfurls.Provide"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .patch(&required)
        .json(&json!({"rightCodesToRemove": ["Unfurls.Provide"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = bob.get(&required).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"rightCode": "Channel.PostMessages", "name": "Post messages"},
            {"rightCode": "Project.Issues.View", "name": "View issues"},
        ])
    );
    let r = admin
        .patch(&required)
        .json(&json!({"rightCodesToAdd": ["Nope.Right"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-right").await;
    let r = admin
        .patch(&required)
        .json(&json!({"rightCodes": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = bob
        .patch(&required)
        .json(&json!({"rightCodesToAdd": ["Unfurls.Provide"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&required)
        .json(&json!({"rightCodesToAdd": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other.user.get(&required).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/id:5/authorizations/required-rights"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // The application requests rights: PENDING.
    let request = format!("{APPS}/me/authorizations/authorized-rights/request-rights");
    let r = app
        .user
        .patch(&request)
        .json(&json!({"contextIdentifier": project, "rightCodes": ["Project.Issues.View", "Project.Issues.Create"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .get(&format!("{authorized}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"rightCode": "Project.Issues.Create", "name": "Create and update issues", "status": "PENDING"},
            {"rightCode": "Project.Issues.View", "name": "View issues", "status": "PENDING"},
        ])
    );
    for (body, code) in [
        (
            json!({"contextIdentifier": "project:key:abc", "rightCodes": ["Project.Issues.View"]}),
            "bad-context",
        ),
        (
            json!({"contextIdentifier": "team:id:1", "rightCodes": ["Project.Issues.View"]}),
            "bad-context",
        ),
        (
            json!({"contextIdentifier": project, "rightCodes": ["Nope.Right"]}),
            "bad-right",
        ),
        (
            json!({"contextIdentifier": project, "rightCodes": ["Channel.ViewMessages"]}),
            "bad-right",
        ),
    ] {
        let r = app.user.patch(&request).json(&body).send().await.unwrap();
        expect_error(r, 400, code).await;
    }
    let body = json!({"contextIdentifier": project, "rightCodes": ["Project.Issues.View"]});
    let r = bob
        .patch(&app.path("/authorizations/authorized-rights/request-rights"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&app.path("/authorizations/authorized-rights/request-rights"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Granting: the administrator only.
    let grant = |status: &str| json!({"contextIdentifier": project, "rights": [{"rightCode": "Project.Issues.View", "status": status}]});
    let r = app
        .user
        .patch(&format!("{APPS}/me/authorizations/authorized-rights"))
        .json(&grant("GRANTED"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .patch(&format!("{APPS}/me/authorizations/authorized-rights"))
        .json(&grant("DENIED"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .patch(&authorized)
        .json(&grant("GRANTED"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&authorized)
        .json(&grant("GRANTED"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&authorized)
        .json(&grant("MAYBE"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-status").await;
    let r = admin
        .patch(&authorized)
        .json(&json!({"contextIdentifier": "nowhere", "rights": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-context").await;
    let r = admin
        .patch(&authorized)
        .json(&json!({"contextIdentifier": project, "rights": [{"rightCode": "X.Y", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-right").await;
    expect_ok(
        admin
            .patch(&authorized)
            .json(&grant("GRANTED"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .patch(&authorized)
        .json(&json!({"contextIdentifier": project, "rights": [{"rightCode": "Project.Issues.Create", "status": "DENIED"}]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .patch(&authorized)
        .json(&json!({"contextIdentifier": "global", "rights": [{"rightCode": "Unfurls.Provide", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    // The application may mark a right PENDING itself.
    let r = app
        .user
        .patch(&format!("{APPS}/me/authorizations/authorized-rights"))
        .json(&json!({"contextIdentifier": "channel:id:7", "rights": [{"rightCode": "Channel.ViewMessages", "status": "PENDING"}]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    // Requesting a granted right again leaves it granted.
    let r = app
        .user
        .patch(&request)
        .json(&json!({"contextIdentifier": project, "rightCodes": ["Project.Issues.View"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;

    // Rights per context.
    let r = bob
        .get(&format!("{authorized}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"rightCode": "Project.Issues.Create", "name": "Create and update issues", "status": "DENIED"},
            {"rightCode": "Project.Issues.View", "name": "View issues", "status": "GRANTED"},
        ])
    );
    let r = app
        .user
        .get(&format!(
            "{APPS}/me/authorizations/authorized-rights?contextIdentifier=global"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"rightCode": "Unfurls.Provide", "name": "Provide link previews", "status": "GRANTED"}])
    );
    let r = admin
        .get(&format!("{authorized}?contextIdentifier=channel:id:7"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await[0]["status"], "PENDING");
    let r = admin.get(&authorized).send().await.unwrap();
    expect_error(r, 400, "bad-context").await;
    let r = admin
        .get(&format!("{authorized}?contextIdentifier=channel:id:01"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-context").await;
    let r = other
        .user
        .get(&format!("{authorized}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Authorized contexts: where something is granted; a member who does not manage the
    // application sees only the places they can see (bob is in no project ABC).
    let contexts = app.path("/authorizations/authorized-contexts");
    let r = admin.get(&contexts).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"contextIdentifier": "global", "type": "global"},
            {"contextIdentifier": project, "type": "project"},
        ])
    );
    let r = bob.get(&contexts).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"contextIdentifier": "global", "type": "global"}])
    );
    let r = other.user.get(&contexts).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .get(&format!("{APPS}/me/authorizations/authorized-contexts"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));

    // Authorized applications of a context.
    let apps_in = format!("{APPS}/authorizations/authorized-applications");
    let r = bob
        .get(&format!("{apps_in}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    let list = expect_json(r, 200).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], app.id.as_str());
    assert_eq!(list[0]["name"], "Rightful");
    let r = admin
        .get(&format!("{apps_in}?contextIdentifier=channel:id:7"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([]),
        "PENDING is not authorized"
    );
    let r = other
        .user
        .get(&format!("{apps_in}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([]),
        "an application sees itself only"
    );
    let r = app
        .user
        .get(&format!("{apps_in}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await.as_array().unwrap().len(), 1);
    let r = admin.get(&apps_in).send().await.unwrap();
    expect_error(r, 400, "bad-context").await;
    let r = admin
        .get(&format!("{apps_in}?contextIdentifier=project"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-context").await;

    // Delete the rights of one context.
    let r = bob
        .delete(&format!("{authorized}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .delete(&format!("{authorized}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.delete(&authorized).send().await.unwrap();
    expect_error(r, 400, "bad-context").await;
    expect_ok(
        admin
            .delete(&format!("{authorized}?contextIdentifier={project}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .get(&format!("{authorized}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = admin
        .get(&format!("{authorized}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await.as_array().unwrap().len(),
        1,
        "other contexts stay"
    );
    let r = admin
        .get(&format!("{apps_in}?contextIdentifier={project}"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = admin.get(&contexts).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"contextIdentifier": "global", "type": "global"}])
    );
    // The application can delete its own rights.
    expect_ok(
        app.user
            .delete(&format!(
                "{APPS}/me/authorizations/authorized-rights?contextIdentifier=global"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin.get(&contexts).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
}

// ---------------------------------------------------------------------------------------------
// GPG and SSH keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gpg_and_ssh_keys() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Keys").await;
    let other = new_app(&admin, "Other").await;
    let gpg = app.path("/gpg-keys");

    // GPG: malformed blocks are refused.
    let (block, fingerprint) = gpg_block(7);
    let (block2, fingerprint2) = gpg_block(8);
    assert_ne!(fingerprint, fingerprint2);
    let bad_crc = block
        .lines()
        .map(|l| if l.starts_with('=') { "=AAAA" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    for bad in [
        "not a key".to_string(),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----"
            .to_string(),
        bad_crc,
        SSH_KEY.to_string(),
    ] {
        let r = admin
            .post(&gpg)
            .json(&json!({"publicKey": bad}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-key").await;
    }
    let r = admin
        .post(&gpg)
        .json(&json!({"publicKey": block, "comment": "x".repeat(201)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-comment").await;
    let r = bob
        .post(&gpg)
        .json(&json!({"publicKey": block}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&gpg)
        .json(&json!({"publicKey": block}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{APPS}/id:3/gpg-keys"))
        .json(&json!({"publicKey": block}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    let r = admin
        .post(&gpg)
        .json(&json!({"publicKey": block, "comment": "release key"}))
        .send()
        .await
        .unwrap();
    let added = expect_json(r, 201).await;
    assert_eq!(added["fingerprint"], fingerprint.as_str());
    assert_eq!(added["comment"], "release key");
    assert_eq!(added["revoked"], false);
    assert_eq!(added["revokeComment"], Value::Null);
    assert_eq!(added["publicKey"], block.as_str());
    let r = admin
        .post(&gpg)
        .json(&json!({"publicKey": block}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "key-exists").await;
    let r = app
        .user
        .post(&format!("{APPS}/me/gpg-keys"))
        .json(&json!({"publicKey": block2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 201).await["fingerprint"],
        fingerprint2.as_str()
    );
    let r = bob.get(&gpg).send().await.unwrap();
    let list = expect_json(r, 200).await;
    let mut fps: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap())
        .collect();
    fps.sort();
    let mut want = vec![fingerprint.as_str(), fingerprint2.as_str()];
    want.sort();
    assert_eq!(fps, want);
    let r = other.user.get(&gpg).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .get(&format!("{APPS}/me/gpg-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));

    // Revoke (lowercase fingerprints are accepted).
    let key_path = format!("{gpg}/{}", fingerprint.to_lowercase());
    let r = bob
        .patch(&key_path)
        .json(&json!({"comment": "leaked"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&key_path)
        .json(&json!({"comment": "leaked"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&format!("{gpg}/{}", "0".repeat(40)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .patch(&key_path)
            .json(&json!({"comment": "leaked"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let list = expect_json(admin.get(&gpg).send().await.unwrap(), 200).await;
    let k = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["fingerprint"] == fingerprint.as_str())
        .unwrap();
    assert_eq!(k["revoked"], true);
    assert_eq!(k["revokeComment"], "leaked");
    let k2 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["fingerprint"] == fingerprint2.as_str())
        .unwrap();
    assert_eq!(k2["revoked"], false);

    // Delete.
    let r = bob
        .delete(&format!("{gpg}/{fingerprint}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .delete(&format!("{gpg}/{fingerprint}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .delete(&format!("{gpg}/{fingerprint}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .delete(&format!("{gpg}/{fingerprint}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let list = expect_json(admin.get(&gpg).send().await.unwrap(), 200).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["fingerprint"], fingerprint2.as_str());
    // Once deleted, it may be added again.
    let r = admin
        .post(&gpg)
        .json(&json!({"publicKey": block}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 201).await["revoked"], false);

    // SSH keys.
    let ssh = app.path("/ssh-keys");
    let fp = ssh_fingerprint(SSH_KEY);
    for bad in [
        "hello",
        "ssh-ed25519 !!!",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    ] {
        let r = admin
            .post(&ssh)
            .json(&json!({"publicKey": bad}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-key").await;
    }
    let r = bob
        .post(&ssh)
        .json(&json!({"publicKey": SSH_KEY}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&ssh)
        .json(&json!({"publicKey": SSH_KEY}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&ssh)
        .json(&json!({"key": SSH_KEY}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = admin
        .post(&ssh)
        .json(&json!({"publicKey": format!("  {SSH_KEY}\n")}))
        .send()
        .await
        .unwrap();
    let added = expect_json(r, 201).await;
    assert_eq!(added["fingerprint"], fp.as_str());
    assert_eq!(added["keyType"], "ssh-ed25519");
    assert_eq!(added["comment"], "me@host");
    assert_eq!(added["publicKey"], SSH_KEY);
    let r = app
        .user
        .post(&format!("{APPS}/me/ssh-keys"))
        .json(&json!({"publicKey": SSH_KEY, "comment": "dup"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "key-exists").await;
    // The same key on another application is fine.
    let r = other
        .user
        .post(&format!("{APPS}/me/ssh-keys"))
        .json(&json!({"publicKey": SSH_KEY, "comment": "theirs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 201).await["comment"], "theirs");
    let r = bob.get(&ssh).send().await.unwrap();
    let list = expect_json(r, 200).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["fingerprint"], fp.as_str());
    assert_eq!(list[0]["comment"], "me@host");
    let r = other.user.get(&ssh).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    // Delete by fingerprint, URL-encoded.
    let r = admin
        .delete(&format!("{ssh}/{}", enc("SHA256:AAAAunknown/+AAAA")))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = bob
        .delete(&format!("{ssh}/{}", enc(&fp)))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .delete(&format!("{ssh}/{}", enc(&fp)))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .delete(&format!("{ssh}/{}", enc(&fp)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin.get(&ssh).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = admin
        .delete(&format!("{ssh}/{}", enc(&fp)))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Without the SHA256: prefix, by the application itself.
    let r = other
        .user
        .delete(&format!(
            "{APPS}/me/ssh-keys/{}",
            enc(fp.strip_prefix("SHA256:").unwrap())
        ))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = other
        .user
        .get(&format!("{APPS}/me/ssh-keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
}

// ---------------------------------------------------------------------------------------------
// Unfurls
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unfurl_domains_patterns_and_queue() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Unfurler").await;
    let other = new_app(&admin, "Other").await;
    // The queue calls need Unfurls.Provide, granted by an administrator.
    let r = app
        .user
        .get(&format!("{APPS}/unfurls/queue?batchSize=1"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = admin
        .patch(&app.path("/authorizations/authorized-rights"))
        .json(&json!({"contextIdentifier": "global",
            "rights": [{"rightCode": "Unfurls.Provide", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let domains = format!("{APPS}/unfurls/domains");
    let patterns = format!("{APPS}/unfurls/patterns");

    // Declared by the application itself only.
    for member in [&bob, &admin] {
        let r = member
            .patch(&domains)
            .json(&json!({"domains": ["example.com"]}))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = member
            .patch(&patterns)
            .json(&json!({"patterns": ["JIRA-"]}))
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    let r = app
        .user
        .patch(&domains)
        .json(&json!({"domains": ["exa mple.com"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-domain").await;
    let r = app
        .user
        .patch(&patterns)
        .json(&json!({"patterns": ["has space"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-pattern").await;
    let many: Vec<String> = (0..101).map(|i| format!("d{i}.example.com")).collect();
    let r = app
        .user
        .patch(&domains)
        .json(&json!({"domains": many}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    let r = app
        .user
        .patch(&domains)
        .json(&json!({"domains": [" Example.COM ", "*.docs.io", "old.net"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .patch(&patterns)
        .json(&json!({"patterns": ["JIRA-", "gh:"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let d = app.path("/unfurl-domains");
    let p = app.path("/unfurl-patterns");
    let r = bob.get(&d).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"domain": "*.docs.io", "status": "PENDING"},
            {"domain": "example.com", "status": "PENDING"},
            {"domain": "old.net", "status": "PENDING"},
        ])
    );
    let r = app
        .user
        .get(&format!("{APPS}/me/unfurl-patterns"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"pattern": "JIRA-", "status": "PENDING"}, {"pattern": "gh:", "status": "PENDING"}])
    );
    let r = other.user.get(&d).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other.user.get(&p).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/id:77/unfurl-domains"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Authorization: administrators only.
    let approve = json!({"domains": ["EXAMPLE.com"], "approve": true});
    let r = bob
        .post(&format!("{d}/authorize"))
        .json(&approve)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .post(&format!("{APPS}/me/unfurl-domains/authorize"))
        .json(&approve)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&format!("{d}/authorize"))
        .json(&approve)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{d}/authorize"))
        .json(&json!({"domains": ["never.org"], "approve": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "not-declared").await;
    let r = admin
        .post(&format!("{d}/authorize"))
        .json(&json!({"domains": ["example.com"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    expect_ok(
        admin
            .post(&format!("{d}/authorize"))
            .json(&approve)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .post(&format!("{d}/authorize"))
        .json(&json!({"domains": ["*.docs.io"], "approve": false}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .post(&format!("{p}/authorize"))
        .json(&json!({"patterns": ["gh:"], "approve": true}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .post(&format!("{p}/authorize"))
        .json(&json!({"patterns": ["JIRA-"], "approve": false}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .post(&format!("{p}/authorize"))
        .json(&json!({"patterns": ["other"], "approve": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "not-declared").await;
    let r = bob
        .post(&format!("{p}/authorize"))
        .json(&json!({"patterns": ["gh:"], "approve": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = admin.get(&d).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([
            {"domain": "*.docs.io", "status": "REJECTED"},
            {"domain": "example.com", "status": "APPROVED"},
            {"domain": "old.net", "status": "PENDING"},
        ])
    );
    let r = admin.get(&p).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"pattern": "JIRA-", "status": "REJECTED"}, {"pattern": "gh:", "status": "APPROVED"}])
    );
    // Declaring again keeps the verdicts of the domains kept and drops the others.
    let r = app
        .user
        .patch(&domains)
        .json(&json!({"domains": ["example.com", "new.org"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin.get(&d).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"domain": "example.com", "status": "APPROVED"}, {"domain": "new.org", "status": "PENDING"}])
    );

    // The queue.
    let queue = format!("{APPS}/unfurls/queue");
    let r = app.user.get(&queue).send().await.unwrap();
    expect_error(r, 400, "bad-batch-size").await;
    for bad in ["0", "101"] {
        let r = app
            .user
            .get(&format!("{queue}?batchSize={bad}"))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-batch-size").await;
    }
    let r = app
        .user
        .get(&format!("{queue}?batchSize=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = app
        .user
        .get(&format!("{queue}?batchSize=10&fromEtag=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = bob
        .get(&format!("{queue}?batchSize=10"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let content = format!("{queue}/content");
    let r = app
        .user
        .post(&content)
        .json(&json!({"unfurls": [{"etag": 12345, "content": {"title": "x"}}]}))
        .send()
        .await
        .unwrap();
    let results = expect_json(r, 200).await;
    assert_eq!(results.as_array().unwrap().len(), 1);
    assert_eq!(results[0]["etag"], 12345);
    assert_eq!(results[0]["success"], false);
    assert!(results[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    let r = bob
        .post(&content)
        .json(&json!({"unfurls": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .post(&content)
        .json(&json!({"unfurls": [{"etag": "x"}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    // At most 100 unfurls per call. (The error text speaks of "the file exceeds the limit of 100
    // bytes": a misleading message, noted in the report; the status and code are right.)
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"etag": i, "content": {}}))
        .collect();
    let r = app
        .user
        .post(&content)
        .json(&json!({"unfurls": many}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;

    // External authentication requests.
    let ext = format!("{queue}/request-external-auth");
    let reset = format!("{queue}/reset-external-auth-requests");
    let r = app
        .user
        .post(&ext)
        .json(&json!({"userId": "42", "message": "Log in to Jira"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .post(&ext)
        .json(&json!({"userId": "42", "message": "m".repeat(1001)}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-request").await;
    let r = app
        .user
        .post(&ext)
        .json(&json!({"message": "no user"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-json").await;
    let r = bob
        .post(&ext)
        .json(&json!({"userId": "42"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    expect_ok(
        app.user
            .post(&reset)
            .json(&json!({"userId": "42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = bob
        .post(&reset)
        .json(&json!({"userId": "42"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app.user.post(&reset).json(&json!({})).send().await.unwrap();
    expect_error(r, 400, "bad-json").await;
}

// ---------------------------------------------------------------------------------------------
// UI extensions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ui_extensions_and_their_preferences() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let carol = server.member("carol").await;
    let app = new_app(&admin, "Extender").await;
    let other = new_app(&admin, "Other").await;
    let set = format!("{APPS}/ui-extensions");
    let ext = |name: &str| json!({"className": name, "label": format!("{name} label")});

    for member in [&bob, &admin] {
        let r = member
            .patch(&set)
            .json(
                &json!({"contextIdentifier": "global", "extensions": [ext("ChatBotUiExtension")]}),
            )
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "global", "extensions": [{"label": "no class"}]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-extension").await;
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "everywhere", "extensions": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-context").await;
    let too_many: Vec<Value> = (0..51).map(|i| ext(&format!("E{i}"))).collect();
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "global", "extensions": too_many}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "global", "extensions": [ext("Old")]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    // Setting a context again replaces its extensions.
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "global", "extensions": [ext("ChatBotUiExtension"), ext("GettingStartedUiExtension")]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .patch(&set)
        .json(&json!({"contextIdentifier": "channel:id:5", "extensions": [ext("ChannelAction")]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;

    let get = app.path("/ui-extensions");
    let r = bob
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{
            "contextIdentifier": "global",
            "extensions": [ext("ChatBotUiExtension"), ext("GettingStartedUiExtension")],
            "enabledForEverybody": true,
            "enabledForMe": true,
        }])
    );
    let r = admin.get(&get).send().await.unwrap();
    let all = expect_json(r, 200).await;
    let contexts: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contextIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["channel:id:5", "global"]);
    assert_eq!(all[0]["extensions"], json!([ext("ChannelAction")]));
    let r = app
        .user
        .get(&format!(
            "{APPS}/me/ui-extensions?contextIdentifier=channel:id:5"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await.as_array().unwrap().len(), 1);
    let r = admin
        .get(&format!("{get}?contextIdentifier=channel:id:6"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = admin
        .get(&format!("{get}?contextIdentifier=bad"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-context").await;
    let r = other.user.get(&get).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{APPS}/id:8/ui-extensions"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .get(&format!("{APPS}/me/ui-extensions"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));

    // For everybody: administrators only.
    let global = json!({"contextIdentifier": "global"});
    for path in [
        "/ui-extensions/disable-for-everybody",
        "/ui-extensions/enable-for-everybody",
    ] {
        let r = bob
            .patch(&app.path(path))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = app
            .user
            .patch(&format!("{APPS}/me{path}"))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = other
            .user
            .patch(&app.path(path))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = admin
            .patch(&app.path(path))
            .json(&json!({"contextIdentifier": "x"}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-context").await;
        let r = admin
            .patch(&format!("{APPS}/id:8{path}"))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
    expect_ok(
        admin
            .patch(&app.path("/ui-extensions/disable-for-everybody"))
            .json(&global)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = bob
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    let state = expect_json(r, 200).await;
    assert_eq!(state[0]["enabledForEverybody"], false);
    assert_eq!(state[0]["enabledForMe"], false);
    // For me: any member, on their own preference.
    expect_ok(
        bob.patch(&app.path("/ui-extensions/enable-for-me"))
            .json(&global)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = bob
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    let state = expect_json(r, 200).await;
    assert_eq!(state[0]["enabledForEverybody"], false);
    assert_eq!(state[0]["enabledForMe"], true);
    let r = carol
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await[0]["enabledForMe"], false);
    expect_ok(
        admin
            .patch(&app.path("/ui-extensions/enable-for-everybody"))
            .json(&global)
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_ok(
        carol
            .patch(&app.path("/ui-extensions/disable-for-me"))
            .json(&global)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = carol
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    let state = expect_json(r, 200).await;
    assert_eq!(state[0]["enabledForEverybody"], true);
    assert_eq!(state[0]["enabledForMe"], false);
    let r = admin
        .get(&format!("{get}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await[0]["enabledForMe"], true);
    // The channel context is unaffected.
    let r = carol
        .get(&format!("{get}?contextIdentifier=channel:id:5"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await[0]["enabledForMe"], true);
    for path in [
        "/ui-extensions/enable-for-me",
        "/ui-extensions/disable-for-me",
    ] {
        let r = app
            .user
            .patch(&format!("{APPS}/me{path}"))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let r = other
            .user
            .patch(&app.path(path))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
        let r = bob
            .patch(&app.path(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-json").await;
        let r = bob
            .patch(&format!("{APPS}/id:8{path}"))
            .json(&global)
            .send()
            .await
            .unwrap();
        expect_error(r, 404, "not-found").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhooks_crud_secrets_and_custom_headers() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Hooked").await;
    let other = new_app(&admin, "Other").await;
    let hooks = app.path("/webhooks");

    let r = admin
        .post(&hooks)
        .json(&json!({
            "name": "Files",
            "description": "file events",
            "endpoint": {"url": "http://127.0.0.1:9/hook"},
            "acceptedHttpResponseCodes": [200, 204],
            "payloadTemplate": "{\"text\": \"{{ payload.name }}\"}",
            "subscriptions": [
                {"name": "uploads", "eventTypes": ["StorageFile.Created", "StorageFile.Deleted"]},
                {"name": "issues", "eventTypes": ["Issue.Created"], "contextIdentifier": "project:key:ABC", "enabled": false},
            ],
        }))
        .send()
        .await
        .unwrap();
    let hook = expect_json(r, 201).await;
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["name"], "Files");
    assert_eq!(hook["description"], "file events");
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["archived"], false);
    assert_eq!(
        hook["endpoint"],
        json!({"url": "http://127.0.0.1:9/hook", "sslVerification": true})
    );
    assert_eq!(
        hook["endpointAuth"],
        json!({"type": "none", "username": null})
    );
    assert_eq!(hook["acceptedHttpResponseCodes"], json!([200, 204]));
    assert_eq!(hook["doRetries"], true);
    let subs = hook["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    let uploads = subs.iter().find(|s| s["name"] == "uploads").unwrap();
    assert_eq!(
        uploads["eventTypes"],
        json!(["StorageFile.Created", "StorageFile.Deleted"])
    );
    assert_eq!(uploads["enabled"], true);
    assert_eq!(uploads["contextIdentifier"], Value::Null);
    assert!(uploads["id"].as_str().is_some_and(|s| !s.is_empty()));
    let issues = subs.iter().find(|s| s["name"] == "issues").unwrap();
    assert_eq!(issues["enabled"], false);
    assert_eq!(issues["contextIdentifier"], "project:key:ABC");
    assert!(!hook.to_string().contains("secrets"), "{hook}");

    // The application creates one too, on its own endpoint (endpoint null).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = app
        .user
        .post(&format!("{APPS}/me/webhooks"))
        .json(&json!({"name": "Chat feed", "endpoint": null}))
        .send()
        .await
        .unwrap();
    let second = expect_json(r, 201).await;
    assert_eq!(second["endpoint"], Value::Null);
    assert_eq!(second["subscriptions"], json!([]));
    let second_id = second["id"].as_str().unwrap().to_string();

    // Bad input; nothing is created.
    for (body, code) in [
        (json!({"description": "no name"}), "bad-webhook-field"),
        (
            json!({"name": "t", "payloadTemplate": "{{a"}),
            "bad-template",
        ),
        (
            json!({"name": "t", "payloadTemplate": "{{a b}}"}),
            "bad-template",
        ),
        (
            json!({"name": "t", "subscriptions": [{"name": "s", "eventTypes": ["Nope.Happened"]}]}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "subscriptions": [{"name": "s", "eventTypes": []}]}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "subscriptions": [{"eventTypes": ["Issue.Created"]}]}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "endpoint": {"url": "ftp://x/"}}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "acceptedHttpResponseCodes": [700]}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "endpointAuth": {"type": "basic", "username": "a:b", "password": "p"}}),
            "bad-webhook-field",
        ),
        (
            json!({"name": "t", "endpointAuth": {"type": "digest"}}),
            "bad-webhook-field",
        ),
        (json!({"name": "t", "colour": "red"}), "bad-webhook-field"),
    ] {
        let r = admin.post(&hooks).json(&body).send().await.unwrap();
        expect_error(r, 400, code).await;
    }
    // An application without an endpointUri needs the webhook's endpoint.
    let bare = create_app(&admin, json!({"name": "Bare"})).await;
    let r = admin
        .post(&format!(
            "{APPS}/id:{}/webhooks",
            bare["id"].as_str().unwrap()
        ))
        .json(&json!({"name": "nowhere"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-webhook-field").await;
    let r = bob
        .post(&hooks)
        .json(&json!({"name": "b"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&hooks)
        .json(&json!({"name": "b"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{APPS}/id:6/webhooks"))
        .json(&json!({"name": "b"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // The list.
    let r = bob.get(&hooks).send().await.unwrap();
    let list = expect_json(r, 200).await;
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["next"], "2");
    assert_eq!(names(&list), ["Files", "Chat feed"]);
    assert_eq!(
        list["data"][0]["subscriptions"].as_array().unwrap().len(),
        2
    );
    let r = admin
        .get(&format!("{hooks}?query=CHAT"))
        .send()
        .await
        .unwrap();
    let found = expect_json(r, 200).await;
    assert_eq!(names(&found), ["Chat feed"]);
    assert_eq!(found["totalCount"], 1);
    let r = admin
        .get(&format!("{hooks}?$top=1&$skip=1"))
        .send()
        .await
        .unwrap();
    let page = expect_json(r, 200).await;
    assert_eq!(names(&page), ["Chat feed"]);
    assert_eq!(page["next"], "2");
    assert_eq!(page["totalCount"], 2);
    let r = other.user.get(&hooks).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .get(&format!("{APPS}/me/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["totalCount"], 0);

    // Update.
    let hook_path = format!("{hooks}/{id}");
    let r = admin
        .patch(&hook_path)
        .json(&json!({"name": "Files v2", "enabled": false, "doRetries": false, "endpointAuth": {"type": "bearer", "token": "hook-bearer"}}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(updated["name"], "Files v2");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["doRetries"], false);
    assert_eq!(
        updated["endpointAuth"],
        json!({"type": "bearer", "username": null})
    );
    assert_eq!(updated["subscriptions"].as_array().unwrap().len(), 2);
    assert!(!updated.to_string().contains("hook-bearer"));
    let r = admin
        .patch(&hook_path)
        .json(&json!({"subscriptions": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-webhook-field").await;
    let r = admin
        .patch(&hook_path)
        .json(&json!({"payloadTemplate": "{{a"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-template").await;
    let r = admin
        .patch(&hook_path)
        .json(&json!({"enabled": "no"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-webhook-field").await;
    let r = bob
        .patch(&hook_path)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&hook_path)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&format!("{hooks}/999"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    // Another application's webhook does not exist under this one.
    let r = admin
        .patch(&other.path(&format!("/webhooks/{id}")))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Bearer token.
    let r = admin
        .get(&format!("{hook_path}/bearer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "hook-bearer");
    let r = app
        .user
        .get(&format!("{APPS}/me/webhooks/{id}/bearer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, "hook-bearer");
    let r = admin
        .get(&format!("{hooks}/{second_id}/bearer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await, Value::Null);
    let r = bob
        .get(&format!("{hook_path}/bearer-token"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .get(&format!("{hook_path}/bearer-token"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{hooks}/999/bearer-token"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Signing key.
    let r = admin
        .get(&format!("{hook_path}/signing-key"))
        .send()
        .await
        .unwrap();
    let key = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(is_hex(&key, 64), "{key}");
    let r = admin
        .get(&format!("{hooks}/{second_id}/signing-key"))
        .send()
        .await
        .unwrap();
    assert_ne!(expect_json(r, 200).await, key.as_str());
    let r = bob
        .get(&format!("{hook_path}/signing-key"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob
        .post(&format!("{hook_path}/signing-key/regenerate"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .get(&format!("{hook_path}/signing-key"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .post(&format!("{hook_path}/signing-key/regenerate"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{hooks}/999/signing-key/regenerate"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        app.user
            .post(&format!("{APPS}/me/webhooks/{id}/signing-key/regenerate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = app
        .user
        .get(&format!("{APPS}/me/webhooks/{id}/signing-key"))
        .send()
        .await
        .unwrap();
    let key2 = expect_json(r, 200).await.as_str().unwrap().to_string();
    assert!(is_hex(&key2, 64), "{key2}");
    assert_ne!(key, key2);

    // Custom headers.
    let headers = format!("{hook_path}/custom-headers");
    let r = admin.get(&headers).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!([]));
    let r = admin
        .post(&headers)
        .json(&json!({"headers": [{"name": "X-Team", "value": "files"}, {"name": "X-Api-Key", "value": "k-123"}]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = app
        .user
        .get(&format!("{APPS}/me/webhooks/{id}/custom-headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"name": "X-Team", "value": "files"}, {"name": "X-Api-Key", "value": "k-123"}])
    );
    for reserved in [
        "X-Space-Signature",
        "Content-Type",
        "webhook-id",
        "Authorization",
        "Host",
        "X-Space-Timestamp",
        "Sec-Fetch-Site",
        "Proxy-Thing",
    ] {
        let r = admin
            .post(&headers)
            .json(&json!({"headers": [{"name": reserved, "value": "v"}]}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "reserved-header").await;
    }
    for (name, value) in [("Bad Name", "v"), ("X-Ok", "line\nbreak"), ("", "v")] {
        let r = admin
            .post(&headers)
            .json(&json!({"headers": [{"name": name, "value": value}]}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-header").await;
    }
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"name": format!("X-H{i}"), "value": "v"}))
        .collect();
    let r = admin
        .post(&headers)
        .json(&json!({"headers": many}))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "limits-reached").await;
    // Refused changes left the headers as they were.
    let r = admin.get(&headers).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await.as_array().unwrap().len(), 2);
    let r = bob
        .post(&headers)
        .json(&json!({"headers": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = bob.get(&headers).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.get(&headers).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = other
        .user
        .post(&headers)
        .json(&json!({"headers": []}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&format!("{hooks}/999/custom-headers"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .post(&headers)
            .json(&json!({"headers": [{"name": "X-Only", "value": "1"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin.get(&headers).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"name": "X-Only", "value": "1"}])
    );
    // Header values never show in the webhook itself.
    let list = expect_json(admin.get(&hooks).send().await.unwrap(), 200).await;
    assert!(!list.to_string().contains("X-Only"), "{list}");

    // Archive (DELETE) and restore (POST).
    let r = bob.delete(&hook_path).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.delete(&hook_path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.delete(&format!("{hooks}/999")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(admin.delete(&hook_path).send().await.unwrap()).await;
    let list = expect_json(admin.get(&hooks).send().await.unwrap(), 200).await;
    assert_eq!(names(&list), ["Chat feed"]);
    assert_eq!(list["totalCount"], 1);
    let r = admin
        .get(&format!("{hooks}?withArchived=true"))
        .send()
        .await
        .unwrap();
    let all = expect_json(r, 200).await;
    assert_eq!(names(&all), ["Files v2", "Chat feed"]);
    assert_eq!(all["data"][0]["archived"], true);
    assert_eq!(all["totalCount"], 2);
    let r = bob.post(&hook_path).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.post(&hook_path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.post(&format!("{hooks}/999")).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        app.user
            .post(&format!("{APPS}/me/webhooks/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let list = expect_json(admin.get(&hooks).send().await.unwrap(), 200).await;
    assert_eq!(names(&list), ["Files v2", "Chat feed"]);
    assert_eq!(list["data"][0]["archived"], false);
}

#[tokio::test]
async fn webhook_subscriptions_and_missing_rights() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let app = new_app(&admin, "Subscriber").await;
    let other = new_app(&admin, "Other").await;
    let r = app
        .user
        .post(&format!("{APPS}/me/webhooks"))
        .json(&json!({"name": "All"}))
        .send()
        .await
        .unwrap();
    let hook = expect_json(r, 201).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let subs = app.path(&format!("/webhooks/{id}/subscriptions"));

    let r = admin
        .post(&subs)
        .json(&json!({"name": "issues", "eventTypes": ["Issue.Created", "Issue.Updated"], "contextIdentifier": "project:key:ABC"}))
        .send()
        .await
        .unwrap();
    let issues = expect_json(r, 201).await;
    assert_eq!(issues["name"], "issues");
    assert_eq!(issues["enabled"], true);
    assert_eq!(
        issues["eventTypes"],
        json!(["Issue.Created", "Issue.Updated"])
    );
    assert_eq!(issues["contextIdentifier"], "project:key:ABC");
    let issues_id = issues["id"].as_str().unwrap().to_string();
    let r = app
        .user
        .post(&format!("{APPS}/me/webhooks/{id}/subscriptions"))
        .json(&json!({"name": "everything", "eventTypes": ["ChatMessage.Created", "Attachment.Created", "StorageFile.Moved"]}))
        .send()
        .await
        .unwrap();
    let everything = expect_json(r, 201).await;
    let everything_id = everything["id"].as_str().unwrap().to_string();
    assert_eq!(everything["contextIdentifier"], Value::Null);

    for body in [
        json!({"name": "s", "eventTypes": ["Nope.Happened"]}),
        json!({"name": "s", "eventTypes": "Issue.Created"}),
        json!({"name": "s"}),
        json!({"eventTypes": ["Issue.Created"]}),
        json!({"name": "s", "eventTypes": ["Issue.Created"], "contextIdentifier": "project:key:lower"}),
        json!({"name": "s", "eventTypes": ["Issue.Created"], "colour": "red"}),
        json!(["not", "an", "object"]),
    ] {
        let r = admin.post(&subs).json(&body).send().await.unwrap();
        expect_error(r, 400, "bad-webhook-field").await;
    }
    let body = json!({"name": "b", "eventTypes": ["Issue.Created"]});
    let r = bob.post(&subs).json(&body).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.post(&subs).json(&body).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&app.path("/webhooks/999/subscriptions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // List (members may view).
    let r = bob.get(&subs).send().await.unwrap();
    let list = expect_json(r, 200).await;
    let mut listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["everything", "issues"]);
    let r = other.user.get(&subs).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .get(&app.path("/webhooks/999/subscriptions"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;

    // Update.
    let issues_path = format!("{subs}/{issues_id}");
    let r = admin
        .patch(&issues_path)
        .json(&json!({"enabled": false, "eventTypes": ["Issue.Updated"]}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, 200).await;
    assert_eq!(updated["id"], issues_id.as_str());
    assert_eq!(updated["name"], "issues");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["eventTypes"], json!(["Issue.Updated"]));
    assert_eq!(updated["contextIdentifier"], "project:key:ABC");
    let r = admin
        .patch(&issues_path)
        .json(&json!({"eventTypes": ["Nope.Happened"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-webhook-field").await;
    let r = bob
        .patch(&issues_path)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .patch(&issues_path)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch(&format!("{subs}/12345"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.get(&subs).send().await.unwrap();
    let stored = expect_json(r, 200).await;
    let s = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == issues_id.as_str())
        .unwrap();
    assert_eq!(s["eventTypes"], json!(["Issue.Updated"]));
    assert_eq!(s["enabled"], false);

    // Request the rights the subscriptions need: PENDING in their contexts.
    let rights = app.path("/authorizations/authorized-rights");
    let r = bob
        .post(&format!("{issues_path}/request-missing-rights"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other
        .user
        .post(&format!("{issues_path}/request-missing-rights"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .post(&format!("{subs}/777/request-missing-rights"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(
        admin
            .post(&format!("{issues_path}/request-missing-rights"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .get(&format!("{rights}?contextIdentifier=project:key:ABC"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await,
        json!([{"rightCode": "Project.Issues.View", "name": "View issues", "status": "PENDING"}])
    );
    expect_ok(
        app.user
            .post(&format!(
                "{APPS}/me/webhooks/{id}/subscriptions/{everything_id}/request-missing-rights"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .get(&format!("{rights}?contextIdentifier=global"))
        .send()
        .await
        .unwrap();
    let global = expect_json(r, 200).await;
    let mut codes: Vec<(&str, &str)> = global
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rightCode"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            ("Attachments.View", "PENDING"),
            ("Channel.ViewMessages", "PENDING"),
            ("Space.Files.Read", "PENDING"),
        ]
    );
    // A granted right stays granted when requested again.
    let r = admin
        .patch(&rights)
        .json(&json!({"contextIdentifier": "project:key:ABC", "rights": [{"rightCode": "Project.Issues.View", "status": "GRANTED"}]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    expect_ok(
        admin
            .post(&format!("{issues_path}/request-missing-rights"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = admin
        .get(&format!("{rights}?contextIdentifier=project:key:ABC"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await[0]["status"], "GRANTED");

    // Delete.
    let r = bob.delete(&issues_path).send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = other.user.delete(&issues_path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(admin.delete(&issues_path).send().await.unwrap()).await;
    let r = admin.delete(&issues_path).send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin.get(&subs).send().await.unwrap();
    let left = expect_json(r, 200).await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], everything_id.as_str());
    // The webhook shows the same subscriptions.
    let r = admin.get(&app.path("/webhooks")).send().await.unwrap();
    let hooks = expect_json(r, 200).await;
    assert_eq!(hooks["data"][0]["subscriptions"], left);
}

// ---------------------------------------------------------------------------------------------
// OAuth token endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oauth_token_endpoint_errors_follow_rfc_6749() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let created = create_app(
        &admin,
        json!({"name": "Client", "endpointUri": "http://127.0.0.1:9/"}),
    )
    .await;
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let secret = read_client_secret(&admin, &client_id).await;
    let url = server.url("/oauth/token");
    let http = Client::new();

    /// Asserts an RFC 6749 §5.2 error (status, `error`, a description, `Cache-Control: no-store`);
    /// answers the headers.
    async fn oauth_error(r: Response, status: u16, error: &str) -> reqwest::header::HeaderMap {
        let headers = r.headers().clone();
        let got = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert!(body["error_description"].as_str().is_some(), "{body}");
        assert_eq!(headers["cache-control"], "no-store", "{headers:?}");
        headers
    }

    // Success: a Bearer token, not cached.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "**");
    assert!(body["access_token"].as_str().unwrap().starts_with("hgr_"));
    assert!(body.get("refresh_token").is_none(), "{body}");
    // The form fields authenticate too; a narrower scope.
    let r = http
        .post(&url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("scope", "read"),
        ]))
        .send()
        .await
        .unwrap();
    let body = expect_json(r, 200).await;
    assert_eq!(body["scope"], "read");
    let reader = user_with(
        &server.base,
        body["access_token"].as_str().unwrap(),
        "reader",
    );
    expect_json(reader.get(&format!("{APPS}/me")).send().await.unwrap(), 200).await;
    let r = reader
        .post(&format!("{APPS}/report-application-as-healthy"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // unsupported_grant_type.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[("grant_type", "password")],
    )
    .await;
    oauth_error(r, 400, "unsupported_grant_type").await;
    // Missing grant_type → invalid_request.
    let r = token_request(&server.base, &client_id, &secret, &[("scope", "**")]).await;
    oauth_error(r, 400, "invalid_request").await;
    // A JSON body → invalid_request.
    let r = http
        .post(&url)
        .basic_auth(&client_id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request").await;
    // No content type at all.
    let r = http
        .post(&url)
        .basic_auth(&client_id, Some(&secret))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request").await;
    // A repeated parameter → invalid_request.
    let r = http
        .post(&url)
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "invalid_request").await;
    // Two ways of authenticating → invalid_request.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_request").await;
    // An unknown scope → invalid_scope.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "Nope.Right"),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_scope").await;

    // invalid_client: 401, with a Basic challenge when Basic was used.
    for (id, pw) in [
        (client_id.as_str(), "wrong-secret"),
        ("nobody", secret.as_str()),
    ] {
        let r = token_request(
            &server.base,
            id,
            pw,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let headers = oauth_error(r, 401, "invalid_client").await;
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic "), "{challenge}");
    }
    let r = http
        .post(&url)
        .header("authorization", "Basic !!!not-base64")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let headers = oauth_error(r, 401, "invalid_client").await;
    assert!(headers.contains_key("www-authenticate"));
    // Form-field authentication failures carry no Basic challenge.
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", "wrong"),
        ]))
        .send()
        .await
        .unwrap();
    let headers = oauth_error(r, 401, "invalid_client").await;
    assert!(!headers.contains_key("www-authenticate"));
    // The client-credentials grant needs the secret.
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ]))
        .send()
        .await
        .unwrap();
    oauth_error(r, 401, "invalid_client").await;
    // No client at all.
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    oauth_error(r, 401, "invalid_client").await;

    // The code flow is disabled by default: unauthorized_client.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", "hgr_x"),
            ("redirect_uri", "http://127.0.0.1:9/"),
        ],
    )
    .await;
    oauth_error(r, 400, "unauthorized_client").await;
    // A refresh token for an application without the code flow: unauthorized_client.
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "hgr_nothing"),
        ],
    )
    .await;
    oauth_error(r, 400, "unauthorized_client").await;

    // Disabling the client-credentials flow: unauthorized_client.
    let r = admin
        .patch(&format!("{APPS}/clientId:{client_id}"))
        .json(&json!({"clientCredentialsFlowEnabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(r, 200).await["clientCredentialsFlowEnabled"],
        false
    );
    let r = token_request(
        &server.base,
        &client_id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    oauth_error(r, 400, "unauthorized_client").await;
    // Wrong secret is still invalid_client first.
    let r = token_request(
        &server.base,
        &client_id,
        "wrong",
        &[("grant_type", "client_credentials")],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    let r = admin
        .patch(&format!("{APPS}/clientId:{client_id}"))
        .json(&json!({"clientCredentialsFlowEnabled": true}))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    access_token(&server.base, &client_id, &secret).await;
}

// ---------------------------------------------------------------------------------------------
// Races and normalisation (these found server bugs: see the notes on each test)
// ---------------------------------------------------------------------------------------------

/// Adding the same key concurrently must store it once and answer 201 once, 409 to the rest, as a
/// sequential duplicate does. (Server bug at the time of writing: `add_key` checks for the key
/// outside the transaction that stores it, so concurrent duplicates all answer 201.)
#[tokio::test]
async fn concurrent_duplicate_keys_are_added_once() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Racy").await;
    let (block, fingerprint) = gpg_block(9);
    for (kind, body) in [
        ("ssh-keys", json!({"publicKey": SSH_KEY})),
        ("gpg-keys", json!({"publicKey": block})),
    ] {
        let requests = (0..10).map(|_| {
            let user = app.user.clone();
            let body = body.clone();
            async move {
                let r = user
                    .post(&format!("{APPS}/me/{kind}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            }
        });
        let results = futures_util::future::join_all(requests).await;
        let created = results.iter().filter(|(s, _)| *s == 201).count();
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        assert_eq!(created, 1, "{kind}: one add wins, got {statuses:?}");
        for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
            assert_eq!(*status, 409, "{kind}: {body}");
            assert_eq!(body["error"], "key-exists", "{kind}: {body}");
        }
        let r = admin
            .get(&app.path(&format!("/{kind}")))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_json(r, 200).await.as_array().unwrap().len(), 1);
    }
    let r = admin.get(&app.path("/gpg-keys")).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await[0]["fingerprint"],
        fingerprint.as_str()
    );
}

/// Unfurl patterns are stored as declared (case-sensitive). Authorizing a pattern with another case
/// must not approve a pattern the application never declared. (Server bug at the time of writing:
/// `authorize` accepts `GH:` because its lowercase `gh:` is declared, then stores an APPROVED `GH:`
/// beside the still PENDING `gh:`.)
#[tokio::test]
async fn authorizing_never_approves_an_undeclared_pattern() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Patterns").await;
    let r = app
        .user
        .patch(&format!("{APPS}/unfurls/patterns"))
        .json(&json!({"patterns": ["gh:"]}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    let r = admin
        .post(&app.path("/unfurl-patterns/authorize"))
        .json(&json!({"patterns": ["GH:"], "approve": true}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let r = admin
        .get(&app.path("/unfurl-patterns"))
        .send()
        .await
        .unwrap();
    let listed = expect_json(r, 200).await;
    // Either refused as undeclared, or applied to the declared pattern: never a new entry.
    if status == 400 {
        assert_eq!(body["error"], "not-declared", "{body}");
        assert_eq!(listed, json!([{"pattern": "gh:", "status": "PENDING"}]));
    } else {
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            listed,
            json!([{"pattern": "gh:", "status": "APPROVED"}]),
            "only declared patterns are listed"
        );
    }
}
