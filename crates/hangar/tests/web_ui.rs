//! The web UI in a real headless browser (SPEC §9.7, §9.9): Debian's Chromium driven by Playwright
//! for Python (`tests/browser/ui.py`) against the real binary on 127.0.0.1 port 0. The script logs
//! in, uploads by drag and drop and by the file picker, downloads byte for byte, renames, shares,
//! posts a message with an attachment, goes through the OAuth consent flow via the login page, and
//! calls the API from a page of another origin (CORS); it takes screenshots on the way.
//!
//! `scripts/browser.sh` installs the browser and Playwright and prints `HANGAR_BROWSER_PYTHON` and
//! `HANGAR_CHROMIUM`; scripts/test.sh sets them. Without them this test says so and does nothing.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn path_id(path: &str) -> String {
    URL_SAFE_NO_PAD.encode(path)
}

/// A smooth gradient picture, so that previews and screenshots show something real.
fn picture(width: u32, height: u32, from: [u8; 3], to: [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let t = (x + y) as f32 / (width + height) as f32;
        let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * t) as u8;
        image::Rgb([
            mix(from[0], to[0]),
            mix(from[1], to[1]),
            mix(from[2], to[2]),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

async fn store(user: &User, space: &str, path: &str, content_type: &str, bytes: Vec<u8>) {
    let r = user
        .post(&format!(
            "/api/v1/space/{space}/storage/{}/upload",
            path_id(path)
        ))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_works_in_a_real_browser() {
    let (Ok(python), Ok(chromium)) = (
        std::env::var("HANGAR_BROWSER_PYTHON"),
        std::env::var("HANGAR_CHROMIUM"),
    ) else {
        eprintln!(
            "SKIPPED the browser test: HANGAR_BROWSER_PYTHON and HANGAR_CHROMIUM are not set \
             (run `eval \"$(bash scripts/browser.sh)\"` first; scripts/test.sh does)"
        );
        return;
    };
    // The second origin: a page served by the script itself, allowed by --cors-origins.
    let page_port = free_port();
    let other = format!("http://127.0.0.1:{page_port}");
    let server = Server::start_with(&["--cors-origins", &other]);
    let admin = server.admin().await;
    let alice = server.member("alice").await;
    let bob = server.member("bob").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "design", "name": "Design team"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for name in ["alice", "bob"] {
        let r = admin
            .post("/api/v1/spaces/design/members")
            .json(&json!({"username": name}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "handbook", "name": "Handbook"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    admin
        .post("/api/v1/spaces/handbook/members")
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    // Some files already there, as a team would have them.
    store(
        &bob,
        "design",
        "brand/logo-dawn.png",
        "image/png",
        picture(640, 400, [255, 140, 90], [120, 60, 200]),
    )
    .await;
    store(
        &bob,
        "design",
        "brand/palette.png",
        "image/png",
        picture(400, 400, [20, 160, 170], [240, 230, 120]),
    )
    .await;
    store(
        &bob,
        "design",
        "hero-banner.png",
        "image/png",
        picture(1200, 500, [60, 80, 230], [250, 120, 180]),
    )
    .await;
    store(
        &bob,
        "design",
        "moodboard.png",
        "image/png",
        picture(800, 600, [250, 200, 80], [40, 170, 120]),
    )
    .await;
    store(
        &bob,
        "design",
        "meeting-notes.md",
        "text/markdown",
        b"# Kick-off\n\n- scope\n- dates\n".repeat(40),
    )
    .await;
    store(
        &bob,
        "design",
        "budget-2027.csv",
        "text/csv",
        b"item,cost\nprinting,1200\n".repeat(300),
    )
    .await;
    let channel = bob.channel("launch", &["alice"]).await;
    bob.message(
        channel,
        "Morning! The banner drafts are in the Design space.",
    )
    .await;
    // A project with an issue that carries a picture.
    let r = bob
        .post("/api/http/projects")
        .json(&json!({"key": "LAUNCH", "name": "Spring launch", "members": ["alice"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mockup = bob
        .upload(
            "mockup.png",
            "image/png",
            &picture(900, 600, [30, 30, 60], [90, 200, 250]),
        )
        .await;
    let r = bob
        .post("/api/http/projects/key:LAUNCH/planning/issues")
        .json(
            &json!({"title": "Landing page mock-up", "status": "In review",
                      "attachments": [{"className": "FileAttachment", "id": mockup.to_string()}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // An application using the code flow, its redirect URI on the second origin.
    let redirect = format!("{other}/callback");
    let app = create_app(
        &admin,
        json!({"name": "Calendar sync", "codeFlowEnabled": true, "codeFlowRedirectURIs": redirect,
               "pkceRequired": true}),
    )
    .await;
    let client_id = app["clientId"].as_str().unwrap().to_string();
    let secret = read_client_secret(&admin, &client_id).await;

    let screenshots = std::env::var("HANGAR_SCREENSHOTS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/screenshots").to_string()
    });
    std::fs::create_dir_all(&screenshots).unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = json!({
        "base": server.base,
        "chromium": chromium,
        "username": "alice",
        "password": "alice-password",
        "adminPassword": ADMIN_PASSWORD,
        "space": "design",
        "channel": channel,
        "token": alice.token,
        "otherOrigin": other,
        "otherPort": page_port,
        "clientId": client_id,
        "clientSecret": secret,
        "redirect": redirect,
        "screenshots": screenshots,
        "work": work.path(),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/ui.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(config.to_string())
        .output()
        .await
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{stdout}");

    // What the browser did, seen through the API.
    let r = alice
        .get("/api/v1/space/design/storage")
        .send()
        .await
        .unwrap();
    let listing: Value = r.json().await.unwrap();
    let names: Vec<&str> = listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"dropped-renamed.bin"), "{names:?}");
    assert!(names.contains(&"picked.txt"), "{names:?}");
    assert!(!names.contains(&"dropped.bin"), "{names:?}");
    let r = alice
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    let messages: Value = r.json().await.unwrap();
    let report = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "Here is the report")
        .expect("the message posted in the browser");
    assert_eq!(report["attachments"][0]["fileName"], "report.txt");
    let r = alice
        .get("/api/http/projects/key:LAUNCH/planning/issues")
        .send()
        .await
        .unwrap();
    let issues: Value = r.json().await.unwrap();
    let filed = issues["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == "Upload button is hidden on phones")
        .expect("the issue filed in the browser");
    assert_eq!(filed["status"], "Open");
    assert_eq!(filed["attachments"][0]["fileName"], "phone.txt");
}

/// The pages and their files: embedded, with their types, a strict policy and validators; the API's
/// routes are as they were.
#[tokio::test]
async fn the_ui_is_served_from_the_binary_with_strict_headers() {
    let server = Server::start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for page in ["/", "/login"] {
        let r = http.get(server.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-cache");
        let etag = h["etag"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        assert!(
            body.contains("<script type=\"module\" src=\"/ui/"),
            "{body}"
        );
        // Revalidation costs no body.
        let r = http
            .get(server.url(page))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    for (file, kind) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/tus.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let r = http.get(server.url(file)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], kind, "{file}");
        assert!(r.headers().contains_key("etag"));
        let r = http.head(server.url(file)).send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {file}");
    }
    for missing in [
        "/ui/nothing.js",
        "/ui/index.html",
        "/ui/..%2Fmod.rs",
        "/nothing",
    ] {
        let r = http.get(server.url(missing)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{missing}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not-found", "{missing}");
    }
    // The API's own routes are untouched.
    let r = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(server.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.post(server.url("/uploads")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// The file browser's thumbnails: `GET …/storage/{pathId}/preview?size=N` for a space's image files,
/// readable by the space's members only.
#[tokio::test]
async fn storage_files_have_previews_for_their_space_members() {
    let server = Server::start();
    let admin = server.admin().await;
    let alice = server.member("alice").await;
    let eve = server.member("eve").await;
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": "pics", "name": "Pictures"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    admin
        .post("/api/v1/spaces/pics/members")
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    store(
        &alice,
        "pics",
        "a/wide.png",
        "image/png",
        picture(600, 300, [0, 0, 0], [255, 255, 255]),
    )
    .await;
    store(
        &alice,
        "pics",
        "notes.txt",
        "text/plain",
        b"not an image".to_vec(),
    )
    .await;
    let url = format!(
        "/api/v1/space/pics/storage/{}/preview?size=64",
        path_id("a/wide.png")
    );
    let r = alice.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/"));
    let bytes = r.bytes().await.unwrap();
    let preview = image::load_from_memory(&bytes).expect("the preview decodes");
    assert_eq!((preview.width(), preview.height()), (64, 32));
    let r = alice
        .get(&format!(
            "/api/v1/space/pics/storage/{}/preview?size=7",
            path_id("a/wide.png")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = alice
        .get(&format!(
            "/api/v1/space/pics/storage/{}/preview",
            path_id("notes.txt")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "no-preview");
    // Not a member of the space: it does not exist.
    let r = eve.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(server.url(&url)).await.unwrap();
    assert_eq!(r.status(), 401);
}

/// `GET /api/http/projects` (the web UI's list of projects): members see their projects, an
/// administrator every project, anyone else none.
#[tokio::test]
async fn projects_are_listed_to_those_who_see_them() {
    let server = Server::start();
    let admin = server.admin().await;
    let alice = server.member("alice").await;
    let eve = server.member("eve").await;
    for (key, members) in [("ONE", vec!["alice"]), ("TWO", vec![])] {
        let r = admin
            .post("/api/http/projects")
            .json(&json!({"key": key, "name": format!("Project {key}"), "members": members}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let keys = |user: User| async move {
        let r = user.get("/api/http/projects").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(alice).await, ["ONE"]);
    assert!(keys(eve).await.is_empty());
    assert_eq!(keys(admin).await, ["ONE", "TWO"]);
    let r = reqwest::get(server.url("/api/http/projects"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
