//! The command-line client (SPEC §9.8, client half): `hangar login`, `upload`, `download`, `ls` and
//! `share`, talking to a running server over its public HTTP API with a personal token. One file per
//! command; this one holds what they share: the stored login, the HTTP client, error answers, and
//! how a file is named on the command line (`ID` or `S:PATH`).
//!
//! Results go to stdout (one line per file), progress and messages to stderr; `main` prints a
//! failure as one line and exits 1.

pub mod credentials;
mod download;
mod login;
mod ls;
mod progress;
mod share;
mod upload;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use clap::Subcommand;
use reqwest::{Client, RequestBuilder, Response};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Log in to a server and keep a personal token.
    ///
    /// The token is stored in $XDG_CONFIG_HOME/hangar/credentials (mode 0600). The password is asked on the terminal, or read from the first line of standard input
    /// when that is not a terminal. HANGAR_URL and HANGAR_TOKEN override the stored login.
    Login {
        /// The server's public URL, e.g. https://files.example.com
        url: String,
        /// The member's name (asked on the terminal when absent).
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
    },
    /// Upload files (resumable: run the same command again to continue).
    ///
    /// Files go through tus; run the same command again after an interruption and it continues where the server stopped. Prints one line per file: the attachment id, or
    /// S:PATH for a file of a space's storage.
    Upload {
        /// The files to upload.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Store the files in this space's storage instead of as attachments.
        #[arg(long, value_name = "S")]
        space: Option<String>,
        /// With --space: the file's path (one FILE) or the directory they go to (several FILEs);
        /// default: the top level, under each file's own name.
        #[arg(long, value_name = "P", requires = "space")]
        path: Option<String>,
        /// Add the uploaded attachments to message M.
        #[arg(long, value_name = "M", conflicts_with = "space")]
        message: Option<String>,
    },
    /// Download an attachment (ID) or a storage file (S:PATH).
    ///
    /// A partial file is continued with Range; the command succeeds only once the whole file's SHA-256 matches the server's.
    Download {
        /// An attachment id, or SPACE:PATH.
        target: String,
        /// Where to write (`-` for standard output); default: the file's name in the current
        /// directory.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List a directory of a space's storage: S for its top level, S:DIR for a directory.
    Ls {
        /// SPACE or SPACE:DIR.
        target: String,
    },
    /// Make a share link to an attachment (ID) or a storage file (S:PATH) and print its URL.
    Share {
        /// An attachment id, or SPACE:PATH.
        target: String,
        /// How long the link lives: a number and s, m, h or d (e.g. 7d); default: until revoked.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Protect the link with a password, asked on the terminal or read from the first line of
        /// standard input.
        #[arg(long)]
        password: bool,
    },
}

/// Runs one client command.
pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Login { url, username } => login::run(&url, username).await,
        ClientCommand::Upload {
            files,
            space,
            path,
            message,
        } => upload::run(files, space, path, message).await,
        ClientCommand::Download { target, output } => download::run(&target, output).await,
        ClientCommand::Ls { target } => ls::run(&target).await,
        ClientCommand::Share {
            target,
            expires,
            password,
        } => share::run(&target, expires, password).await,
    }
}

/// A logged-in caller: the server's URL (no trailing slash) and a client sending the token.
pub(crate) struct Session {
    pub base: String,
    token: String,
    pub http: Client,
}

impl Session {
    /// The stored login, with HANGAR_URL and HANGAR_TOKEN taking precedence.
    pub fn load() -> anyhow::Result<Session> {
        let creds = credentials::Credentials::resolve()?;
        Ok(Session {
            base: creds.url,
            token: creds.token,
            http: http_client()?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// A request to an absolute URL the server gave (a tus upload's `Location`).
    pub fn request(&self, method: reqwest::Method, url: &str) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// GET `path` and its JSON answer, or the server's error.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.get(path).send().await.map_err(transport)?;
        json_or_error(r).await
    }
}

/// The HTTP client every command uses: no overall time limit (files may be large), but connections
/// and silences are bounded. The silence allowed is long because the last chunk of a tus upload is
/// answered only once the server has hashed and stored the whole file.
pub(crate) fn http_client() -> anyhow::Result<Client> {
    Client::builder()
        .user_agent(concat!("hangar-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(600))
        .build()
        .context("cannot set up the HTTP client")
}

/// A request that got no answer, said in one line.
pub(crate) fn transport(e: reqwest::Error) -> anyhow::Error {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    anyhow!("{}", text.replace('\n', " "))
}

/// The server's error answer in one line: `404 not-found: what went wrong` (SPEC §4 body), or the
/// status alone when the body is not that JSON.
pub(crate) async fn error_of(r: Response) -> anyhow::Error {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    let text = parsed
        .as_ref()
        .and_then(|v| v["errorText"].as_str().map(str::to_string));
    let line = match (code, text) {
        (Some(code), Some(text)) => {
            format!("the server answered {} {code}: {text}", status.as_u16())
        }
        (Some(code), None) => format!("the server answered {} {code}", status.as_u16()),
        _ => format!("the server answered {status}"),
    };
    anyhow!("{}", line.replace(['\n', '\r'], " "))
}

/// The JSON body of a 2xx answer, or the error of any other.
pub(crate) async fn json_or_error(r: Response) -> anyhow::Result<serde_json::Value> {
    if !r.status().is_success() {
        return Err(error_of(r).await);
    }
    r.json().await.context("the server's answer is not JSON")
}

/// What a command line names: an attachment by id, or a file of a space's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Attachment(i64),
    Storage { space: String, path: String },
}

impl Target {
    /// `123` is an attachment; `S:PATH` a storage file.
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        if let Some((space, path)) = s.split_once(':') {
            if space.is_empty() || path.is_empty() {
                bail!("`{s}`: expected an attachment id or SPACE:PATH");
            }
            return Ok(Target::Storage {
                space: space.to_string(),
                path: path.trim_matches('/').to_string(),
            });
        }
        match s.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Target::Attachment(id)),
            _ => bail!("`{s}`: expected an attachment id or SPACE:PATH"),
        }
    }
}

/// A storage path as it travels in URLs (docs/api.md §15): URL-safe base64 without padding.
pub(crate) fn path_id(path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path.as_bytes())
}

/// A space id as a path segment.
pub(crate) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A password from the terminal (asked twice when `confirm`), or from the first line of standard
/// input when that is not a terminal.
pub(crate) fn read_password(prompt: &str, confirm: bool) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("no password on the first line of standard input");
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!("{prompt}: "))
        .context("cannot read the password from the terminal")?;
    if confirm {
        let again = rpassword::prompt_password("Again: ")
            .context("cannot read the password from the terminal")?;
        if first != again {
            bail!("the two passwords differ");
        }
    }
    if first.is_empty() {
        bail!("empty password");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Target::parse("42").unwrap(), Target::Attachment(42));
        assert_eq!(
            Target::parse("docs:a/b.txt").unwrap(),
            Target::Storage {
                space: "docs".into(),
                path: "a/b.txt".into()
            }
        );
        assert!(Target::parse("abc").is_err());
        assert!(Target::parse(":x").is_err());
        assert!(Target::parse("0").is_err());
        assert_eq!(path_id("photos/profile.png"), "cGhvdG9zL3Byb2ZpbGUucG5n");
    }
}
