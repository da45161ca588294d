//! Start-up that cannot hurt data (SPEC §1): every setting is checked before anything is created or
//! changed, a missing secret key beside a database with data is refused, errors are one clear line
//! naming the flag, the effective configuration is logged without secrets, and secrets can come from
//! files.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `hangar serve` with `args` on `data_dir`, expecting it to exit by itself (a server that
/// wrongly starts is killed after 30 s): its exit status and what it printed on stdout and stderr.
fn refused_start(data_dir: &Path, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("HANGAR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") && key != "HANGAR_LOG" {
            cmd.env_remove(key);
        }
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (exited, wait) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = exited.send(());
    guard.join().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every path under `dir` (relative), sorted: what a refused start must leave as it was.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts a refusal: non-zero exit, one error line on stderr that names `flag`, no bootstrap
/// password printed, and nothing created in a data directory that did not exist.
fn assert_refused(args: &[&str], flag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (status, stdout, stderr) = refused_start(&data_dir, args);
    assert!(!status.success(), "refused: {stdout}{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(errors.len(), 1, "one line on stderr: {stderr:?}");
    assert!(errors[0].contains(flag), "{flag} is named: {stderr}");
    assert!(
        !stdout.contains("Password:"),
        "no account was made: {stdout}"
    );
    assert!(
        !data_dir.exists(),
        "a refused start creates no data directory: {:?}",
        tree(dir.path())
    );
    stderr
}

#[test]
fn an_address_that_does_not_parse_is_refused_before_anything_is_created() {
    assert_refused(&["--listen", "not-an-address"], "--listen");
    assert_refused(&["--listen", "127.0.0.1:99999"], "--listen");
}

#[test]
fn a_port_in_use_is_refused_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused(&["--listen", &addr], "--listen");
}

#[test]
fn a_bad_fetch_allow_list_is_refused_before_anything_is_created() {
    assert_refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--fetch-allow",
            "hooks.internal:port",
        ],
        "--fetch-allow",
    );
}

#[test]
fn a_public_url_must_be_an_absolute_http_url() {
    for bad in [
        "not a url",
        "ftp://example.com",
        "/relative/path",
        "http://",
    ] {
        assert_refused(
            &["--listen", "127.0.0.1:0", "--public-url", bad],
            "--public-url",
        );
    }
}

#[test]
fn bad_sizes_and_durations_name_their_flag() {
    assert_refused(
        &["--listen", "127.0.0.1:0", "--max-file-size", "ten"],
        "--max-file-size",
    );
    assert_refused(
        &["--listen", "127.0.0.1:0", "--space-quota", "5 parsecs"],
        "--space-quota",
    );
    assert_refused(
        &["--listen", "127.0.0.1:0", "--blob-grace", "soon"],
        "--blob-grace",
    );
}

#[test]
fn an_unopenable_database_is_one_line_naming_the_flag_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("hangar.db");
    let url = format!("sqlite://{}", missing.display());
    let stderr = assert_refused(
        &["--listen", "127.0.0.1:0", "--database-url", &url],
        "--database-url",
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    // A file that is not a database, in a data directory that exists: left exactly as it was.
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("hangar.db"), vec![0x5a; 8192]).unwrap();
    let before = tree(&data_dir);
    let (status, _, stderr) = refused_start(&data_dir, &["--listen", "127.0.0.1:0"]);
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(stderr.contains("hangar.db"), "{stderr}");
    assert_eq!(tree(&data_dir), before, "the data directory is as it was");
    assert_eq!(
        std::fs::read(data_dir.join("hangar.db")).unwrap(),
        vec![0x5a; 8192]
    );
}

#[test]
fn a_refused_start_leaves_an_existing_data_directory_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("notes.txt"), b"mine").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = refused_start(&data_dir, &["--listen", &addr]);
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert_eq!(tree(&data_dir), vec![PathBuf::from("notes.txt")]);
}

