//! Accounts an operator can trust (issue 11, SPEC §1, §3 and §11): deleting, re-enabling, renaming
//! and promoting members, the last administrator, changing one's own password, a restart with
//! `--admin-password`, token lifetimes and idle sessions, the login and client-authentication
//! throttle, tokens made with tokens, refresh-token replay, file modes at rest, `no-store` on
//! answers that carry secrets, and storage names in `Content-Disposition`. Each test failed before.

mod common;
use common::*;

use reqwest::{Client, Response};
use serde_json::json;
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A browser-like login session (its cookie only).
struct Session {
    base: String,
    cookie: String,
}

impl Session {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        Client::new()
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("hangar_session={}", self.cookie))
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        Client::new()
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("hangar_session={}", self.cookie))
    }
}

async fn login(base: &str, username: &str, password: &str) -> Response {
    Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn session(base: &str, username: &str, password: &str) -> Session {
    let r = login(base, username, password).await;
    assert_eq!(r.status(), 200, "login as {username}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("hangar_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    Session {
        base: base.to_string(),
        cookie,
    }
}

async fn status_of(r: reqwest::RequestBuilder) -> u16 {
    r.send().await.unwrap().status().as_u16()
}

/// An application with the code flow open to `REDIRECT`.
async fn code_flow_app(admin: &User) -> App {
    new_app_with(
        admin,
        json!({"name": "Flows", "endpointUri": "http://127.0.0.1:9/",
               "codeFlowEnabled": true, "codeFlowRedirectURIs": REDIRECT}),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Member lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deleted_member_loses_every_way_in_its_files_stay_and_its_name_is_free() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = create_member(&server.base, &admin, "bob").await;
    let file = bob.upload("notes.txt", "text/plain", b"bob's notes").await;
    let bob_session = session(&server.base, "bob", "bob-password").await;
    let space = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "team", "name": "Team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(space.status(), 201);
    let r = admin
        .post("/api/v1/spaces/team/members")
        .json(&json!({"username": "bob"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // Only an administrator in person deletes; an unknown name is 404.
    let r = bob.delete("/api/v1/members/admin").send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = admin.delete("/api/v1/members/nobody").send().await.unwrap();
    expect_error(r, 404, "not-found").await;
    expect_ok(admin.delete("/api/v1/members/bob").send().await.unwrap()).await;

    // Its token, its session and its password no longer let it in.
    assert_eq!(status_of(bob.get("/api/v1/auth/me")).await, 401);
    assert_eq!(status_of(bob_session.get("/api/v1/auth/me")).await, 401);
    expect_error(
        login(&server.base, "bob", "bob-password").await,
        401,
        "bad-credentials",
    )
    .await;
    let members = expect_json(admin.get("/api/v1/members").send().await.unwrap(), 200).await;
    assert!(!members.to_string().contains("bob"), "{members}");
    // Its files stay, owned by the installation: an administrator reads them.
    let r = admin
        .get(&format!("/api/v1/attachments/{file}/notes.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"bob's notes");
    // The name is free again, and the new bob is someone else: no access to the old bob's things.
    let new_bob = create_member(&server.base, &admin, "bob").await;
    let r = new_bob
        .get(&format!("/api/v1/attachments/{file}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = new_bob.get("/api/v1/spaces/team").send().await.unwrap();
    assert!(r.status() == 404 || r.status() == 403, "{}", r.status());
}

#[tokio::test]
async fn an_administrator_re_enables_renames_promotes_and_demotes_members() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_member(&server.base, &admin, "carol").await;

    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(
        login(&server.base, "carol", "carol-password").await,
        401,
        "bad-credentials",
    )
    .await;
    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"disabled": false, "displayName": "Carol C."}))
        .send()
        .await
        .unwrap();
    let changed = expect_json(r, 200).await;
    assert_eq!(changed["displayName"], "Carol C.");
    assert_eq!(changed["role"], "member");
    let carol_session = session(&server.base, "carol", "carol-password").await;
    assert_eq!(
        status_of(carol_session.get("/api/v1/members")).await,
        403,
        "a member does not manage members"
    );

    // Promoted, carol manages members; demoted again, she does not.
    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["role"], "admin");
    assert_eq!(status_of(carol_session.get("/api/v1/members")).await, 200);
    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["role"], "member");
    assert_eq!(status_of(carol_session.get("/api/v1/members")).await, 403);

    // Bad values are 400 and change nothing.
    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"role": "owner"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-role").await;
    let r = admin
        .patch("/api/v1/members/carol")
        .json(&json!({"displayName": ""}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-display-name").await;
}

#[tokio::test]
async fn the_last_active_administrator_is_never_demoted_disabled_or_deleted() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let r = admin
        .patch("/api/v1/members/admin")
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "last-admin").await;

    let dora = create_member(&server.base, &admin, "dora").await;
    let r = admin
        .patch("/api/v1/members/dora")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // With two administrators, dora may demote or delete the other one…
    let r = dora
        .patch("/api/v1/members/admin")
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // …and is then the last one: she cannot be demoted, disabled or deleted.
    let r = dora
        .patch("/api/v1/members/dora")
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "last-admin").await;
    let r = admin.delete("/api/v1/members/dora").send().await.unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = dora.delete("/api/v1/members/dora").send().await.unwrap();
    assert_eq!(r.status(), 400, "nobody deletes their own account");
    // A disabled administrator does not count as the one left.
    let r = dora
        .patch("/api/v1/members/admin")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = dora
        .patch("/api/v1/members/admin")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = dora
        .patch("/api/v1/members/dora")
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 409, "last-admin").await;
    let me = expect_json(dora.get("/api/v1/auth/me").send().await.unwrap(), 200).await;
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn changing_ones_own_password_ends_every_other_session_and_token() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let erin = create_member(&server.base, &admin, "erin").await;
    let here = session(&server.base, "erin", "erin-password").await;
    let elsewhere = session(&server.base, "erin", "erin-password").await;

    let r = here
        .post("/api/v1/me/password")
        .json(&json!({"currentPassword": "not-my-password", "password": "erin-new-password"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "wrong-password").await;
    assert_eq!(status_of(elsewhere.get("/api/v1/auth/me")).await, 200);

    let r = here
        .post("/api/v1/me/password")
        .json(&json!({"currentPassword": "erin-password", "password": "short"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-password").await;

    let r = here
        .post("/api/v1/me/password")
        .json(&json!({"currentPassword": "erin-password", "password": "erin-new-password"}))
        .send()
        .await
        .unwrap();
    expect_ok(r).await;
    assert_eq!(
        status_of(here.get("/api/v1/auth/me")).await,
        200,
        "the calling session stays"
    );
    assert_eq!(status_of(elsewhere.get("/api/v1/auth/me")).await, 401);
    assert_eq!(
        status_of(erin.get("/api/v1/auth/me")).await,
        401,
        "its token"
    );
    expect_error(
        login(&server.base, "erin", "erin-password").await,
        401,
        "bad-credentials",
    )
    .await;
    session(&server.base, "erin", "erin-new-password").await;
}

#[tokio::test]
async fn a_restart_with_admin_password_revokes_the_admins_tokens_not_the_members() {
    let mut server = Server::start();
    let admin = server.admin().await;
    let frank = create_member(&server.base, &admin, "frank").await;
    server.restart();
    let old_admin = User {
        base: server.base.clone(),
        ..admin
    };
    let frank = User {
        base: server.base.clone(),
        ..frank
    };
    assert_eq!(status_of(old_admin.get("/api/v1/auth/me")).await, 401);
    assert_eq!(status_of(frank.get("/api/v1/auth/me")).await, 200);
    let admin = server.admin().await;
    assert_eq!(status_of(admin.get("/api/v1/members")).await, 200);
}

#[tokio::test]
async fn personal_tokens_get_the_configured_lifetime_and_idle_sessions_end() {
    let server =
        TestApp::start_with(&["--token-lifetime", "2d", "--session-idle-timeout", "5s"]).await;
    let before = hangar_core::now_ms();
    let admin = session(&server.base, "admin", ADMIN_PASSWORD).await;
    let r = admin
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let token = expect_json(r, 201).await;
    let expires = token["expires"].as_i64().expect("a default expiry");
    let two_days = 2 * 24 * 3600 * 1000;
    assert!(
        expires >= before + two_days && expires <= hangar_core::now_ms() + two_days,
        "{token}"
    );
    // An explicit expiry is kept.
    let later = before + 3600 * 1000;
    let r = admin
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "short", "expires": later}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 201).await["expires"], later);

    assert_eq!(status_of(admin.get("/api/v1/auth/me")).await, 200);
    // Unused for longer than the idle time-out, the session has ended. (The time-out is a few
    // seconds, so that the requests above, a second apart at most on a loaded machine, keep it.)
    tokio::time::sleep(Duration::from_millis(6500)).await;
    assert_eq!(status_of(admin.get("/api/v1/auth/me")).await, 401);
}

#[test]
fn lifetimes_and_limits_are_checked_at_start() {
    use hangar::config::{Config, ServeArgs};
    for (flags, named) in [
        (
            &["--session-idle-timeout", "0s"][..],
            "--session-idle-timeout",
        ),
        (
            &["--session-idle-timeout", "soon"][..],
            "--session-idle-timeout",
        ),
        (&["--token-lifetime", "forever"][..], "--token-lifetime"),
        (
            &["--login-failures-per-user", "0"][..],
            "--login-failures-per-user",
        ),
        (
            &["--login-failures-per-address", "0"][..],
            "--login-failures-per-address",
        ),
    ] {
        let args = ServeArgs::from_flags(flags).unwrap();
        let err = Config::resolve(args).expect_err("refused");
        assert!(err.to_string().contains(named), "{err}");
    }
    let ok = Config::resolve(ServeArgs::from_flags(&["--token-lifetime", "never"]).unwrap());
    assert_eq!(ok.unwrap().token_lifetime, None);
}

// ---------------------------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------------------------

fn retry_after(r: &Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test]
async fn logins_are_throttled_per_username_and_every_failure_is_logged() {
    let server = Server::start();
    let admin = server.admin().await;
    create_member(&server.base, &admin, "gina").await;
    for _ in 0..5 {
        let r = login(&server.base, "gina", "guess-guess").await;
        expect_error(r, 401, "bad-credentials").await;
    }
    // The right password is refused too until the window passes.
    let r = login(&server.base, "gina", "gina-password").await;
    let wait = retry_after(&r);
    assert!((1..=900).contains(&wait), "{wait}");
    expect_error(r, 429, "too-many-requests").await;
    // Another member is not held up.
    session(&server.base, "admin", ADMIN_PASSWORD).await;
    let log = server.output_text();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("failed login")).collect();
    assert_eq!(failures.len(), 5, "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("gina") && l.contains("127.0.0.1")),
        "{failures:?}"
    );
    assert!(!log.contains("guess-guess"), "the password is never logged");
}

#[tokio::test]
async fn logins_are_throttled_per_client_address() {
    let server = TestApp::start_with(&["--login-failures-per-address", "3"]).await;
    let admin = server.admin().await;
    create_member(&server.base, &admin, "hank").await;
    for name in ["x1", "x2", "x3"] {
        expect_error(
            login(&server.base, name, "guess-guess").await,
            401,
            "bad-credentials",
        )
        .await;
    }
    let r = login(&server.base, "hank", "hank-password").await;
    let wait = retry_after(&r);
    assert!((1..=60).contains(&wait), "{wait}");
    expect_error(r, 429, "too-many-requests").await;
}

#[tokio::test]
async fn client_authentication_is_throttled_per_client_id() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Guessed").await;
    for _ in 0..5 {
        let r = token_request(
            &server.base,
            &app.client_id,
            "wrong-secret",
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(expect_json(r, 401).await["error"], "invalid_client");
    }
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let wait = retry_after(&r);
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(expect_json(r, 429).await["error"], "too-many-requests");
}

// ---------------------------------------------------------------------------------------------
// Token containment
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_grant_and_what_was_minted_with_it() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = code_flow_app(&admin).await;
    let first = code_flow_tokens_as(&server.base, &app, "admin", ADMIN_PASSWORD, REDIRECT).await;
    let refresh = first["refresh_token"].as_str().unwrap().to_string();
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let second = expect_json(r, 200).await;
    let access = second["access_token"].as_str().unwrap().to_string();
    let as_admin = User {
        token: access.clone(),
        ..admin.clone()
    };
    // A permanent token minted with this access token lives no longer than it.
    let before = hangar_core::now_ms();
    let r = as_admin
        .post(&app.path("/permanent-tokens"))
        .json(&json!({"name": "minted", "scope": "**"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let minted = expect_json(r, 201).await;
    let expires = minted["expires"]
        .as_i64()
        .expect("capped to the access token");
    assert!(expires <= before + 10 * 60 * 1000 + 1000, "{minted}");
    let minted = user_with(&server.base, minted["token"].as_str().unwrap(), "minted");
    assert_eq!(status_of(minted.get("/api/v1/auth/me")).await, 200);

    // The rotated-out refresh token comes back: the whole grant ends.
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(expect_json(r, 400).await["error"], "invalid_grant");
    assert_eq!(status_of(as_admin.get("/api/v1/auth/me")).await, 401);
    assert_eq!(
        status_of(minted.get("/api/v1/auth/me")).await,
        401,
        "revoked with its maker"
    );
    let newest = second["refresh_token"].as_str().unwrap();
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[("grant_type", "refresh_token"), ("refresh_token", newest)],
    )
    .await;
    assert_eq!(expect_json(r, 400).await["error"], "invalid_grant");
}

#[tokio::test]
async fn a_personal_token_made_with_a_token_is_revoked_with_it() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let ivy = create_member(&server.base, &admin, "ivy").await;
    let r = ivy
        .post("/api/v1/me/tokens")
        .json(&json!({"name": "child"}))
        .send()
        .await
        .unwrap();
    let child = expect_json(r, 201).await;
    let child = user_with(&server.base, child["token"].as_str().unwrap(), "ivy");
    assert_eq!(status_of(child.get("/api/v1/auth/me")).await, 200);
    let tokens = expect_json(ivy.get("/api/v1/me/tokens").send().await.unwrap(), 200).await;
    let maker = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tests")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    expect_ok(
        ivy.delete(&format!("/api/v1/me/tokens/{maker}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status_of(child.get("/api/v1/auth/me")).await, 401);
}

#[tokio::test]
async fn an_application_token_changes_no_role_and_deletes_no_member() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    create_member(&server.base, &admin, "jack").await;
    let app = code_flow_app(&admin).await;
    let tokens = code_flow_tokens_as(&server.base, &app, "admin", ADMIN_PASSWORD, REDIRECT).await;
    let as_admin = User {
        token: tokens["access_token"].as_str().unwrap().to_string(),
        ..admin.clone()
    };
    let r = as_admin
        .patch("/api/v1/members/jack")
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = as_admin
        .delete("/api/v1/members/jack")
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = as_admin
        .post("/api/v1/me/password")
        .json(&json!({"currentPassword": ADMIN_PASSWORD, "password": "taken-over-now"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let members = expect_json(admin.get("/api/v1/members").send().await.unwrap(), 200).await;
    let jack = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "jack")
        .cloned()
        .unwrap();
    assert_eq!(jack["role"], "member");
}

// ---------------------------------------------------------------------------------------------
// At rest and in answers
// ---------------------------------------------------------------------------------------------

/// Every file and directory under `dir` (the directory included), with its mode.
fn modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(
        dir.to_path_buf(),
        std::fs::metadata(dir).unwrap().permissions().mode(),
    )];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(modes(&path));
        } else {
            out.push((path, meta.permissions().mode()));
        }
    }
    out
}

#[tokio::test]
async fn what_the_server_creates_is_private_whatever_the_umask() {
    // The server runs under umask 000: only modes it sets itself keep group and others out.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\" --admin-password \"$2\"")
        .arg(env!("CARGO_BIN_EXE_hangar"))
        .arg(&data)
        .arg(ADMIN_PASSWORD)
        .env_remove("HANGAR_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .map(|r| r.split_whitespace().next().unwrap().to_string())
            })
    })
    .await
    .unwrap()
    .expect("the server is listening");
    let base = format!("http://{addr}");
    let admin = User {
        base: base.clone(),
        http: Client::new(),
        token: login_token(&base, "admin", ADMIN_PASSWORD).await,
        username: "admin".into(),
    };
    admin
        .upload("private.txt", "text/plain", b"nobody else")
        .await;

    let all = modes(&data);
    let _ = child.kill();
    let _ = child.wait();
    assert!(all.iter().any(|(p, _)| p.ends_with("hangar.db")), "{all:?}");
    assert!(
        all.iter().any(|(p, _)| p.ends_with("secret.key")),
        "{all:?}"
    );
    assert!(
        all.iter().any(|(p, _)| p.ends_with("hangar.db-wal")),
        "{all:?}"
    );
    assert!(all.len() > 8, "the blob directories and the blob: {all:?}");
    for (path, mode) in &all {
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {:o}",
            path.display(),
            mode & 0o777
        );
        if std::fs::metadata(path).unwrap().is_dir() {
            assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        }
    }
}

