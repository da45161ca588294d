//! Hears the changes other nodes announce (`LISTEN`) and forgets what they made stale. The read
//! caches are used only while this listener is connected: a notification missed while it was not
//! would leave an entry stale, so losing the connection empties and stops the caches, and listening
//! again empties them before they are used again.

use hangar_core::read_cache::{Invalidation, ReadCache};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;

/// The notification channel every node listens on; a payload is one `Invalidation::encode`.
pub(crate) const CHANNEL: &str = "hangar_read_cache";

/// Listens until the process ends, connecting again a second after every loss.
pub(crate) async fn run(options: PgConnectOptions, cache: Arc<ReadCache>) {
    // A pool of its own: the listener keeps its connection for as long as it lives.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options);
    let mut connected_once = false;
    loop {
        match listen(&pool).await {
            Ok(mut listener) => {
                // Whatever was announced before LISTEN took effect is not known: start empty.
                cache.enable();
                if connected_once {
                    tracing::info!("listening for other nodes' changes again: read caches in use");
                }
                connected_once = true;
                loop {
                    match listener.try_recv().await {
                        Ok(Some(note)) => apply(&cache, note.payload()),
                        Ok(None) => {
                            cache.disable();
                            tracing::warn!(
                                "lost the connection that hears other nodes' changes: read caches \
                                 unused until it is back"
                            );
                            break;
                        }
                        Err(e) => {
                            cache.disable();
                            tracing::warn!(
                                "cannot hear other nodes' changes ({e}): read caches unused until \
                                 the listener is back"
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                cache.disable();
                tracing::warn!("cannot listen for other nodes' changes ({e}): retrying in 1 s");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported at once (`Ok(None)`), not silently replaced: notifications
    // sent meanwhile are lost, so the caches must be emptied first.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

fn apply(cache: &ReadCache, payload: &str) {
    match Invalidation::decode(payload) {
        Some(change) => cache.invalidate(change),
        // From a newer node that names something this one does not know: forget everything.
        None => cache.enable(),
    }
}
