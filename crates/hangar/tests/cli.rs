//! The command-line client (SPEC §9.8, client half): the real `hangar` binary run as a person would,
//! against a real server, with its own HOME and XDG directories: login with the password on stdin
//! (credentials file 0600), uploads through tus (attachments and storage, several chunks), byte-exact
//! downloads (to a file, to stdout, continuing a prefix), `ls`, `share`, an upload killed midway and
//! resumed from the server's offset, errors as one line with exit 1, and progress output: plain
//! lines when piped, a progress bar on a terminal.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The client's world: a home directory with XDG directories, a working directory, the server.
struct Cli {
    dir: tempfile::TempDir,
    base: String,
}

impl Cli {
    fn new(server: &Server) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Cli {
            dir,
            base: server.base.clone(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `hangar ARGS` in the working directory, with no `HANGAR_*` from the test's environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
        cmd.args(args)
            .current_dir(self.work())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config())
            .env("XDG_STATE_HOME", self.state());
        for (key, _) in std::env::vars() {
            if key.starts_with("HANGAR_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// Runs `hangar ARGS` with `stdin` as standard input (a pipe) and `env` added.
    fn run_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, b"", &[])
    }

    /// Runs and asserts success; answers stdout as text.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ok(&out, args);
        String::from_utf8(out.stdout).unwrap()
    }

    fn login_admin(&self) {
        let pw = format!("{ADMIN_PASSWORD}\n");
        let out = self.run_env(
            &["login", &self.base, "--username", "admin"],
            pw.as_bytes(),
            &[],
        );
        assert_ok(&out, &["login"]);
    }

