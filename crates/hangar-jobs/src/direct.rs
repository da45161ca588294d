//! The job that finishes two-stage uploads sent straight to the object store: it asks the HTTP
//! layer's `DirectUploads` to look for the object, and runs again a little later until the upload
//! is recorded, refused or expired.

use crate::{DirectUpload, Job, JobContext, JobError};
use hangar_core::jobs::FinishDirectUpload;

/// How often a waiting upload is looked for: the file appears within this long of its PUT.
pub const LOOK_EVERY_MS: i64 = 2_000;

#[async_trait::async_trait]
impl Job for FinishDirectUpload {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let Some(direct) = &ctx.direct_uploads else {
            return Err(JobError::Failed(
                "this node records no direct uploads".into(),
            ));
        };
        match direct.finish(&self.upload_id).await? {
            DirectUpload::Over => Ok(()),
            DirectUpload::Waiting { until } => Err(JobError::RetryAt {
                at: (hangar_core::now_ms() + LOOK_EVERY_MS).min(until),
                reason: format!("no object yet for upload {}", self.upload_id),
            }),
        }
    }
}
