//! `hangar upload FILE… [--space S --path P] [--message M]`: each file through tus (docs/api.md
//! §15a), in chunks with a SHA-256 per chunk and the whole file's SHA-256 declared at creation.
//!
//! Resumable: before the first byte is sent, the upload's URL is written to a state file under
//! `$XDG_STATE_HOME/hangar/uploads/`, named after the server, the file's absolute path, size and
//! modification time, and the target. A rerun finds it, asks the server (`HEAD`) where the upload
//! stands and continues from there; the state file is removed once the file is stored.
//!
//! `--message M` sends the files to message M through `POST /api/v1/messages/{M}/attachments`
//! (multipart, streamed): the API has no route that links an already uploaded attachment to an
//! existing message, so such uploads are not resumable.

use super::credentials::{private_dir, state_dir};
use super::progress::{human, Progress};
use super::{error_of, json_or_error, path_id, segment, transport, Session};
use anyhow::{anyhow, bail, Context};
use base64::Engine;
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_CHUNK: u64 = 8 * 1024 * 1024;

/// Bytes per `PATCH`; `HANGAR_CHUNK_SIZE` (bytes, undocumented) changes it for tests.
fn chunk_size() -> u64 {
    std::env::var("HANGAR_CHUNK_SIZE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CHUNK)
}

/// What a state file remembers of an upload under way.
#[derive(Serialize, Deserialize)]
struct State {
    location: String,
    sha256: String,
}

/// Where one file goes.
enum Dest {
    Attachment,
    Storage { space: String, path: String },
}

pub async fn run(
    files: Vec<PathBuf>,
    space: Option<String>,
    path: Option<String>,
    message: Option<String>,
) -> anyhow::Result<()> {
    let session = Session::load()?;
    for file in &files {
        let meta = std::fs::metadata(file).with_context(|| format!("{}", file.display()))?;
        if !meta.is_file() {
            bail!("{}: not a regular file", file.display());
        }
    }
    if let Some(message) = message {
        return to_message(&session, &files, &message).await;
    }
    let several = files.len() > 1;
    for file in &files {
        let dest = match &space {
            None => Dest::Attachment,
            Some(space) => {
                let name = base_name(file)?;
                let dir = path.as_deref().map(|p| p.trim_matches('/'));
                let path = match dir {
                    Some(p) if !several => p.to_string(),
                    Some("") | None => name,
                    Some(dir) => format!("{dir}/{name}"),
                };
                Dest::Storage {
                    space: space.clone(),
                    path,
                }
            }
        };
        let line = upload_one(&session, file, &dest)
            .await
            .with_context(|| format!("upload {}", file.display()))?;
        println!("{line}");
    }
    Ok(())
}

fn base_name(file: &Path) -> anyhow::Result<String> {
    file.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{}: no usable file name", file.display()))
}

/// Uploads one file (continuing an earlier run's upload when there is one); answers the line to
/// print: the attachment id or `S:PATH`.
async fn upload_one(session: &Session, file: &Path, dest: &Dest) -> anyhow::Result<String> {
    let absolute = std::fs::canonicalize(file)?;
    let meta = std::fs::metadata(&absolute)?;
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let target = match dest {
        Dest::Attachment => None,
        Dest::Storage { space, path } => Some(format!("space:{space}:{}", path_id(path))),
    };
    let key = hex::encode(Sha256::digest(format!(
        "{}\n{}\n{size}\n{mtime}\n{}",
        session.base,
        absolute.display(),
        target.as_deref().unwrap_or("attachment")
    )));
    let dir = state_dir()?.join("uploads");
    let state_file = dir.join(format!("{key}.json"));
    let name = base_name(file)?;

    // An earlier run's upload, if the server still has it.
    let mut resumed = None;
    if let Ok(text) = std::fs::read_to_string(&state_file) {
        if let Ok(state) = serde_json::from_str::<State>(&text) {
            match head(session, &state.location).await? {
                Some(status) if status.length == Some(size) => resumed = Some((state, status)),
                _ => {
                    eprintln!("{name}: the earlier upload is gone from the server; starting again");
                    let _ = std::fs::remove_file(&state_file);
                }
            }
        }
    }
    let (state, mut status) = match resumed {
        Some(found) => found,
        None => {
            if size >= 64 * 1024 * 1024 {
                eprintln!("{name}: computing its SHA-256 ({})", human(size));
            }
            let sha256 = hash_file(&absolute)?;
            let state = create(session, &name, size, &sha256, target.as_deref()).await?;
            // Saved before the first byte goes out, so that a rerun continues this upload.
            private_dir(&dir)?;
            let tmp = dir.join(format!("{key}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(&state)?)
                .and_then(|()| std::fs::rename(&tmp, &state_file))
                .with_context(|| format!("cannot write {}", state_file.display()))?;
            let status = head(session, &state.location)
                .await?
                .ok_or_else(|| anyhow!("the server forgot the upload it just created"))?;
            (state, status)
        }
    };

    let progress = Progress::new("uploading", &name, size, status.offset);
    let sent = send(session, &absolute, size, &state, &mut status, &progress).await;
    progress.finish();
    sent?;

    // The server verified the declared SHA-256; make sure the result is what we sent.
    let line = match dest {
        Dest::Attachment => {
            let id = status
                .attachment_id
                .ok_or_else(|| anyhow!("the server did not say which attachment it made"))?;
            wait_ready(session, id, &state.sha256).await?;
            id.to_string()
        }
        Dest::Storage { space, path } => {
            let meta = session
                .get_json(&format!(
                    "/api/v1/space/{}/storage/{}/meta",
                    segment(space),
                    path_id(path)
                ))
                .await?;
            if meta["checksum"].as_str() != Some(state.sha256.as_str()) {
                bail!("the stored file's SHA-256 differs from the file's");
            }
            format!("{space}:{path}")
        }
    };
    let _ = std::fs::remove_file(&state_file);
    eprintln!("{name}: uploaded ({})", human(size));
    Ok(line)
}

/// Where an upload stands on the server.
struct Status {
    offset: u64,
    length: Option<u64>,
    attachment_id: Option<i64>,
}

fn header_u64(r: &Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

fn status_of(r: &Response) -> anyhow::Result<Status> {
    Ok(Status {
        offset: header_u64(r, "upload-offset")
            .ok_or_else(|| anyhow!("the server's answer has no Upload-Offset"))?,
        length: header_u64(r, "upload-length"),
        attachment_id: header_u64(r, "hangar-attachment-id").map(|n| n as i64),
    })
}

/// `HEAD` on an upload: its status, or none when the server does not know it (any more).
async fn head(session: &Session, location: &str) -> anyhow::Result<Option<Status>> {
    let r = session
        .request(Method::HEAD, location)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .map_err(transport)?;
    match r.status() {
        s if s.is_success() => Ok(Some(status_of(&r)?)),
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
        _ => Err(error_of(r).await),
    }
}

/// `POST /api/v1/tus`: a new upload, no bytes yet.
async fn create(
    session: &Session,
    name: &str,
    size: u64,
    sha256: &str,
    target: Option<&str>,
) -> anyhow::Result<State> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let filetype = mime_guess::from_path(name).first_or_octet_stream();
    let mut metadata = format!(
        "filename {},filetype {},sha256 {}",
        b64(name),
        b64(filetype.essence_str()),
        b64(sha256)
    );
    if let Some(target) = target {
        metadata.push_str(&format!(",target {}", b64(target)));
    }
    let r = session
        .post("/api/v1/tus")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size)
        .header("upload-metadata", metadata)
        .send()
        .await
        .map_err(transport)?;
    if r.status() != StatusCode::CREATED {
        return Err(error_of(r).await);
    }
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the server's answer has no Location"))?;
    // `Location` is under the server's public URL, which may not be the address this client uses
    // (an internal name, a tunnel): the upload's id is taken from it, and the token only ever goes
    // to the server the login names.
    let id = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| anyhow!("the server's Location `{location}` names no upload"))?;
    let location = session.url(&format!("/api/v1/tus/{id}"));
    Ok(State {
        location,
        sha256: sha256.to_string(),
    })
}

/// Sends the rest of the file, chunk by chunk, from the server's offset. A chunk that fails is
/// sent again (a few times in a row at most) from wherever the server says it stands.
async fn send(
    session: &Session,
    file: &Path,
    size: u64,
    state: &State,
    status: &mut Status,
    progress: &Progress,
) -> anyhow::Result<()> {
    let chunk = chunk_size();
    let mut reader = std::fs::File::open(file)?;
    let mut failures = 0u32;
    let mut busy = 0u32;
    while status.offset < size {
        let len = chunk.min(size - status.offset);
        reader.seek(SeekFrom::Start(status.offset))?;
        let mut buf = vec![0u8; len as usize];
        reader
            .read_exact(&mut buf)
            .with_context(|| format!("cannot read {} (did it change?)", file.display()))?;
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&buf));
        let result = session
            .request(Method::PATCH, &state.location)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", status.offset)
            .header("content-type", "application/offset+octet-stream")
            .header("content-length", len)
            .header("upload-checksum", format!("sha256 {digest}"))
            .body(counted(buf, progress.clone()))
            .send()
            .await;
        let retry = match result {
            Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                let offset = header_u64(&r, "upload-offset").unwrap_or(status.offset + len);
                progress.set(offset);
                status.offset = offset;
                failures = 0;
                continue;
            }
            // Another request still holds the upload (a killed run's, until the server notices,
            // or a last chunk still being stored): wait for it, up to ten minutes.
            Ok(r) if r.status().as_u16() == 423 && busy < 300 => {
                busy += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Some(now) = head(session, &state.location).await? {
                    status.offset = now.offset;
                }
                progress.set(status.offset);
                continue;
            }
            // Another offset on the server, or a chunk damaged on the way: ask and go on.
            Ok(r) if matches!(r.status().as_u16(), 409 | 423 | 460 | 502 | 503 | 504) => {
                error_of(r).await
            }
            Ok(r) => return Err(error_of(r).await),
            Err(e) => transport(e),
        };
        failures += 1;
        if failures > 5 {
            return Err(retry.context(
                "giving up after 5 failed chunks in a row; run the same command again to continue",
            ));
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
        let now = head(session, &state.location)
            .await?
            .ok_or_else(|| anyhow!("the upload is gone from the server"))?;
        progress.set(now.offset);
        status.offset = now.offset;
    }
    Ok(())
}