    /// The stored login's token.
    fn token(&self) -> String {
        let text = std::fs::read_to_string(self.config().join("hangar/credentials")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    fn user(&self) -> User {
        User {
            base: self.base.clone(),
            http: reqwest::Client::new(),
            token: self.token(),
            username: "admin".into(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.work().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.work().join(name)).unwrap()
    }
}

fn assert_ok(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "hangar {args:?} failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_plain(&out.stderr);
}

/// Without a terminal, progress and messages are plain lines: no `\r`, no escape sequences.
fn assert_plain(stderr: &[u8]) {
    assert!(
        !stderr.contains(&b'\r') && !stderr.contains(&0x1b),
        "piped stderr holds terminal control: {:?}",
        String::from_utf8_lossy(stderr)
    );
}

/// A failure: exit code 1 and exactly one line on stderr; answers that line.
fn assert_fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("hangar: "), "{err:?}");
    err
}

async fn make_space(admin: &User, space: &str) {
    let r = admin
        .post("/api/v1/spaces")
        .json(&json!({"id": space, "name": space}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_upload_download_attachment() {
    let server = Server::start();
    let cli = Cli::new(&server);
    cli.login_admin();

    // The credentials file: owner-only, in an owner-only directory, and it works.
    let creds = cli.config().join("hangar/credentials");
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mode = std::fs::metadata(creds.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    assert_eq!(stored["url"], server.base);
    let admin = cli.user();
    let me: Value = admin
        .get("/api/v1/auth/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["authenticatedBy"], "token");

    // A file of several chunks (1 MiB each here).
    let bytes = pseudo_random_bytes(5 * 1024 * 1024 + 12345, 7);
    cli.write("report.bin", &bytes);
    let out = cli.run_env(
        &["upload", "report.bin"],
        b"",
        &[("HANGAR_CHUNK_SIZE", "1048576")],
    );
    assert_ok(&out, &["upload"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let id: i64 = stdout.trim().parse().expect("the attachment id");
    let meta: Value = admin
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );
    assert_eq!(meta["fileSize"], bytes.len() as u64);
    assert_eq!(meta["fileChecksum"], sha256_hex(&bytes));
    assert_eq!(meta["fileName"], "report.bin");
    // The upload's state file is gone once the file is stored.
    let states = cli.state().join("hangar/uploads");
    assert_eq!(std::fs::read_dir(&states).unwrap().count(), 0);

    // Download under its own name, into another directory.
    std::fs::remove_file(cli.work().join("report.bin")).unwrap();
    cli.ok(&["download", &id.to_string()]);
    assert!(cli.read("report.bin") == bytes, "downloaded bytes differ");

    // To stdout.
    let out = cli.run(&["download", &id.to_string(), "-o", "-"]);
    assert_ok(&out, &["download -o -"]);
    assert!(out.stdout == bytes, "stdout bytes differ");

    // A prefix on disk is continued with Range, not fetched again.
    cli.write("part.bin", &bytes[..2 * 1024 * 1024]);
    let out = cli.run(&["download", &id.to_string(), "-o", "part.bin"]);
    assert_ok(&out, &["download part.bin"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("continuing after 2097152 bytes"), "{err}");
    assert!(cli.read("part.bin") == bytes, "continued file differs");

    // A file that is not a prefix is caught by the SHA-256 and fetched whole.
    let mut wrong = bytes[..1000].to_vec();
    wrong[10] ^= 0xff;
    cli.write("wrong.bin", &wrong);
    cli.ok(&["download", &id.to_string(), "-o", "wrong.bin"]);
    assert!(cli.read("wrong.bin") == bytes, "repaired file differs");

    // The piped progress is plain lines naming the file.
    let out = cli.run(&["download", &id.to_string(), "-o", "again.bin"]);
    assert_ok(&out, &["download again.bin"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("downloading report.bin"), "{err}");
    assert!(err.contains("SHA-256 verified"), "{err}");

    // A share link to the attachment downloads it without credentials.
    let url = cli.ok(&["share", &id.to_string(), "--expires", "1d"]);
    let url = url.trim();
    assert!(url.starts_with(&format!("{}/s/", server.base)), "{url}");
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == bytes, "shared bytes differ");
    let links: Value = admin
        .get("/api/v1/share-links")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(links["data"][0]["expiresAt"].as_i64().is_some(), "{links}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_upload_ls_download_share() {
    let server = Server::start();
    let cli = Cli::new(&server);
    cli.login_admin();
    let admin = cli.user();
    make_space(&admin, "docs").await;

    let one = pseudo_random_bytes(3 * 1024 * 1024, 1);
    cli.write("one.bin", &one);
    cli.write("two.txt", b"hello from the CLI\n");
    let out = cli.run_env(
        &[
            "upload",
            "one.bin",
            "--space",
            "docs",
            "--path",
            "a/b/first.bin",
        ],
        b"",
        &[("HANGAR_CHUNK_SIZE", "1000000")],
    );
    assert_ok(&out, &["upload to storage"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "docs:a/b/first.bin\n"
    );
    // Several files: P is a directory.
    let stdout = cli.ok(&[
        "upload", "one.bin", "two.txt", "--space", "docs", "--path", "many",
    ]);
    assert_eq!(stdout, "docs:many/one.bin\ndocs:many/two.txt\n");

    let top = cli.ok(&["ls", "docs"]);
    let names: Vec<&str> = top
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(names, ["a/", "many/"], "{top}");
    let many = cli.ok(&["ls", "docs:many"]);
    let lines: Vec<&str> = many.lines().collect();
    assert_eq!(lines.len(), 2, "{many}");
    assert!(
        lines[0]
            .trim_start()
            .starts_with(&format!("{} ", one.len())),
        "{many}"
    );
    assert!(lines[0].ends_with(" one.bin"), "{many}");
    assert!(lines[1].trim_start().starts_with("19 "), "{many}");
    assert!(lines[1].ends_with(" two.txt"), "{many}");

    // The server holds the bytes; the CLI downloads them back.
    let r = admin
        .get(&format!(
            "/api/v1/space/docs/storage/{}",
            base64_url("a/b/first.bin")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == one);
    std::fs::remove_file(cli.work().join("one.bin")).unwrap();
    cli.ok(&["download", "docs:a/b/first.bin", "-o", "got.bin"]);
    assert!(cli.read("got.bin") == one);
    cli.ok(&["download", "docs:many/two.txt"]);
    assert_eq!(cli.read("two.txt"), b"hello from the CLI\n");

    // A password-protected share link, the password on stdin.
    let out = cli.run_env(
        &["share", "docs:many/two.txt", "--password"],
        b"s3cret\n",
        &[],
    );
    assert_ok(&out, &["share --password"]);
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let http = reqwest::Client::new();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .header("x-share-password", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), "hello from the CLI\n");

    // A directory is not a file to download; an unknown directory is not listed.
    assert_fails(&cli.run(&["download", "docs:many"]));
    let err = assert_fails(&cli.run(&["ls", "docs:nowhere"]));
    assert!(err.contains("404"), "{err}");
}

fn base64_url(path: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)
}

/// The file of the one upload under way, and its JSON.
fn state_file(cli: &Cli) -> Option<(PathBuf, Value)> {
    let dir = cli.state().join("hangar/uploads");
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    Some((entry.path(), serde_json::from_str(&text).ok()?))
}

async fn tus_head(user: &User, location: &str) -> (u64, i64) {
    let r = user
        .http
        .head(location)
        .bearer_auth(&user.token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = |n: &str| -> String { r.headers()[n].to_str().unwrap().to_string() };
    (
        h("upload-offset").parse().unwrap(),
        h("hangar-attachment-id").parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upload_resumes_from_the_servers_offset() {
    let server = Server::start();
    let cli = Cli::new(&server);
    cli.login_admin();
    let admin = cli.user();
    let bytes = pseudo_random_bytes(24 * 1024 * 1024, 3);
    let file = cli.write("large.bin", &bytes);

    // Small chunks make the upload long; it is killed once the server holds some of it.
    let mut child = cli
        .command(&["upload", file.to_str().unwrap()])
        .env("HANGAR_CHUNK_SIZE", "65536")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let location = loop {
        if let Some((_, state)) = state_file(&cli) {
            break state["location"].as_str().unwrap().to_string();
        }
        assert!(child.try_wait().unwrap().is_none(), "the CLI ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    loop {
        let (offset, _) = tus_head(&admin, &location).await;
        if offset >= 1024 * 1024 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the CLI ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (before, attachment) = tus_head(&admin, &location).await;
    assert!(
        before > 0 && before < bytes.len() as u64,
        "offset after the kill: {before}"
    );
    assert!(state_file(&cli).is_some(), "the state file stays");

    // The rerun continues the same upload from the server's offset.
    let out = cli.run_env(
        &["upload", file.to_str().unwrap()],
        b"",
        &[("HANGAR_CHUNK_SIZE", "4194304")],
    );
    assert_ok(&out, &["upload (rerun)"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("resuming at"), "{err}");
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(id, attachment, "the same tus upload was continued");
    let (after, _) = tus_head(&admin, &location).await;
    assert_eq!(after, bytes.len() as u64);
    assert!(state_file(&cli).is_none(), "the state file is removed");

    let r = admin
        .get(&format!("/api/v1/attachments/{id}/large.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == bytes, "stored bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_and_exit_1() {
    let server = Server::start();
    let cli = Cli::new(&server);

    // Not logged in.
    let err = assert_fails(&cli.run(&["ls", "docs"]));
    assert!(err.contains("not logged in"), "{err}");
    // A wrong password.
    let out = cli.run_env(
        &["login", &server.base, "--username", "admin"],
        b"wrong\n",
        &[],
    );
    let err = assert_fails(&out);
    assert!(err.contains("401"), "{err}");
    assert!(!cli.config().join("hangar/credentials").exists());
    // No server there.
    let out = cli.run_env(
        &["login", "http://127.0.0.1:9", "--username", "admin"],
        b"pw\n",
        &[],
    );
    assert_fails(&out);

    cli.login_admin();
    // An empty file is a file too.
    cli.write("empty.txt", b"");
    let id = cli.ok(&["upload", "empty.txt"]);
    let out = cli.run(&["download", id.trim(), "-o", "-"]);
    assert_ok(&out, &["download empty"]);
    assert!(out.stdout.is_empty());

    let err = assert_fails(&cli.run(&["download", "999"]));
    assert!(err.contains("404"), "{err}");
    let err = assert_fails(&cli.run(&["download", "not-a-target"]));
    assert!(err.contains("SPACE:PATH"), "{err}");
    let err = assert_fails(&cli.run(&["upload", "missing.bin"]));
    assert!(err.contains("missing.bin"), "{err}");
    let err = assert_fails(&cli.run(&["share", "docs:x", "--expires", "soon"]));
    assert!(err.contains("--expires"), "{err}");

    // HANGAR_URL and HANGAR_TOKEN override the stored login, each its half.
    let member = server.member("mia").await;
    cli.write("m.txt", b"mine");
    let out = cli.run_env(
        &["upload", "m.txt"],
        b"",
        &[("HANGAR_TOKEN", &member.token)],
    );
    assert_ok(&out, &["upload as mia"]);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = member
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the member owns it");
    let out = cli.run_env(
        &["ls", "docs"],
        b"",
        &[("HANGAR_URL", "http://127.0.0.1:9")],
    );
    assert_fails(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_to_a_message() {
    let server = Server::start();
    let cli = Cli::new(&server);
    cli.login_admin();
    let admin = cli.user();
    let channel = admin.channel("general", &[]).await;
    let message = admin.message(channel, "files below").await;
    let big = pseudo_random_bytes(2 * 1024 * 1024, 9);
    cli.write("a.bin", &big);
    cli.write("b.txt", b"bee");
    let stdout = cli.ok(&[
        "upload",
        "a.bin",
        "b.txt",
        "--message",
        &message.to_string(),
    ]);
    let ids: Vec<i64> = stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{stdout}");
    let page: Value = admin
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let linked: Vec<i64> = page["data"][0]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attachmentId"].as_i64().unwrap())
        .collect();
    assert_eq!(linked, ids);
    cli.ok(&["download", &ids[0].to_string(), "-o", "a2.bin"]);
    assert!(cli.read("a2.bin") == big);
    let err = assert_fails(&cli.run(&["upload", "b.txt", "--message", "999"]));
    assert!(err.contains("404"), "{err}");
}

/// Runs `hangar ARGS` on a pseudo-terminal (stdin, stdout and stderr); answers all it wrote.
fn run_on_pty(cli: &Cli, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_hangar"));
    cmd.args(args);
    cmd.cwd(cli.work());
    for (key, _) in std::env::vars() {
        if key.starts_with("HANGAR_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", cli.home());
    cmd.env("XDG_CONFIG_HOME", cli.config());
    cmd.env("XDG_STATE_HOME", cli.state());
    cmd.env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    // Read while it runs (a full pty would block it); EIO once the child is gone ends the read.
    let reading = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    let status = child.wait().unwrap();
    drop(pair.master);
    let all = reading.join().unwrap();
    (status.success(), String::from_utf8_lossy(&all).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bar_on_a_terminal_plain_lines_otherwise() {
    let server = Server::start();
    let cli = Cli::new(&server);
    cli.login_admin();
    let bytes = pseudo_random_bytes(8 * 1024 * 1024, 11);
    cli.write("bar.bin", &bytes);

    let (ok, shown) = run_on_pty(
        &cli,
        &["upload", "bar.bin"],
        &[("HANGAR_CHUNK_SIZE", "262144")],
    );
    assert!(ok, "upload on a terminal failed: {shown:?}");
    assert!(
        shown.contains("\u{1b}["),
        "no escape sequence on a terminal: {shown:?}"
    );
    assert!(shown.contains("uploading bar.bin ["), "no bar: {shown:?}");
    // The rate's unit depends on the speed (`0 B/s` on the first draw).
    assert!(shown.contains("B/s "), "no rate: {shown:?}");
    assert!(shown.contains("/8.00 MiB "), "no total: {shown:?}");
    assert!(shown.contains("ETA"), "no time left: {shown:?}");
    let id = shown
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_control()))
        .find(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .expect("the attachment id on its own line")
        .to_string();

    let (ok, shown) = run_on_pty(&cli, &["download", &id, "-o", "bar2.bin"], &[]);
    assert!(ok, "download on a terminal failed: {shown:?}");
    assert!(
        shown.contains("\u{1b}["),
        "no escape sequence on a terminal: {shown:?}"
    );
    assert!(cli.read("bar2.bin") == bytes);

    // The same commands piped: plain lines only.
    let out = cli.run_env(
        &["upload", "bar.bin"],
        b"",
        &[("HANGAR_CHUNK_SIZE", "262144")],
    );
    assert_ok(&out, &["upload piped"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bar.bin: 50% (4.00 MiB of 8.00 MiB)"), "{err}");
    let out = cli.run(&["download", &id, "-o", "bar3.bin"]);
    assert_ok(&out, &["download piped"]);
}
