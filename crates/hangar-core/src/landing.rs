//! The promise that bytes placed under a key become durable: a store that answers an upload with
//! its key before the bytes are on the disk (a pack still being flushed) hands out a `Landing`,
//! and resolves it once they are, or are lost. The upload's record runs its statements meanwhile
//! and commits nothing before its landings are resolved (SPEC §10: the bytes durable, then the
//! record), so that the record's work overlaps the disk's flush instead of following it.
//!
//! Written here rather than taken from a crate: the waiter is either a task (async) or the SQLite
//! writer's thread (blocking), and no channel in tokio or std waits both ways.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tokio::sync::Notify;

/// How a landing ended: `Err` names why the bytes are not durable.
pub type Landed = Result<(), String>;

struct State {
    outcome: Mutex<Option<Landed>>,
    /// Wakes the threads waiting (`Landing::wait_blocking`).
    threads: Condvar,
    /// Wakes the tasks waiting (`Landing::wait`).
    tasks: Notify,
}

impl State {
    fn outcome(&self) -> MutexGuard<'_, Option<Landed>> {
        // A poisoned lock only means a waiter panicked while holding it; the outcome is intact.
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A placement's durability, to wait for. Cheap to clone: every upload of one pack shares it.
#[derive(Clone)]
pub struct Landing(Arc<State>);

/// The store's side of a `Landing`: resolves it once. Dropped unresolved (the store stopped), it
/// resolves it as failed, so that nobody waits for ever.
pub struct Lander(Option<Arc<State>>);

impl Landing {
    /// A new landing, and the lander that resolves it.
    pub fn pending() -> (Landing, Lander) {
        let state = Arc::new(State {
            outcome: Mutex::new(None),
            threads: Condvar::new(),
            tasks: Notify::new(),
        });
        (Landing(state.clone()), Lander(Some(state)))
    }

    /// Bytes durable already.
    pub fn landed() -> Landing {
        let (landing, lander) = Landing::pending();
        lander.resolve(Ok(()));
        landing
    }

    /// The outcome, if known yet.
    pub fn outcome(&self) -> Option<Landed> {
        self.0.outcome().clone()
    }

    /// Waits for the outcome on a thread that may block.
    pub fn wait_blocking(&self) -> Landed {
        let mut outcome = self.0.outcome();
        loop {
            if let Some(done) = outcome.as_ref() {
                return done.clone();
            }
            outcome = self
                .0
                .threads
                .wait(outcome)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits for the outcome in a task.
    pub async fn wait(&self) -> Landed {
        loop {
            // Registered before the look, so that a resolution in between still wakes it.
            let notified = self.0.tasks.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(done) = self.outcome() {
                return done;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for Landing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome() {
            None => f.write_str("Landing(pending)"),
            Some(Ok(())) => f.write_str("Landing(landed)"),
            Some(Err(why)) => write!(f, "Landing(lost: {why})"),
        }
    }
}

impl Lander {
    /// Resolves the landing (its waiters wake).
    pub fn resolve(mut self, outcome: Landed) {
        if let Some(state) = self.0.take() {
            settle(&state, outcome);
        }
    }
}

impl Drop for Lander {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            settle(
                &state,
                Err("the store stopped before the bytes were durable".into()),
            );
        }
    }
}

fn settle(state: &State, outcome: Landed) {
    *state.outcome() = Some(outcome);
    state.threads.notify_all();
    state.tasks.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_on_threads_and_tasks_wake_when_it_is_resolved() {
        let (landing, lander) = Landing::pending();
        assert!(landing.outcome().is_none());
        let on_thread = {
            let landing = landing.clone();
            std::thread::spawn(move || landing.wait_blocking())
        };
        let in_task = tokio::spawn({
            let landing = landing.clone();
            async move { landing.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!on_thread.is_finished() && !in_task.is_finished());
        lander.resolve(Ok(()));
        assert_eq!(on_thread.join().unwrap(), Ok(()));
        assert_eq!(in_task.await.unwrap(), Ok(()));
        assert_eq!(landing.wait().await, Ok(()));
        assert_eq!(Landing::landed().wait_blocking(), Ok(()));
    }

    #[tokio::test]
    async fn a_lander_dropped_unresolved_fails_its_waiters() {
        let (landing, lander) = Landing::pending();
        let in_task = tokio::spawn({
            let landing = landing.clone();
            async move { landing.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(lander);
        assert!(in_task.await.unwrap().is_err());
        assert!(landing.wait_blocking().is_err());
        let (failed, lander) = Landing::pending();
        lander.resolve(Err("flush failed".into()));
        assert_eq!(failed.wait().await, Err("flush failed".to_string()));
    }
}
