//! Video posters: the first frame of a video, as PNG, from `ffmpeg` when it is on the PATH.

use crate::MediaError;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Most bytes of PNG read from `ffmpeg` (a 8K frame is well under this).
const MAX_FRAME_BYTES: u64 = 128 * 1024 * 1024;

/// Whether an `ffmpeg` executable is on the PATH (looked up once per process).
pub fn ffmpeg_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                std::fs::metadata(dir.join("ffmpeg")).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                })
            })
        })
    })
}

/// The first frame of the video file at `path`, as PNG bytes, with the video's rotation applied
/// (`ffmpeg` does that by default). Killed after `timeout`.
pub async fn poster_frame(path: &Path, timeout: Duration) -> Result<Vec<u8>, MediaError> {
    if !ffmpeg_available() {
        return Err(MediaError::Video("ffmpeg is not installed".into()));
    }
    let mut child = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-an",
            "-f",
            "image2pipe",
            "-vcodec",
            "png",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| MediaError::Video(format!("cannot run ffmpeg: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| MediaError::Video("ffmpeg has no output".into()))?;
    let work = async {
        let mut frame = Vec::new();
        (&mut stdout)
            .take(MAX_FRAME_BYTES)
            .read_to_end(&mut frame)
            .await
            .map_err(|e| MediaError::Video(format!("reading ffmpeg's output: {e}")))?;
        let status = child
            .wait()
            .await
            .map_err(|e| MediaError::Video(format!("waiting for ffmpeg: {e}")))?;
        Ok::<_, MediaError>((status, frame))
    };
    // On a time-out the child is dropped, and so killed (`kill_on_drop`).
    let (status, frame) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| MediaError::Video(format!("ffmpeg took longer than {timeout:?}")))??;
    if !status.success() || frame.is_empty() {
        return Err(MediaError::Video(format!(
            "ffmpeg found no frame ({status})"
        )));
    }
    Ok(frame)
}