/// A chunk as a request body that moves the progress as its pieces are handed to the connection
/// (the server's `Upload-Offset` corrects it afterwards).
fn counted(buf: Vec<u8>, progress: Progress) -> reqwest::Body {
    const PIECE: usize = 256 * 1024;
    let buf = bytes::Bytes::from(buf);
    let pieces: Vec<bytes::Bytes> = (0..buf.len())
        .step_by(PIECE)
        .map(|at| buf.slice(at..(at + PIECE).min(buf.len())))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces.into_iter().map(
        move |piece| {
            progress.inc(piece.len() as u64);
            Ok::<_, std::io::Error>(piece)
        },
    )))
}

/// Waits until the attachment is ready; fails on a checksum mismatch or a failed upload.
async fn wait_ready(session: &Session, id: i64, sha256: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        let meta = session
            .get_json(&format!("/api/v1/attachments/{id}"))
            .await?;
        match meta["attachmentState"].as_str() {
            Some("ReadyForDownloadFromServerToClient") => {
                if meta["fileChecksum"].as_str() != Some(sha256) {
                    bail!("attachment {id}: the server's SHA-256 differs from the file's");
                }
                return Ok(());
            }
            Some("ChecksumVerificationOnServerSideInProgress")
            | Some("UploadFromClientToServerInProgress") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Some(other) => bail!("attachment {id} ended as {other}"),
            None => bail!("attachment {id}: the server's answer has no state"),
        }
    }
    bail!("attachment {id} was not ready after a minute")
}

