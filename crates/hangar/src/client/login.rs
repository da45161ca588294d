//! `hangar login URL [--username NAME]`: logs in with a password (a session cookie), makes a
//! personal token with it, ends the session, and stores `{url, token}`.

use super::credentials::{normalize_url, origin, Credentials};
use super::{error_of, json_or_error, read_password, transport};
use anyhow::{bail, Context};
use std::io::{BufRead, IsTerminal, Write};

pub async fn run(url: &str, username: Option<String>) -> anyhow::Result<()> {
    let base = normalize_url(url)?;
    let origin = origin(&base)?;
    let username = match username {
        Some(name) => name,
        None if std::io::stdin().is_terminal() => ask("Username")?,
        None => bail!("give --username NAME when standard input is not a terminal"),
    };
    let password = read_password(&format!("Password for {username}"), false)?;

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .user_agent(concat!("hangar-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    // Cookie-authenticated calls that change something must look same-origin (docs/api.md §1).
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("origin", &origin)
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(transport)
        .with_context(|| format!("cannot reach {base}"))?;
    if !r.status().is_success() {
        return Err(error_of(r).await).context("login failed");
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into());
    let r = http
        .post(format!("{base}/api/v1/me/tokens"))
        .header("origin", &origin)
        .json(&serde_json::json!({"name": format!("hangar CLI on {host}")}))
        .send()
        .await
        .map_err(transport)?;
    let token = json_or_error(r)
        .await
        .context("cannot create a personal token")?;
    let Some(token) = token["token"].as_str() else {
        bail!("the server's answer has no token");
    };
    // The token is what is kept; the session is not needed any more.
    let _ = http
        .post(format!("{base}/api/v1/auth/logout"))
        .header("origin", &origin)
        .send()
        .await;
    let path = Credentials {
        url: base.clone(),
        token: token.to_string(),
    }
    .store()?;
    eprintln!(
        "logged in to {base} as {username}; token stored in {}",
        path.display()
    );
    Ok(())
}

/// One line typed on the terminal.
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim().to_string();
    if line.is_empty() {
        bail!("no {}", prompt.to_lowercase());
    }
    Ok(line)
}
