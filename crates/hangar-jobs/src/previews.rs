//! Making previews (SPEC §9.3): the `make-previews` job queued with each new image or video
//! attachment, and the `Previewer` that both the job and the preview route use, so that a preview
//! asked for before the job ran is made on the spot, once, under the same limits.
//!
//! Previews are blobs like any other (content-addressed, on disk or S3, so any node serves them),
//! committed through the ingest pipeline under a pin and recorded by `PreviewStore::record_previews`,
//! which takes a reference on each. Decoding runs on a blocking thread behind a semaphore: at most
//! one image per core is in memory at once on a node.

use crate::{Job, JobContext, JobError};
use bytes::Bytes;
use futures_util::StreamExt;
use hangar_blob::{BlobError, BlobStore, Committed, Ingest, IngestError};
use hangar_core::jobs::MakePreviews;
use hangar_core::preview::{
    is_video, wants_preview, NewPreview, PreviewRecord, PreviewRecorded, PreviewSource,
};
use hangar_core::store::PreviewStore;
use hangar_media::{DecodeLimits, MediaError, Previews};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// How long `ffmpeg` may take over one poster.
const POSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes and finds previews. One per node, shared by the job runner and the HTTP handlers.
pub struct Previewer {
    blobs: Arc<dyn BlobStore>,
    ingest: Ingest,
    store: Arc<dyn PreviewStore>,
    slots: Semaphore,
    limits: DecodeLimits,
}

impl Previewer {
    pub fn new(blobs: Arc<dyn BlobStore>, ingest: Ingest, store: Arc<dyn PreviewStore>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Previewer {
            blobs,
            ingest,
            store,
            slots: Semaphore::new(cores.clamp(1, 4)),
            limits: DecodeLimits::default(),
        }
    }

    /// With other decoding limits (tests, benchmarks).
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The preview of `sha256` at `size`, made now if nobody made it yet; None when the file gets
    /// no preview.
    pub async fn preview(
        &self,
        sha256: &str,
        content_type: &str,
        size: i64,
    ) -> Result<Option<PreviewRecord>, IngestError> {
        // Other files are not worth reading (a text file's type was told from its bytes too).
        if !wants_preview(content_type) {
            return Ok(None);
        }
        match self.ensure(sha256, content_type).await? {
            Some(PreviewSource::Ready { .. }) => Ok(self.store.preview(sha256, size).await?),
            _ => Ok(None),
        }
    }

    /// Makes the previews of a source unless that was done (or found impossible) before; answers
    /// what is known now (None: nothing, as for a video on a node without `ffmpeg`).
    pub async fn ensure(
        &self,
        sha256: &str,
        content_type: &str,
    ) -> Result<Option<PreviewSource>, IngestError> {
        if let Some(known) = self.store.preview_source(sha256).await? {
            return Ok(Some(known));
        }
        // The semaphore is never closed.
        let Ok(_slot) = self.slots.acquire().await else {
            return Ok(None);
        };
        // Someone may have made them while this waited.
        if let Some(known) = self.store.preview_source(sha256).await? {
            return Ok(Some(known));
        }
        let made = if is_video(content_type) {
            self.poster(sha256).await?
        } else {
            Some(self.image(sha256).await?)
        };
        match made {
            None => Ok(None),
            Some(Ok(previews)) => self.record(sha256, previews).await,
            Some(Err(e)) => {
                tracing::info!(blob = %sha256, "no preview: {e}");
                self.store.record_no_preview(sha256).await?;
                Ok(self.store.preview_source(sha256).await?)
            }
        }
    }

    /// Decodes an image file's bytes (at most `max_input` of them are read).
    async fn image(&self, sha256: &str) -> Result<Result<Previews, MediaError>, IngestError> {
        let Some(bytes) = self.read_capped(sha256).await? else {
            return Ok(Err(MediaError::TooLarge(format!(
                "more than {} bytes",
                self.limits.max_input
            ))));
        };
        let limits = self.limits;
        tokio::task::spawn_blocking(move || hangar_media::make_previews(&bytes, &limits))
            .await
            .map_err(|e| IngestError::Blob(BlobError::Io(std::io::Error::other(e))))
    }

