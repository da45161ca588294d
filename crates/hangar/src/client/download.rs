//! `hangar download ID|S:PATH [-o FILE]`: streams the file to disk (or stdout with `-o -`), hashing
//! as it goes. A file already there that is shorter than the target is taken as its beginning and
//! continued with `Range` (and `If-Range`, so a file changed meanwhile comes whole); the command
//! succeeds only once the SHA-256 of the whole file matches the server's. If a continued file does
//! not match, it is downloaded once more from the start.

use super::progress::Progress;
use super::{error_of, path_id, segment, transport, Session, Target};
use anyhow::{anyhow, bail, Context};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the server says about the file.
#[derive(Clone)]
struct Remote {
    /// The download route (a path under the server's URL).
    route: String,
    name: String,
    size: u64,
    sha256: String,
}

pub async fn run(target: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    let session = Session::load()?;
    let target = Target::parse(target)?;
    let remote = describe(&session, &target).await?;
    match output {
        Some(o) if o.as_os_str() == "-" => to_stdout(&session, &remote).await,
        Some(path) => to_file(&session, &remote, &path).await,
        None => {
            let name = remote.name.replace(['/', '\\'], "_");
            if name.is_empty() || name == "." || name == ".." {
                bail!(
                    "the file's name `{}` cannot be used here; give -o FILE",
                    remote.name
                );
            }
            to_file(&session, &remote, Path::new(&name)).await
        }
    }
}

async fn describe(session: &Session, target: &Target) -> anyhow::Result<Remote> {
    match target {
        Target::Attachment(id) => {
            let meta = session
                .get_json(&format!("/api/v1/attachments/{id}"))
                .await?;
            let state = meta["attachmentState"].as_str().unwrap_or("");
            if state != "ReadyForDownloadFromServerToClient" {
                bail!("attachment {id} cannot be downloaded: it is {state}");
            }
            let name = meta["fileName"].as_str().unwrap_or("file").to_string();
            Ok(Remote {
                route: format!("/api/v1/attachments/{id}/{}", segment(&name)),
                size: meta["fileSize"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("the server did not say the file's size"))?,
                sha256: meta["fileChecksum"].as_str().unwrap_or("").to_string(),
                name,
            })
        }
        Target::Storage { space, path } => {
            let pid = path_id(path);
            let meta = session
                .get_json(&format!(
                    "/api/v1/space/{}/storage/{pid}/meta",
                    segment(space)
                ))
                .await?;
            if meta["kind"].as_str() != Some("file") {
                bail!("{space}:{path} is a directory");
            }
            Ok(Remote {
                route: format!("/api/v1/space/{}/storage/{pid}", segment(space)),
                name: meta["name"].as_str().unwrap_or("file").to_string(),
                size: meta["size"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("the server did not say the file's size"))?,
                sha256: meta["checksum"].as_str().unwrap_or("").to_string(),
            })
        }
    }
}

/// GETs the file from `start`, writing every byte to `out` and `hasher`. When the server sends
/// the whole file instead of the range, `restart` empties the output first.
async fn fetch(
    session: &Session,
    remote: &mut Remote,
    start: u64,
    out: &mut dyn Write,
    hasher: &mut Sha256,
    restart: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut request = session.get(&remote.route);
    if start > 0 {
        request = request.header("range", format!("bytes={start}-"));
        if !remote.sha256.is_empty() {
            request = request.header("if-range", format!("\"{}\"", remote.sha256));
        }
    }
    let mut r = request.send().await.map_err(transport)?;
    let from = match r.status() {
        StatusCode::PARTIAL_CONTENT if start > 0 => start,
        StatusCode::OK => {
            if start > 0 {
                eprintln!(
                    "{}: the file changed on the server; downloading it whole",
                    remote.name
                );
                restart()?;
                *hasher = Sha256::new();
            }
            0
        }
        _ => return Err(error_of(r).await),
    };
    // The ETag is the SHA-256 of what is being sent: it wins over the metadata read before.
    if let Some(tag) = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim_start_matches("W/").trim_matches('"').to_string())
    {
        if tag.len() == 64 {
            remote.sha256 = tag;
        }
    }
    if from == 0 {
        if let Some(len) = r.content_length() {
            remote.size = len;
        }
    }
    let progress = Progress::new("downloading", &remote.name, remote.size, from);
    let result = async {
        while let Some(chunk) = r.chunk().await.map_err(transport)? {
            out.write_all(&chunk).context("cannot write the file")?;
            hasher.update(&chunk);
            progress.inc(chunk.len() as u64);
        }
        out.flush().context("cannot write the file")
    }
    .await;
    progress.finish();
    result
}

async fn to_stdout(session: &Session, remote: &Remote) -> anyhow::Result<()> {
    let mut remote = remote.clone();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut hasher = Sha256::new();
    fetch(session, &mut remote, 0, &mut out, &mut hasher, &mut || {
        Ok(())
    })
    .await?;
    verify(&remote, hasher)
}

fn verify(remote: &Remote, hasher: Sha256) -> anyhow::Result<()> {
    let got = hex::encode(hasher.finalize());
    if remote.sha256.is_empty() {
        bail!("the server did not say the file's SHA-256: it cannot be checked");
    }
    if got != remote.sha256 {
        bail!(
            "the SHA-256 of what was received ({got}) is not the server's ({})",
            remote.sha256
        );
    }
    Ok(())
}

async fn to_file(session: &Session, remote: &Remote, path: &Path) -> anyhow::Result<()> {
    let show = path.display().to_string();
    for attempt in 0..2 {
        let mut remote = remote.clone();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {show}"))?;
        let have = file.metadata()?.len();
        let mut hasher = Sha256::new();
        let start = if attempt == 0 && have <= remote.size {
            // What is there is taken as the file's beginning; the final check tells.
            std::io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {show}"))?;
            have
        } else {
            file.set_len(0)?;
            0
        };
        if start > 0 && start == remote.size {
            eprintln!("{show}: already complete; checking");
        } else {
            if start > 0 {
                eprintln!("{show}: continuing after {start} bytes");
            }
            let mut restart = {
                let file = file.try_clone()?;
                move || -> anyhow::Result<()> {
                    file.set_len(0)?;
                    Ok(())
                }
            };
            let mut writer = Appender(&file);
            fetch(
                session,
                &mut remote,
                start,
                &mut writer,
                &mut hasher,
                &mut restart,
            )
            .await
            .with_context(|| format!("download to {show} (run it again to continue)"))?;
        }
        file.sync_all()?;
        match verify(&remote, hasher) {
            Ok(()) => {
                eprintln!("{show}: {} bytes, SHA-256 verified", remote.size);
                return Ok(());
            }
            Err(e) if attempt == 0 && start > 0 => {
                eprintln!("{show}: {e:#}; downloading it again from the start");
            }
            Err(e) => return Err(e),
        }
    }
    bail!("{show}: the download could not be verified")
}

/// Writes at the end of the file, wherever reads left the cursor (and after a truncation).
struct Appender<'a>(&'a std::fs::File);

impl Write for Appender<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::io::{Seek, SeekFrom};
        let mut f = self.0;
        f.seek(SeekFrom::End(0))?;
        f.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let mut f = self.0;
        f.flush()
    }
}
