//! The stored login: `{url, token}` as JSON in `$XDG_CONFIG_HOME/hangar/credentials` (default
//! `~/.config/hangar/credentials`), created with mode 0600 in a directory of mode 0700.
//! `HANGAR_URL` and `HANGAR_TOKEN` each override their half.

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Credentials {
    pub url: String,
    pub token: String,
}

/// `$XDG_CONFIG_HOME/hangar`, else `~/.config/hangar`.
fn config_dir() -> anyhow::Result<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_STATE_HOME/hangar`, else `~/.local/state/hangar`: the upload state files.
pub(crate) fn state_dir() -> anyhow::Result<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state")
}

fn xdg_dir(var: &str, fallback: &str) -> anyhow::Result<PathBuf> {
    // The XDG rules: an empty or relative value is ignored.
    if let Some(dir) = std::env::var_os(var).map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("hangar"));
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| anyhow!("neither {var} nor HOME is set"))?;
    Ok(home.join(fallback).join("hangar"))
}

pub fn path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials"))
}

/// Creates `dir` and its missing parents; the last one with mode 0700.
pub(crate) fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

impl Credentials {
    /// The stored login, or none.
    fn stored() -> anyhow::Result<Option<Credentials>> {
        let path = path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not a stored login", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The login to use: the stored one with `HANGAR_URL` / `HANGAR_TOKEN` in place of its halves.
    pub fn resolve() -> anyhow::Result<Credentials> {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        let (url, token) = (env("HANGAR_URL"), env("HANGAR_TOKEN"));
        let stored = if url.is_some() && token.is_some() {
            None
        } else {
            Self::stored()?
        };
        let url = url.or_else(|| stored.as_ref().map(|s| s.url.clone()));
        let token = token.or_else(|| stored.as_ref().map(|s| s.token.clone()));
        match (url, token) {
            (Some(url), Some(token)) => Ok(Credentials {
                url: normalize_url(&url)?,
                token,
            }),
            _ => {
                bail!("not logged in: run `hangar login URL` (or set HANGAR_URL and HANGAR_TOKEN)")
            }
        }
    }

    /// Writes the login, replacing any other, readable by its owner only.
    pub fn store(&self) -> anyhow::Result<PathBuf> {
        let path = path()?;
        let dir = path
            .parent()
            .context("the credentials file has a directory")?;
        private_dir(dir)?;
        let tmp = dir.join(".credentials.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        // The mode given at creation is reduced by the umask, never widened: make sure.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let text = serde_json::to_string_pretty(self)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// `https://host/` → `https://host`; only http and https.
pub(crate) fn normalize_url(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url.trim()).with_context(|| format!("`{url}` is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("`{url}`: the server's URL starts with http:// or https://");
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// The origin of a URL as browsers write it (for the CSRF check of cookie requests).
pub(crate) fn origin(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    Ok(parsed.origin().ascii_serialization())
}
