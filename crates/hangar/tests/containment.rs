//! What a token, an application or a member can reach beyond what it should (issue 11, SPEC §3 and
//! §11): app tokens and member management, an access token and its own client secret, an application
//! and its own flows, redirect URIs, PKCE, what members see of applications, SSRF refusals, Space's
//! scope syntax and answers about other people's accounts. Each test failed before the fix.

mod common;
use common::*;

use reqwest::Client;
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// An application with the code flow open to `REDIRECT`.
async fn code_flow_app(admin: &User, extra: Value) -> App {
    let mut body = json!({"name": "Flows", "endpointUri": "http://127.0.0.1:9/",
                          "codeFlowEnabled": true, "codeFlowRedirectURIs": REDIRECT});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    new_app_with(admin, body).await
}

#[tokio::test]
async fn a_token_issued_to_an_application_never_manages_members() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = code_flow_app(&admin, json!({})).await;
    // The administrator approves the application: its token acts as the administrator...
    let tokens = code_flow_tokens_as(&server.base, &app, "admin", ADMIN_PASSWORD, REDIRECT).await;
    let as_admin = User {
        token: tokens["access_token"].as_str().unwrap().to_string(),
        ..admin.clone()
    };
    let r = as_admin.get("/api/v1/auth/me").send().await.unwrap();
    assert_eq!(expect_json(r, 200).await["username"], "admin");
    // ...but it cannot mint members (least of all administrators) nor list them.
    let r = as_admin
        .post("/api/v1/members")
        .json(&json!({"username": "mallory", "password": "mallory-password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    expect_error(
        as_admin.get("/api/v1/members").send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let r = admin.get("/api/v1/members").send().await.unwrap();
    let members = expect_json(r, 200).await;
    assert!(!members.to_string().contains("mallory"), "{members}");
    // The administrator in person still can.
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn an_access_token_neither_reads_nor_rotates_its_client_secret() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Secretive").await;
    let r = app
        .user
        .get(&app.path("/client-secret"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = app
        .user
        .post(&app.path("/client-secret/regenerate"))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    // Unchanged: the secret still signs the application in.
    let again = access_token(&server.base, &app.client_id, &app.secret).await;
    assert!(!again.is_empty());
    // Other secrets stay readable by the application itself, the client secret by the administrator.
    let r = app
        .user
        .get(&app.path("/signing-key"))
        .send()
        .await
        .unwrap();
    assert!(expect_json(r, 200).await.is_string());
    let r = admin.get(&app.path("/client-secret")).send().await.unwrap();
    assert_eq!(expect_json(r, 200).await, json!(app.secret));
}

#[tokio::test]
async fn an_application_cannot_change_its_own_flows_or_redirect_uris() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Selfish").await;
    for change in [
        json!({"codeFlowEnabled": true}),
        json!({"codeFlowRedirectURIs": "https://evil.example/cb"}),
        json!({"publicClientsAllowed": true, "pkceRequired": true}),
        json!({"description": "fine", "implicitFlowEnabled": true}),
    ] {
        let r = app
            .user
            .patch(&app.path(""))
            .json(&change)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    let r = admin.get(&app.path("")).send().await.unwrap();
    let stored = expect_json(r, 200).await;
    assert_eq!(stored["codeFlowEnabled"], false);
    assert_eq!(stored["codeFlowRedirectURIs"], Value::Null);
    assert_eq!(stored["description"], Value::Null);
    // What is the application's own stays its own; the administrator sets the flows.
    let r = app
        .user
        .patch(&app.path(""))
        .json(&json!({"description": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["description"], "mine");
    let r = admin
        .patch(&app.path(""))
        .json(&json!({"codeFlowEnabled": true, "codeFlowRedirectURIs": REDIRECT}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["codeFlowEnabled"], true);
}

#[tokio::test]
async fn redirect_uris_are_https_loopback_http_or_a_private_use_scheme() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Redirects").await;
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "http://example.com/cb",
        "http://10.0.0.1/cb",
        "https://ok.example/cb#fragment",
        "https://ok.example/cb javascript:alert(1)",
    ] {
        let r = admin
            .patch(&app.path(""))
            .json(&json!({"codeFlowRedirectURIs": bad}))
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "bad-redirect-uri").await;
    }
    let good = "https://ok.example/cb http://127.0.0.1:8080/cb http://localhost/cb \
                http://[::1]:1/cb com.example.app:/cb";
    let r = admin
        .patch(&app.path(""))
        .json(&json!({"codeFlowRedirectURIs": good}))
        .send()
        .await
        .unwrap();
    let stored = expect_json(r, 200).await;
    assert_eq!(
        stored["codeFlowRedirectURIs"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        5
    );
}

#[tokio::test]
async fn an_application_that_requires_pkce_refuses_a_request_without_s256() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = code_flow_app(&admin, json!({"pkceRequired": true})).await;
    server.member("bob").await;
    let http = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let ask = |method: Option<&'static str>| {
        let mut q = vec![
            ("client_id", app.client_id.clone()),
            ("redirect_uri", REDIRECT.to_string()),
            ("response_type", "code".to_string()),
            ("code_challenge", challenge.to_string()),
            ("state", "s".to_string()),
        ];
        if let Some(m) = method {
            q.push(("code_challenge_method", m.to_string()));
        }
        http.get(server.url("/oauth/auth")).query(&q).send()
    };
    for method in [None, Some("plain")] {
        let r = ask(method).await.unwrap();
        assert!(r.status().is_redirection(), "{method:?}: {}", r.status());
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert!(
            location.contains("error=invalid_request"),
            "{method:?}: {location}"
        );
        assert!(!location.contains("code="), "{location}");
    }
    // With S256 the consent page is shown.
    let r = ask(Some("S256")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Flows"));
}

#[tokio::test]
async fn members_see_neither_endpoints_nor_credentials_nor_private_contexts() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "secret-team", "name": "Secret"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let app = new_app_with(
        &admin,
        json!({"name": "Hooked", "endpointUri": "https://hooks.internal.example/app",
               "basicAuthUsername": "svc", "basicAuthPassword": "pw-123456"}),
    )
    .await;
    let r = admin
        .post(&app.path("/webhooks"))
        .json(
            &json!({"name": "w", "endpoint": {"url": "https://hooks.internal.example/w"},
                      "endpointAuth": {"type": "basic", "username": "hookuser", "password": "p"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for context in ["global", "space:id:secret-team"] {
        let r = admin
            .patch(&app.path("/authorizations/authorized-rights"))
            .json(&json!({"contextIdentifier": context,
                          "rights": [{"rightCode": "Space.Files.Read", "status": "GRANTED"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{context}");
    }
    // The administrator sees everything.
    let admin_view = expect_json(admin.get(&app.path("")).send().await.unwrap(), 200).await;
    assert_eq!(
        admin_view["endpointUri"],
        "https://hooks.internal.example/app"
    );
    assert_eq!(admin_view["basicAuthUsername"], "svc");
    let hooks = expect_json(admin.get(&app.path("/webhooks")).send().await.unwrap(), 200).await;
    assert_eq!(
        hooks["data"][0]["endpoint"]["url"],
        "https://hooks.internal.example/w"
    );
    assert_eq!(hooks["data"][0]["endpointAuth"]["username"], "hookuser");
    let contexts_path = app.path("/authorizations/authorized-contexts");
    let contexts = expect_json(admin.get(&contexts_path).send().await.unwrap(), 200).await;
    assert_eq!(contexts.as_array().unwrap().len(), 2, "{contexts}");
    // A member sees the application, but not where or how it is called, nor private places.
    let seen = expect_json(bob.get(&app.path("")).send().await.unwrap(), 200).await;
    assert_eq!(seen["name"], "Hooked");
    let listed = expect_json(bob.get(&format!("{APPS}/paged")).send().await.unwrap(), 200)
        .await
        .to_string();
    let hooks = expect_json(bob.get(&app.path("/webhooks")).send().await.unwrap(), 200).await;
    assert_eq!(hooks["data"][0]["name"], "w");
    for text in [seen.to_string(), listed, hooks.to_string()] {
        for hidden in ["hooks.internal.example", "svc", "hookuser", "endpointAuth"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }
    let contexts = expect_json(bob.get(&contexts_path).send().await.unwrap(), 200).await;
    assert_eq!(
        contexts,
        json!([{"contextIdentifier": "global", "type": "global"}])
    );
}

#[tokio::test]
async fn space_style_scopes_name_a_context_before_each_right() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let app = new_app(&admin, "Scoped").await;
    let r = token_request(
        &server.base,
        &app.client_id,
        &app.secret,
        &[
            ("grant_type", "client_credentials"),
            (
                "scope",
                "global:Project.Issues.View project:key:P:Project.Issues.Create",
            ),
        ],
    )
    .await;
    let body = expect_json(r, 200).await;
    assert_eq!(
        body["scope"],
        "Project.Issues.View project:key:P:Project.Issues.Create"
    );
    for bad in [
        "nowhere:Project.Issues.View",
        "channel:id:1:Project.Issues.View",
    ] {
        let r = token_request(
            &server.base,
            &app.client_id,
            &app.secret,
            &[("grant_type", "client_credentials"), ("scope", bad)],
        )
        .await;
        assert_eq!(expect_json(r, 400).await["error"], "invalid_scope", "{bad}");
    }
    let r = app
        .user
        .post(&app.path("/permanent-tokens"))
        .json(&json!({"name": "t", "scope": "global:Space.Files.Read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn answers_do_not_describe_other_peoples_accounts() {
    let server = TestApp::start().await;
    let bob = server.member("bob").await;
    let r = bob
        .post("/api/v1/channels")
        .json(&json!({"name": "c", "members": ["nobody-by-this-name"]}))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 400, "unknown-member").await;
    assert!(!body.to_string().contains("nobody-by-this-name"), "{body}");
}

#[tokio::test]
async fn an_administrator_resets_or_disables_a_member_and_every_token_ends() {
    let server = TestApp::start().await;
    let admin = server.admin().await;
    let bob = server.member("bob").await;
    let login = |password: &'static str| {
        Client::new()
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"username": "bob", "password": password}))
            .send()
    };
    assert_eq!(login("bob-password").await.unwrap().status(), 200);
    expect_json(bob.get("/api/v1/auth/me").send().await.unwrap(), 200).await;

    // A new password: the old one and every token made before stop working at once.
    let r = admin
        .patch("/api/v1/members/bob")
        .json(&json!({"password": "a-brand-new-password"}))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    let r = bob.get("/api/v1/auth/me").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(login("bob-password").await.unwrap().status(), 401);
    assert_eq!(login("a-brand-new-password").await.unwrap().status(), 200);
    let fresh = User {
        token: login_token(&server.base, "bob", "a-brand-new-password").await,
        ..bob.clone()
    };
    expect_json(fresh.get("/api/v1/auth/me").send().await.unwrap(), 200).await;

    // Disabled: its tokens end, and its login fails like a wrong password.
    let r = admin
        .patch("/api/v1/members/bob")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await;
    assert_eq!(
        fresh.get("/api/v1/auth/me").send().await.unwrap().status(),
        401
    );
    assert_eq!(login("a-brand-new-password").await.unwrap().status(), 401);

    // What is refused.
    let r = admin
        .patch("/api/v1/members/nobody")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not-found").await;
    let r = admin
        .patch("/api/v1/members/admin")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "cannot-disable-self").await;
    // Enabled again (tests/accounts.rs goes further), bob's old tokens stay revoked.
    let r = admin
        .patch("/api/v1/members/bob")
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["username"], "bob");
    assert_eq!(
        fresh.get("/api/v1/auth/me").send().await.unwrap().status(),
        401
    );
    assert_eq!(login("a-brand-new-password").await.unwrap().status(), 200);
    let carol = server.member("carol").await;
    let r = carol
        .patch("/api/v1/members/bob")
        .json(&json!({"password": "carol-chose-this-one"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
}
