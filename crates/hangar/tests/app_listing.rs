//! The Applications API's list filters (`owner`, `withManaged` of `GET /api/http/applications/paged`)
//! and the seed-003 settings Hangar cannot honour (`sslKeystoreAuth`), over real HTTP.

mod common;
use common::*;

use serde_json::{json, Value};

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

async fn paged(user: &User, query: &str) -> Value {
    let r = user
        .get(&format!("{APPS}/paged?{query}"))
        .send()
        .await
        .unwrap();
    expect_json(r, 200).await
}

#[tokio::test]
async fn applications_are_listed_by_owner_and_with_or_without_managed_ones() {
    let server = Server::start();
    let admin = server.admin().await;
    // A second administrator, who owns what it creates.
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": "ops", "password": "ops-password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    let ops_id = expect_json(r, 201).await["id"].clone();
    let ops_id = ops_id
        .as_i64()
        .map(|n| n.to_string())
        .or_else(|| ops_id.as_str().map(str::to_string))
        .unwrap();
    let ops = user_with(
        &server.base,
        &login_token(&server.base, "ops", "ops-password").await,
        "ops",
    );
    let bob = server.member("bob").await;

    create_app(&admin, json!({"name": "Alpha"})).await;
    create_app(&ops, json!({"name": "Beta"})).await;
    // Connected to the server (multi-org): it manages itself.
    create_app(
        &admin,
        json!({"name": "Gamma", "connectToSpace": true, "endpointUri": "http://127.0.0.1:9/"}),
    )
    .await;

    let all = paged(&admin, "").await;
    assert_eq!(names(&all), ["Alpha", "Beta", "Gamma"]);
    assert_eq!(all["totalCount"], 3);
    // withManaged defaults to true; false leaves out the applications that manage themselves.
    assert_eq!(
        names(&paged(&admin, "withManaged=true").await),
        ["Alpha", "Beta", "Gamma"]
    );
    let unmanaged = paged(&admin, "withManaged=false").await;
    assert_eq!(names(&unmanaged), ["Alpha", "Beta"]);
    assert_eq!(unmanaged["totalCount"], 2);

    // owner: profile identifiers, repeated or comma-separated; any of them matches.
    let of_ops = paged(&admin, "owner=username:ops").await;
    assert_eq!(names(&of_ops), ["Beta"]);
    assert_eq!(of_ops["totalCount"], 1);
    assert_eq!(
        names(&paged(&bob, &format!("owner=id:{ops_id}")).await),
        ["Beta"]
    );
    assert_eq!(names(&paged(&admin, "owner=me").await), ["Alpha", "Gamma"]);
    assert_eq!(names(&paged(&ops, "owner=me").await), ["Beta"]);
    assert_eq!(
        names(&paged(&admin, "owner=me&owner=username:ops").await),
        ["Alpha", "Beta", "Gamma"]
    );
    assert_eq!(
        names(
            &paged(
                &admin,
                "owner=username:admin,username:ops&withManaged=false"
            )
            .await
        ),
        ["Alpha", "Beta"]
    );
    assert_eq!(
        names(&paged(&admin, "owner=me&withManaged=false&$top=1").await),
        ["Alpha"]
    );
    // Nobody by that name owns nothing (and the answer does not say whether the name exists).
    let none = paged(&admin, "owner=username:nobody").await;
    assert_eq!(names(&none), Vec::<String>::new());
    assert_eq!(none["totalCount"], 0);
    assert_eq!(names(&paged(&bob, "owner=me").await), Vec::<String>::new());
    for bad in ["owner=ops", "owner=id:x", "owner=", "withManaged=maybe"] {
        let r = admin
            .get(&format!("{APPS}/paged?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = admin
        .get(&format!("{APPS}/paged?owner=email:x"))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-owner").await;
}

#[tokio::test]
async fn an_ssl_keystore_is_refused_as_unsupported() {
    let server = Server::start();
    let admin = server.admin().await;
    let r = admin
        .post(APPS)
        .json(&json!({"name": "ks", "sslKeystoreAuth": "corporate"}))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 400, "unsupported").await;
    assert!(
        body["errorText"]
            .as_str()
            .unwrap()
            .contains("sslKeystoreAuth"),
        "{body}"
    );
    let r = admin.get(&format!("{APPS}/paged")).send().await.unwrap();
    assert_eq!(
        expect_json(r, 200).await["totalCount"],
        0,
        "nothing created"
    );

    // Null (the default) and the empty string mean no keystore: accepted.
    let app = create_app(&admin, json!({"name": "plain", "sslKeystoreAuth": null})).await;
    assert_eq!(app["sslKeystoreAuth"], Value::Null);
    let path = format!("{APPS}/id:{}", app["id"].as_str().unwrap());
    let r = admin
        .patch(&path)
        .json(&json!({"sslKeystoreAuth": "corporate", "description": "changed"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unsupported").await;
    let now = expect_json(admin.get(&path).send().await.unwrap(), 200).await;
    assert_eq!(
        now["description"],
        Value::Null,
        "a refused update changes nothing"
    );
    let r = admin
        .patch(&path)
        .json(&json!({"sslKeystoreAuth": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(r, 200).await["sslKeystoreAuth"], Value::Null);
}

#[tokio::test]
async fn every_app_level_auth_is_accepted_and_shown() {
    let server = Server::start();
    let admin = server.admin().await;
    for kind in ["none", "verificationToken", "signingKey", "publicKey"] {
        let app = create_app(
            &admin,
            json!({"name": format!("a-{kind}"), "appLevelAuth": {"className": kind}}),
        )
        .await;
        assert_eq!(app["appLevelAuth"], kind);
    }
    let r = admin
        .post(APPS)
        .json(&json!({"name": "x", "appLevelAuth": "kerberos"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "bad-application-field").await;
}