/// The server's public signing key (JWKS), derived from its secret key.
async fn signing_key(server: &Server) -> String {
    let admin = server.admin().await;
    let r = admin
        .post("/api/http/applications")
        .json(&serde_json::json!({"name": "probe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let app: serde_json::Value = r.json().await.unwrap();
    let r = admin
        .get(&format!(
            "/api/http/applications/id:{}/public-keys",
            app["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The JWKS document is answered as a JSON string.
    let text: serde_json::Value = r.json().await.unwrap();
    let jwks: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519", "{jwks}");
    jwks["keys"].to_string()
}

#[tokio::test]
async fn a_missing_secret_key_beside_a_database_with_data_is_refused_and_named() {
    let mut server = Server::start();
    let key_before = signing_key(&server).await;
    assert!(server.terminate().success());

    let key = server.data_dir.join("secret.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    // SQLite's -wal and -shm files aside: reading the database may checkpoint a WAL that the
    // server left, which changes no data.
    let files = |dir: &Path| -> Vec<PathBuf> {
        tree(dir)
            .into_iter()
            .filter(|p| {
                !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm")
            })
            .collect()
    };
    let before = files(&server.data_dir);
    let had_wal = server.data_dir.join("hangar.db-wal").exists();
    let db_before = std::fs::metadata(server.data_dir.join("hangar.db"))
        .unwrap()
        .modified()
        .unwrap();
    let (status, stdout, stderr) = refused_start(&server.data_dir, &["--listen", "127.0.0.1:0"]);
    assert!(!status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("--secret-key-file"), "{stderr}");
    assert!(!key.exists(), "no new key was made");
    assert_eq!(files(&server.data_dir), before, "nothing was created");
    if !had_wal {
        let db_after = std::fs::metadata(server.data_dir.join("hangar.db"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(db_before, db_after, "nothing was written");
    }

    // The key given from elsewhere (--secret-key-file) is the key: the same signing key as before.
    let elsewhere = server.data_dir.parent().unwrap().join("kept.key");
    std::fs::write(&elsewhere, &saved).unwrap();
    let moved = Server::start_in(
        server.data_dir.clone(),
        &["--secret-key-file", elsewhere.to_str().unwrap()],
    );
    assert_eq!(signing_key(&moved).await, key_before);
    assert!(!key.exists(), "the key file given is used, none is made");
}

#[tokio::test]
async fn a_damaged_secret_key_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("short.key");
    std::fs::write(&key, b"too short").unwrap();
    assert_refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--secret-key-file",
            key.to_str().unwrap(),
        ],
        "--secret-key-file",
    );
}

#[tokio::test]
async fn binding_every_interface_without_a_public_url_warns_once() {
    let server = Server::start_with(&["--listen", "0.0.0.0:0"]);
    let warnings: Vec<String> = server
        .output
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("--public-url"))
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 1, "{}", server.output_text());
    drop(server);

    let server = Server::start_with(&[
        "--listen",
        "0.0.0.0:0",
        "--public-url",
        "https://files.example.com",
    ]);
    assert!(
        !server.output_text().contains("--public-url"),
        "{}",
        server.output_text()
    );
    let server = Server::start();
    assert!(
        !server.output_text().contains("--public-url"),
        "{}",
        server.output_text()
    );
}

#[tokio::test]
async fn the_effective_configuration_is_logged_without_secrets() {
    let server =
        Server::start_with(&["--max-file-size", "1MiB", "--fetch-allow", "hooks.internal"]);
    let text = server.output_text();
    let line = text
        .lines()
        .find(|l| l.contains("effective configuration"))
        .unwrap_or_else(|| panic!("a configuration line: {text}"));
    for part in [
        "listen=127.0.0.1:0",
        &format!("data_dir={}", server.data_dir.display()),
        "max_file_size=1048576",
        "fetch_allow=hooks.internal",
        "admin_password=<redacted>",
        "secret_key_file=",
        "blob_grace=0s",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(
        !text.contains(ADMIN_PASSWORD),
        "the password is never printed"
    );
}

#[tokio::test]
async fn the_admin_password_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-pw");
    std::fs::write(&file, "password-from-a-file\n").unwrap();
    let server = Server::start_with(&["--admin-password-file", file.to_str().unwrap()]);
    login_token(&server.base, "admin", "password-from-a-file").await;
    let r = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!server.output_text().contains("password-from-a-file"));
    drop(server);

    // Both at once is a mistake; a file that cannot be read is refused before anything is made.
    let missing = dir.path().join("nope");
    assert_refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-password-file",
            missing.to_str().unwrap(),
        ],
        "--admin-password-file",
    );
    assert_refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-password",
            "password-on-the-command-line",
            "--admin-password-file",
            file.to_str().unwrap(),
        ],
        "--admin-password-file",
    );
    // A password that breaks the rules is refused before the account is made.
    assert_refused(
        &["--listen", "127.0.0.1:0", "--admin-password", "short"],
        "--admin-password",
    );
}

#[tokio::test]
async fn the_admin_password_file_can_be_named_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-pw");
    std::fs::write(&file, "password-from-the-env-file\r\n").unwrap();
    let data_dir = dir.path().join("data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("HANGAR_ADMIN_PASSWORD_FILE", &file)
        .env_remove("HANGAR_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    /// Kills the server however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Running(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let addr = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return Some(rest.split_whitespace().next().unwrap().to_string());
            }
        }
        None
    })
    .join()
    .unwrap();
    let addr = addr.expect("the server started");
    login_token(
        &format!("http://{addr}"),
        "admin",
        "password-from-the-env-file",
    )
    .await;
    drop(child);
}

/// `hangar probe` (the container health check): exit 0 and the status on stdout when the node on its
/// `--listen` address answers 2xx, exit 1 with one line naming the URL when it answers otherwise or
/// not at all.
#[test]
fn probe_says_whether_the_node_answers() {
    let server = Server::start();
    let probe = |listen: &str, path: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args([
                "probe",
                "--listen",
                listen,
                "--path",
                path,
                "--timeout",
                "5s",
            ])
            .env_remove("HANGAR_LISTEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = probe(&server.addr, "/healthz");
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout.trim(),
        format!("http://{}/healthz: 200 OK", server.addr)
    );

    // A wildcard listen address is asked on loopback.
    let port = server.addr.rsplit(':').next().unwrap();
    let (code, _, _) = probe(&format!("0.0.0.0:{port}"), "/healthz");
    assert_eq!(code, Some(0));

    let (code, _, stderr) = probe(&server.addr, "/no-such-route");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/no-such-route: 404"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    drop(server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (code, _, stderr) = probe(&closed, "/healthz");
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("hangar: http://"), "{stderr}");
}
