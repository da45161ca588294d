//! Hears the changes other nodes announce (`LISTEN`) and forgets what they made stale. The read
//! caches are used only while this listener is connected: a notification missed while it was not
//! would leave an entry stale, so losing the connection empties and stops the caches, and listening
//! again empties them before they are used again.
//!
//! A change is in effect on every node before the request that made it is answered: each listener
//! that applies another node's announcement acknowledges it on the same channel, and the node that
//! made the change waits (at most `ECHO_WAIT`) until every listener connected when it committed has
//! applied it (its own included).

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

/// The `application_name` of the listeners' connections, by which a committing node counts them.
pub(crate) const LISTENER_NAME: &str = "hangar cache listener";

/// The longest a change waits for every listener's acknowledgement before answering anyway (a node
/// stopped without closing its connection is counted until PostgreSQL notices it is gone).
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// What starts an acknowledgement's payload (`!NODE.SEQUENCE`, hex): no invalidation begins so.
const ACK: char = '!';

/// The payload announcing `changes`, signed with `echo`.
pub(crate) fn payload(changes: &[Invalidation], echo: &Echo) -> String {
    let changes: Vec<String> = changes.iter().map(Invalidation::encode).collect();
    format!("{}@{:x}.{:x}", changes.join(","), echo.node, echo.seq)
}

/// This process's announcements not yet applied by every listener.
pub(crate) struct Echoes {
    node: u64,
    next: AtomicU64,
    /// Per announcement: how many listeners have still to apply it, and whom to wake then.
    waiting: Mutex<HashMap<u64, (usize, oneshot::Sender<()>)>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (usize, oneshot::Sender<()>)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An announcement that `listeners` listeners (this node's included) are to apply.
    pub(crate) fn expect(self: &Arc<Self>, listeners: usize) -> Echo {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, heard) = oneshot::channel();
        self.lock().insert(seq, (listeners.max(1), sender));
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

    /// One listener (this node's, or another's acknowledgement) applied announcement `seq` of
    /// `node`.
    fn heard(&self, node: u64, seq: u64) {
        if node != self.node {
            return;
        }
        let mut waiting = self.lock();
        if let Some((left, _)) = waiting.get_mut(&seq) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                if let Some((_, sender)) = waiting.remove(&seq) {
                    let _ = sender.send(());
                }
            }
        }
    }

    /// Waits (at most `ECHO_WAIT`) until every listener counted for `echo` has applied it; not at
    /// all while the caches are unused (this node hears nothing then).
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
        .connect_lazy_with(options.application_name(LISTENER_NAME));
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
                        Ok(Some(note)) => {
                            if let Some(ack) = apply(&cache, &echoes, note.payload()) {
                                acknowledge(&mut listener, &ack).await;
                            }
                        }
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

/// Tells the node that announced a change that this one has applied it. A failure only makes that
/// node wait its `ECHO_WAIT`.
async fn acknowledge(listener: &mut PgListener, ack: &str) {
    let sent = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(ack)
        .execute(&mut *listener)
        .await;
    if let Err(e) = sent {
        tracing::warn!("cannot acknowledge another node's change: {e}");
    }
}

/// Applies one notification: another node's announcement (answers the acknowledgement to send),
/// this node's own (heard back), or an acknowledgement.
fn apply(cache: &ReadCache, echoes: &Echoes, payload: &str) -> Option<String> {
    if let Some(ack) = payload.strip_prefix(ACK) {
        if let Some((node, seq)) = sender_of(ack) {
            echoes.heard(node, seq);
        }
        return None;
    }
    let (changes, sender) = payload.rsplit_once('@').unwrap_or((payload, ""));
    for text in changes.split(',') {
        match Invalidation::decode(text) {
            Some(change) => cache.invalidate(change),
            // From a newer node that names something this one does not know: forget everything.
            None => cache.enable(),
        }
    }
    let (node, seq) = sender_of(sender)?;
    if node == echoes.node {
        echoes.heard(node, seq);
        None
    } else {
        Some(format!("{ACK}{sender}"))
    }
}

/// `NODE.SEQUENCE` (hex) read back.
fn sender_of(text: &str) -> Option<(u64, u64)> {
    let (node, seq) = text.split_once('.')?;
    Some((
        u64::from_str_radix(node, 16).ok()?,
        u64::from_str_radix(seq, 16).ok()?,
    ))
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
        let echo = echoes.expect(1);
        let text = payload(&[Invalidation::Callers, Invalidation::Attachment(1)], &echo);
        assert_eq!(
            apply(&cache, &echoes, &text),
            None,
            "its own: no acknowledgement"
        );
        assert!(cache.reader(1, 2, 0).is_err());
        // Heard already: no waiting.
        tokio::time::timeout(Duration::from_millis(100), echoes.wait(echo, &cache))
            .await
            .expect("the echo was heard");
        assert!(echoes.lock().is_empty());
        // Another node's announcement wakes nobody here, and a dropped echo leaves nothing.
        let other = Arc::new(Echoes::new());
        let theirs = other.expect(1);
        let mine = echoes.expect(1);
        let ack = apply(&cache, &echoes, &payload(&[Invalidation::Readers], &theirs));
        assert_eq!(ack, Some(format!("!{:x}.{:x}", other.node, theirs.seq)));
        assert_eq!(echoes.lock().len(), 1);
        drop(mine);
        assert!(echoes.lock().is_empty());
    }

    #[tokio::test]
    async fn a_change_waits_until_every_listener_applied_it() {
        let cache = ReadCache::new(CacheLimits::default());
        let (here, there) = (Arc::new(Echoes::new()), Arc::new(Echoes::new()));
        let there_cache = ReadCache::new(CacheLimits::default());
        let t = there_cache.reader(1, 2, 0).unwrap_err();
        there_cache.store_reader(t, 1, 2, 0);
        // Two listeners: this node's and the other's.
        let mut echo = here.expect(2);
        let text = payload(&[Invalidation::Attachment(1)], &echo);
        assert_eq!(apply(&cache, &here, &text), None);
        assert!(
            echo.heard.try_recv().is_err(),
            "its own listener is not enough"
        );
        let ack = apply(&there_cache, &there, &text).expect("the other node acknowledges");
        assert!(there_cache.reader(1, 2, 0).is_err(), "applied there");
        // Acknowledgements are not acknowledged, and one for another node wakes nobody.
        assert_eq!(apply(&there_cache, &there, &ack), None);
        assert!(
            echo.heard.try_recv().is_err(),
            "heard there, it wakes nobody"
        );
        assert_eq!(apply(&cache, &here, &ack), None);
        tokio::time::timeout(Duration::from_millis(100), here.wait(echo, &cache))
            .await
            .expect("every listener applied it");
        assert!(here.lock().is_empty());
    }
}
