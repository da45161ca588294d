//! The end of resumable uploads left idle (SPEC §9.1): past `Upload-Expires`, the partial bytes are
//! freed and an unfinished attachment becomes `UploadFromClientToServerFailed`; a finished upload's
//! row (kept for `HEAD`) goes too.

use crate::{Job, JobContext, JobError};
use hangar_core::jobs::ExpireTusUpload;
use hangar_core::now_ms;
use hangar_core::store::{TusEnd, TusEnded};

#[async_trait::async_trait]
impl Job for ExpireTusUpload {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let now = now_ms();
        let Some(upload) = ctx.tus.tus_upload(&self.upload_id).await? else {
            // Terminated, or gone with its attachment or space: whatever bytes are left go too.
            ctx.blobs.partial_abort(&self.upload_id).await?;
            return Ok(());
        };
        // Each chunk moves the expiry (and this job); a job that still finds it ahead waits more.
        if upload.expires_utc > now {
            return Err(JobError::RetryAt {
                at: upload.expires_utc,
                reason: "the upload has not expired yet".into(),
            });
        }
        if let Some(lease) = upload.lease_until.filter(|l| *l > now) {
            return Err(JobError::RetryAt {
                at: lease,
                reason: "a request is still sending bytes to the upload".into(),
            });
        }
        // Past its expiry no request can write any more: the bytes go first, then the row, so that
        // a failure here leaves the job something to do again.
        ctx.blobs.partial_abort(&upload.id).await?;
        match ctx
            .tus
            .end_tus_upload(&upload.id, TusEnd::Expire, now)
            .await?
        {
            TusEnded::Ended(_) | TusEnded::Missing => Ok(()),
            TusEnded::Busy(at) | TusEnded::NotYet(at) => Err(JobError::RetryAt {
                at,
                reason: "the upload changed meanwhile".into(),
            }),
        }
    }
}
