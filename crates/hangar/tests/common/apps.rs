//! Acting as an application over real HTTP: creating one as the administrator, signing in as it with
//! the client-credentials grant, and reading JSON answers.

use super::User;
use reqwest::{Client, Response};
use serde_json::{json, Value};

pub const APPS: &str = "/api/http/applications";

/// Asserts the status and answers the JSON body.
pub async fn expect_json(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
}

/// Asserts the `{"httpStatusCode": 200}` answer of state-changing calls.
pub async fn expect_ok(r: Response) {
    let body = expect_json(r, 200).await;
    assert_eq!(body, json!({"httpStatusCode": 200}));
}

/// An application, with a client acting as it (an OAuth client-credentials access token).
pub struct App {
    pub id: String,
    pub client_id: String,
    pub secret: String,
    pub user: User,
}

impl App {
    /// `/api/http/applications/id:N{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("{APPS}/id:{}{rest}", self.id)
    }
}

pub fn user_with(base: &str, token: &str, name: &str) -> User {
    User {
        base: base.to_string(),
        http: Client::new(),
        token: token.to_string(),
        username: name.into(),
    }
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `POST /oauth/token` with HTTP Basic client authentication and a form body.
pub async fn token_request(
    base: &str,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Response {
    Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .send()
        .await
        .unwrap()
}

/// A client-credentials access token.
pub async fn access_token(base: &str, client_id: &str, secret: &str) -> String {
    let r = token_request(
        base,
        client_id,
        secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let body = expect_json(r, 200).await;
    body["access_token"].as_str().unwrap().to_string()
}

pub async fn create_app(admin: &User, body: Value) -> Value {
    expect_json(admin.post(APPS).json(&body).send().await.unwrap(), 201).await
}

pub async fn read_client_secret(admin: &User, client_id: &str) -> String {
    let r = admin
        .get(&format!("{APPS}/clientId:{client_id}/client-secret"))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await.as_str().unwrap().to_string()
}

/// Creates an application (as the administrator) and signs in as it.
pub async fn new_app_with(admin: &User, body: Value) -> App {
    let app = create_app(admin, body).await;
    let client_id = app["clientId"].as_str().unwrap().to_string();
    let secret = read_client_secret(admin, &client_id).await;
    let token = access_token(&admin.base, &client_id, &secret).await;
    App {
        id: app["id"].as_str().unwrap().to_string(),
        user: user_with(&admin.base, &token, "app"),
        client_id,
        secret,
    }
}

pub async fn new_app(admin: &User, name: &str) -> App {
    new_app_with(
        admin,
        json!({"name": name, "endpointUri": "http://127.0.0.1:9/"}),
    )
    .await
}

/// Signs in as `username` (password `{username}-password`, as `create_member` makes them), approves
/// the application's code flow in the browser's way and exchanges the code: the token answer.
pub async fn code_flow_tokens(base: &str, app: &App, username: &str, redirect: &str) -> Value {
    let password = format!("{username}-password");
    code_flow_tokens_as(base, app, username, &password, redirect).await
}

/// `code_flow_tokens` with the member's password given.
pub async fn code_flow_tokens_as(
    base: &str,
    app: &App,
    username: &str,
    password: &str,
    redirect: &str,
) -> Value {
    let http = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/oauth/auth"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("client_id", &app.client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("state", "xyz"),
            ("decision", "approve"),
        ]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect), "{location}");
    let query: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "xyz");
    let code = query["code"].clone();
    let r = token_request(
        base,
        &app.client_id,
        &app.secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    // (A replayed code is refused and revokes these tokens: tests/webhooks.rs checks that.)
    expect_json(r, 200).await
}