    /// A video's first frame through `ffmpeg`; None when it is not installed.
    async fn poster(
        &self,
        sha256: &str,
    ) -> Result<Option<Result<Previews, MediaError>>, IngestError> {
        if !hangar_media::ffmpeg_available() {
            return Ok(None);
        }
        // ffmpeg seeks in the file (an MP4's index may be at its end): give it a file, not a pipe.
        let file = tempfile::NamedTempFile::new().map_err(BlobError::from)?;
        let mut out = tokio::fs::File::from_std(file.reopen().map_err(BlobError::from)?);
        let mut stream = self.blobs.read(sha256, 0, u64::MAX).await?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(BlobError::from)?)
                .await
                .map_err(BlobError::from)?;
        }
        out.flush().await.map_err(BlobError::from)?;
        drop(out);
        let frame = match hangar_media::poster_frame(file.path(), POSTER_TIMEOUT).await {
            Ok(frame) => frame,
            Err(e) => return Ok(Some(Err(e))),
        };
        let limits = self.limits;
        let made =
            tokio::task::spawn_blocking(move || hangar_media::make_previews(&frame, &limits))
                .await
                .map_err(|e| IngestError::Blob(BlobError::Io(std::io::Error::other(e))))?;
        Ok(Some(made))
    }

    /// The whole blob, or None when it is longer than the decoding limit allows.
    async fn read_capped(&self, sha256: &str) -> Result<Option<Vec<u8>>, IngestError> {
        let mut stream = self.blobs.read(sha256, 0, u64::MAX).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BlobError::from)?;
            if (bytes.len() + chunk.len()) as u64 > self.limits.max_input {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// Stores each preview as a blob and records them; a record that does not happen (the source
    /// went meanwhile, or another node was first) gives the blobs back to the collector.
    async fn record(
        &self,
        sha256: &str,
        previews: Previews,
    ) -> Result<Option<PreviewSource>, IngestError> {
        let mut committed: Vec<Committed> = Vec::new();
        let mut new = Vec::with_capacity(previews.previews.len());
        for p in previews.previews {
            let len = p.bytes.len() as u64;
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(p.bytes))]);
            let staged = match self.ingest.receive(body.boxed(), len).await {
                Ok(staged) => staged,
                Err(e) => {
                    self.ingest.release(&committed).await;
                    return Err(e.into());
                }
            };
            let c = match self.ingest.commit(staged).await {
                Ok(c) => c,
                Err(e) => {
                    self.ingest.release(&committed).await;
                    return Err(e);
                }
            };
            new.push(NewPreview {
                record: PreviewRecord {
                    size: i64::from(p.size),
                    sha256: c.sha256.clone(),
                    bytes: c.size as i64,
                    content_type: p.content_type.to_string(),
                    width: i64::from(p.width),
                    height: i64::from(p.height),
                },
                hold: Some(c.hold.clone()),
            });
            committed.push(c);
        }
        let (width, height) = (i64::from(previews.width), i64::from(previews.height));
        let outcome = self
            .ingest
            .record(&committed, || {
                self.store.record_previews(sha256, width, height, &new)
            })
            .await;
        match outcome {
            Ok(PreviewRecorded::Recorded) => {}
            Ok(PreviewRecorded::AlreadyThere | PreviewRecorded::SourceGone) => {
                self.ingest.release(&committed).await
            }
            Err(e) => {
                self.ingest.release_after(&committed, &e).await;
                return Err(e.into());
            }
        }
        Ok(self.store.preview_source(sha256).await?)
    }
}

#[async_trait::async_trait]
impl Job for MakePreviews {
    const MAX_ATTEMPTS: Option<i64> = Some(8);

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let Some(previewer) = &ctx.previews else {
            return Err(JobError::Failed("this node makes no previews".into()));
        };
        match previewer.ensure(&self.sha256, &self.content_type).await {
            Ok(_) => Ok(()),
            // The attachment was deleted and its bytes collected before the job ran.
            Err(IngestError::Blob(BlobError::NotFound)) => Ok(()),
            Err(e) => Err(JobError::Failed(e.to_string())),
        }
    }
}