/// The SHA-256 (hex) of a whole file, read in blocks.
fn hash_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// `--message M`: one multipart request with every file, streamed from disk.
async fn to_message(session: &Session, files: &[PathBuf], message: &str) -> anyhow::Result<()> {
    let id: i64 = message
        .strip_prefix("id:")
        .unwrap_or(message)
        .parse()
        .map_err(|_| anyhow!("--message: `{message}` is not a message id"))?;
    let mut form = reqwest::multipart::Form::new();
    for file in files {
        let name = base_name(file)?;
        let handle = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let len = handle.metadata().await?.len();
        let part = reqwest::multipart::Part::stream_with_length(handle, len)
            .file_name(name.clone())
            .mime_str(
                mime_guess::from_path(&name)
                    .first_or_octet_stream()
                    .essence_str(),
            )?;
        form = form.part("files", part);
    }
    let r = session
        .post(&format!("/api/v1/messages/{id}/attachments"))
        .multipart(form)
        .send()
        .await
        .map_err(transport)?;
    let body = json_or_error(r).await?;
    let attachments = body["attachments"]
        .as_array()
        .ok_or_else(|| anyhow!("the server's answer lists no attachments"))?;
    for a in attachments {
        println!("{}", a["attachmentId"]);
    }
    eprintln!("{} file(s) added to message {id}", attachments.len());
    Ok(())
}
