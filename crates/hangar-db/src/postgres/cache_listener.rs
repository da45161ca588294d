//! Hears the changes other nodes announce (`LISTEN`) and forgets what they made stale. The read
//! caches are used only while this listener is connected: a notification missed while it was not
//! would leave an entry stale, so losing the connection empties and stops the caches, and listening
//! again empties them before they are used again.

use hangar_core::read_cache::{Invalidation, ReadCache};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The notification channel every node listens on. A payload is the changes of one transaction
/// (`Invalidation::encode`, comma-separated), `@`, and who sent it (`NODE.SEQUENCE`, hex).
pub(crate) const CHANNEL: &str = "hangar_read_cache";

/// The longest a change waits to hear its own announcement back before answering anyway.
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// The payload announcing `changes`, signed with `echo`.
pub(crate) fn payload(changes: &[Invalidation], echo: &Echo) -> String {
    let changes: Vec<String> = changes.iter().map(Invalidation::encode).collect();
    format!("{}@{:x}.{:x}", changes.join(","), echo.node, echo.seq)
}

/// This process's announcements not heard back yet.
pub(crate) struct Echoes {
    node: u64,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

/// One announcement to hear back.
pub(crate) struct Echo {
    node: u64,
    seq: u64,
    heard: oneshot::Receiver<()>,
    echoes: Arc<Echoes>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.echoes.forget(self.seq);
    }
}

impl Echoes {
    pub(crate) fn new() -> Self {
        Self {
            node: rand::random(),
            next: AtomicU64::new(0),
            waiting: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn expect(self: &Arc<Self>) -> Echo {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, heard) = oneshot::channel();
        self.lock().insert(seq, sender);
        Echo {
            node: self.node,
            seq,
            heard,
            echoes: self.clone(),
        }
    }

    fn forget(&self, seq: u64) {
        self.lock().remove(&seq);
    }

    fn heard(&self, node: u64, seq: u64) {
        if node == self.node {
            if let Some(sender) = self.lock().remove(&seq) {
                let _ = sender.send(());
            }
        }
    }

    /// Waits (at most `ECHO_WAIT`) until this node's listener hears `echo`; not at all while the
    /// caches are unused (no listener to hear it).
    pub(crate) async fn wait(&self, mut echo: Echo, cache: &ReadCache) {
        if cache.is_enabled() {
            let _ = tokio::time::timeout(ECHO_WAIT, &mut echo.heard).await;
        }
    }
}

/// Listens until the process ends, connecting again a second after every loss.
pub(crate) async fn run(options: PgConnectOptions, cache: Arc<ReadCache>, echoes: Arc<Echoes>) {
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
                        Ok(Some(note)) => apply(&cache, &echoes, note.payload()),
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

fn apply(cache: &ReadCache, echoes: &Echoes, payload: &str) {
    let (changes, sender) = payload.rsplit_once('@').unwrap_or((payload, ""));
    for text in changes.split(',') {
        match Invalidation::decode(text) {
            Some(change) => cache.invalidate(change),
            // From a newer node that names something this one does not know: forget everything.
            None => cache.enable(),
        }
    }
    if let Some((node, seq)) = sender.split_once('.') {
        if let (Ok(node), Ok(seq)) = (u64::from_str_radix(node, 16), u64::from_str_radix(seq, 16)) {
            echoes.heard(node, seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_core::read_cache::CacheLimits;

    #[tokio::test]
    async fn an_announcement_is_applied_and_heard_back_by_its_sender() {
        let cache = ReadCache::new(CacheLimits::default());
        let echoes = Arc::new(Echoes::new());
        let t = cache.reader(1, 2, 0).unwrap_err();
        cache.store_reader(t, 1, 2, 0);
        let echo = echoes.expect();
        let text = payload(&[Invalidation::Callers, Invalidation::Attachment(1)], &echo);
        apply(&cache, &echoes, &text);
        assert!(cache.reader(1, 2, 0).is_err());
        // Heard already: no waiting.
        tokio::time::timeout(Duration::from_millis(100), echoes.wait(echo, &cache))
            .await
            .expect("the echo was heard");
        assert!(echoes.lock().is_empty());
        // Another node's announcement wakes nobody here, and a dropped echo leaves nothing.
        let other = Arc::new(Echoes::new());
        let theirs = other.expect();
        let mine = echoes.expect();
        apply(&cache, &echoes, &payload(&[Invalidation::Readers], &theirs));
        assert_eq!(echoes.lock().len(), 1);
        drop(mine);
        assert!(echoes.lock().is_empty());
    }
}
