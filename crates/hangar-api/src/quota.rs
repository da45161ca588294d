//! Space quotas under concurrency: every upload into a space holds a reservation in the database,
//! checked atomically against the quota together with the space's usage and every other
//! reservation. A reservation starts at the declared size (or zero) and grows while bytes arrive;
//! bytes that would not fit are refused before they are written.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::StatusCode;
use futures_util::StreamExt;
use hangar_blob::ByteStream;
use hangar_core::store::StorageStore;
use std::sync::Arc;

/// How much a growing reservation asks for beyond the bytes received, to spare database writes.
const GROW_STEP: u64 = 256 * 1024;

/// The error a metered stream fails with when the quota is exhausted.
#[derive(Debug)]
struct QuotaExceeded;

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the space's quota is exhausted")
    }
}

impl std::error::Error for QuotaExceeded {}

pub fn is_quota_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<QuotaExceeded>())
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
    id: i64,
    reserved: u64,
    persistent: bool,
    done: bool,
}

impl Reservation {
    /// Reserves `bytes` in the space, or refuses with 413.
    pub async fn take(state: &AppState, space_id: &str, bytes: u64) -> ApiResult<Reservation> {
        let id = state
            .storage
            .reserve(space_id, bytes as i64, None, 0)
            .await?
            .ok_or_else(quota_error)?;
        Ok(Reservation {
            store: state.storage.clone(),
            id,
            reserved: bytes,
            persistent: false,
            done: false,
        })
    }

    /// The reservation a two-stage upload made at its first stage.
    pub fn existing(state: &AppState, id: i64, bytes: u64) -> Reservation {
        Reservation {
            store: state.storage.clone(),
            id,
            reserved: bytes,
            persistent: true,
            done: false,
        }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// The file was recorded: the reservation is gone with that transaction.
    pub fn consumed(mut self) {
        self.done = true;
    }

    /// Passes `stream` through, growing the reservation before any byte beyond it is let through.
    pub fn meter(&self, stream: ByteStream, max: u64) -> ByteStream {
        struct Meter {
            stream: ByteStream,
            store: Arc<dyn StorageStore>,
            id: i64,
            reserved: u64,
            received: u64,
            max: u64,
        }
        let meter = Meter {
            stream,
            store: self.store.clone(),
            id: self.id,
            reserved: self.reserved,
            received: 0,
            max,
        };
        futures_util::stream::unfold(Some(meter), |state| async move {
            let mut m = state?;
            let chunk = match m.stream.next().await? {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), None)),
            };
            m.received += chunk.len() as u64;
            if m.received > m.reserved {
                let generous = m.received.max((m.reserved + GROW_STEP).min(m.max));
                let grown = match m.store.resize_reservation(m.id, generous as i64).await {
                    Ok(true) => Some(generous),
                    Ok(false) if generous > m.received => {
                        match m.store.resize_reservation(m.id, m.received as i64).await {
                            Ok(true) => Some(m.received),
                            Ok(false) => None,
                            Err(e) => {
                                return Some((Err(std::io::Error::other(e.to_string())), None))
                            }
                        }
                    }
                    Ok(false) => None,
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                };
                match grown {
                    Some(bytes) => m.reserved = bytes,
                    None => return Some((Err(std::io::Error::other(QuotaExceeded)), None)),
                }
            }
            Some((Ok(chunk), Some(m)))
        })
        .boxed()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done || self.persistent {
            return;
        }
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.release_reservation(id).await {
                    tracing::warn!("cannot release quota reservation {id}: {e}");
                }
            });
        }
    }
}