#[tokio::test]
async fn answers_carrying_secrets_are_never_cached() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Keys").await;
    for r in [
        admin.get(&app.path("/client-secret")).send().await.unwrap(),
        admin
            .post(&app.path("/client-secret/regenerate"))
            .send()
            .await
            .unwrap(),
        admin.get(&app.path("/signing-key")).send().await.unwrap(),
        admin
            .get(&app.path("/verification-token"))
            .send()
            .await
            .unwrap(),
        admin
            .post(&app.path("/permanent-tokens"))
            .json(&json!({"name": "p", "scope": "**"}))
            .send()
            .await
            .unwrap(),
        admin
            .post("/api/v1/me/tokens")
            .json(&json!({"name": "t"}))
            .send()
            .await
            .unwrap(),
        admin
            .post(&app.path("/webhooks"))
            .json(&json!({"name": "hook", "endpoint": {"url": "https://example.com/hook"}}))
            .send()
            .await
            .unwrap(),
    ] {
        let url = r.url().to_string();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{url}"
        );
    }
}

#[tokio::test]
async fn storage_names_are_sanitized_in_content_disposition() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "docs", "name": "Docs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let path = "invoice\u{202E}fdp.exe";
    let path_id = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, path);
    let r = admin
        .post(&format!("/api/v1/space/docs/storage/{path_id}/upload"))
        .header("content-type", "application/octet-stream")
        .body("MZ")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = admin
        .get(&format!("/api/v1/space/docs/storage/{path_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!disposition.contains("%E2%80%AE"), "{disposition}");
    assert!(disposition.contains("invoicefdp.exe"), "{disposition}");
}

// ---------------------------------------------------------------------------------------------
// Resource fairness
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_member_holds_a_bounded_number_of_unfinished_two_stage_uploads() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let kim = create_member(&server.base, &admin, "kim").await;
    let lee = create_member(&server.base, &admin, "lee").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "shared", "name": "Shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for name in ["kim", "lee"] {
        let r = admin
            .post("/api/v1/spaces/shared/members")
            .json(&json!({"username": name}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let declare = |user: &User, n: usize| {
        let path = format!("{}/file-{n}.bin", user.username);
        let path_id =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, path);
        user.post(&format!("/api/v1/space/shared/storage/{path_id}/upload"))
            .json(&json!({"file": {"type": "application/octet-stream", "size": 10}}))
    };
    for n in 0..100 {
        let r = declare(&kim, n).send().await.unwrap();
        assert_eq!(r.status(), 200, "declaration {n}");
    }
    let r = declare(&kim, 100).send().await.unwrap();
    expect_error(r, 429, "too-many-uploads").await;
    // The cap is per member: another member of the space is not held up.
    let r = declare(&lee, 0).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
