//! Space quotas under concurrency: every upload into a space with a quota holds a reservation in the
//! database, checked atomically against the quota together with the space's usage and every other
//! reservation. A reservation starts at the declared size (or zero) and grows while bytes arrive; bytes
//! that would not fit are refused before they are written. Spaces without a quota take no reservation
//! at all, so their uploads cost no extra database writes.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::StatusCode;
use futures_util::StreamExt;
use hangar_blob::ByteStream;
use hangar_core::store::StorageStore;
use std::sync::Arc;

/// Smallest growth of a reservation, to spare database writes on small chunks.
const MIN_GROWTH: u64 = 1 << 20;
/// A reservation is a lease in the database (it lapses by itself if this process dies); an upload
/// renews it this often while its bytes arrive.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a metered stream stopped.
#[derive(Debug)]
enum MeterStop {
    /// The space's quota has no room for more.
    Quota,
    /// More bytes arrived than a two-stage upload declared.
    OverDeclared,
}

impl std::fmt::Display for MeterStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MeterStop::Quota => "the space's quota is exhausted",
            MeterStop::OverDeclared => "more bytes arrived than were declared",
        })
    }
}

impl std::error::Error for MeterStop {}

/// The API error for a metered stream's failure, if it was the meter that stopped it.
pub fn meter_error(e: &std::io::Error) -> Option<ApiError> {
    match e.get_ref()?.downcast_ref::<MeterStop>()? {
        MeterStop::Quota => Some(quota_error()),
        MeterStop::OverDeclared => Some(ApiError::bad_request(
            "size-mismatch",
            "more bytes arrived than were declared",
        )),
    }
}

/// The largest attachment `caller` may upload now: the per-file limit, or less when the member's
/// attachment quota (`--user-quota`) has less room left; 413 when it has none. Only a first, early
/// refusal: the store checks the quota again, atomically, when the attachment is recorded.
pub async fn attachment_room(state: &AppState, caller: &Caller) -> ApiResult<u64> {
    let max = state.settings.max_file_size;
    let Some(quota) = state.settings.user_quota else {
        return Ok(max);
    };
    let used = state.attachments.member_usage(caller.id()).await?;
    let room = (quota - used).max(0) as u64;
    if room == 0 {
        return Err(user_quota_error(quota, used));
    }
    Ok(room.min(max))
}

/// 413 for an upload that does not fit the member's attachment quota.
pub fn user_quota_error(quota: i64, used: i64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "limits-reached",
        "your attachment quota does not leave room for this file",
    )
    .with("quotaBytes", quota)
    .with("usedBytes", used)
}

pub fn quota_error() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "limits-reached",
        "the space's quota does not leave room for this file",
    )
}

/// A reservation held for one upload; released when dropped unless the file was recorded (which
/// consumes it in the same transaction) or it belongs to a two-stage upload (which outlives requests).
pub struct Reservation {
    store: Arc<dyn StorageStore>,
    /// None when the space has no quota: nothing to reserve.
    id: Option<i64>,
    reserved: u64,
    /// Bytes the upload may use without reserving: the size of the file it replaces.
    credit: u64,
    /// A two-stage upload's reservation is exactly its declared size and never grows.
    growable: bool,
    done: bool,
}

impl Reservation {
    /// Reserves room for `bytes` (beyond the `credit` of the file being replaced), or refuses with 413.
    pub async fn take(
        state: &AppState,
        space_id: &str,
        bytes: u64,
        credit: u64,
    ) -> ApiResult<Reservation> {
        let usage = state
            .storage
            .usage(space_id)
            .await?
            .ok_or_else(|| ApiError::not_found("space"))?;
        let mut reservation = Reservation {
            store: state.storage.clone(),
            id: None,
            reserved: 0,
            credit,
            growable: true,
            done: false,
        };
        if usage.quota_bytes.is_some() {
            let wanted = bytes.saturating_sub(credit);
            let id = state
                .storage
                .reserve(space_id, wanted as i64, None, 0)
                .await?
                .ok_or_else(quota_error)?;
            reservation.id = Some(id);
            reservation.reserved = wanted;
        }
        Ok(reservation)
    }

    /// The reservation a two-stage upload made at its first stage.
    pub fn existing(state: &AppState, id: i64, bytes: u64) -> Reservation {
        Reservation {
            store: state.storage.clone(),
            id: Some(id),
            reserved: bytes,
            credit: 0,
            growable: false,
            done: true, // it belongs to the upload, not to this request
        }
    }

    pub fn id(&self) -> Option<i64> {
        self.id
    }

    /// Gives the reservation back before going on (dropping it does so in the background, which a
    /// request that reserves again at once could overtake).
    pub async fn release(mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = self.store.release_reservation(id).await {
                tracing::warn!("cannot release quota reservation {id} (its lease will lapse): {e}");
            }
        }
    }

    /// The file was recorded: the reservation is gone with that transaction.
    pub fn consumed(mut self) {
        self.done = true;
    }

    /// Passes `stream` through, growing the reservation before any byte beyond it is let through.
    pub fn meter(&self, stream: ByteStream, max: u64) -> ByteStream {
        self.meter_from(stream, max, 0)
    }

    /// `meter` for bytes that follow `already` bytes of the same file (a resumable upload's next
    /// chunk): the reservation covers the whole file so far.
    pub fn meter_from(&self, stream: ByteStream, max: u64, already: u64) -> ByteStream {
        let Some(id) = self.id else {
            return stream; // no quota: nothing to count against
        };
        struct Meter {
            stream: ByteStream,
            store: Arc<dyn StorageStore>,
            id: i64,
            reserved: u64,
            credit: u64,
            received: u64,
            max: u64,
            growable: bool,
            renewed: std::time::Instant,
        }
        let meter = Meter {
            stream,
            store: self.store.clone(),
            id,
            reserved: self.reserved,
            credit: self.credit,
            received: already,
            max,
            growable: self.growable,
            renewed: std::time::Instant::now(),
        };
        futures_util::stream::unfold(Some(meter), |state| async move {
            let mut m = state?;
            let chunk = match m.stream.next().await? {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), None)),
            };
            m.received += chunk.len() as u64;
            let needed = m.received.saturating_sub(m.credit);
            if needed > m.reserved {
                if !m.growable {
                    return Some((Err(std::io::Error::other(MeterStop::OverDeclared)), None));
                }
                // Ask for plenty (doubling), fall back to exactly what is needed near the quota.
                let cap = m.max.saturating_sub(m.credit).max(needed);
                let generous = needed
                    .max(m.reserved * 2)
                    .max(m.reserved + MIN_GROWTH)
                    .min(cap);
                let mut grown = None;
                for want in [generous, needed] {
                    match m.store.resize_reservation(m.id, want as i64).await {
                        Ok(true) => {
                            grown = Some(want);
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                    }
                    if want == needed {
                        break;
                    }
                }
                match grown {
                    Some(bytes) => {
                        m.reserved = bytes;
                        m.renewed = std::time::Instant::now(); // growing renews the lease too
                    }
                    None => return Some((Err(std::io::Error::other(MeterStop::Quota)), None)),
                }
            }
            if m.renewed.elapsed() >= RENEW_EVERY {
                m.renewed = std::time::Instant::now();
                if let Err(e) = m.store.renew_reservation(m.id).await {
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            }
            Some((Ok(chunk), Some(m)))
        })
        .boxed()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(id) = self.id.filter(|_| !self.done) else {
            return;
        };
        let store = self.store.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.release_reservation(id).await {
                    tracing::warn!("cannot release quota reservation {id}: {e}");
                }
            });
        }
    }
}
