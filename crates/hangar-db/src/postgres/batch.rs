//! Statements that many requests make at once, sent together: each request hands its part to a
//! `Batcher` and waits for its own answer, and the batcher sends what has gathered as one statement
//! in one transaction. PostgreSQL's cost of a small statement is mostly its own (the round trip,
//! the executor's set-up, the commit), not the rows': measured with `pgbench` (32 clients against
//! batches of 16, synchronous commits off as in the bench's PostgreSQL then; it is durable now, at
//! the same cost), a 4 KiB upload's pin and record cost PostgreSQL 365 µs of CPU one by one and
//! 64–81 µs in batches of 16.
//!
//! A batch starts as soon as a request arrives and the batcher has a statement free; while its
//! statements run, requests gather, so the batches grow with the load and a lone request waits for
//! no one (the same group commit as SQLite's writer). A batch's statement runs in a task of its own:
//! a request whose client hung up does not cut it short (see `begin` for why that matters).

use hangar_core::store::{StoreError, StoreResult};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

type Entry<T, R> = (T, oneshot::Sender<StoreResult<R>>);

/// Gathers requests of type `T` into batches for `run`, which answers one result per request, in
/// their order. The queue has no bound of its own: each entry is a request waiting for its answer,
/// and those are bounded by the server's cap on connections.
pub(crate) struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<Entry<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the batcher's task: batches of at most `max` requests, at most `statements` of them
    /// running at once. The task ends when the batcher is dropped. `run` must not hold what holds
    /// the batcher, or neither would ever be dropped.
    pub(crate) fn start<F, Fut>(max: usize, statements: usize, run: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<StoreResult<R>>> + Send + 'static,
    {
        let (queue, mut arrivals) = mpsc::unbounded_channel::<Entry<T, R>>();
        let run = Arc::new(run);
        let free = Arc::new(Semaphore::new(statements));
        tokio::spawn(async move {
            while let Some(first) = arrivals.recv().await {
                // Waiting for a free statement is what lets the next batch gather.
                let Ok(permit) = free.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max {
                    match arrivals.try_recv() {
                        Ok(entry) => batch.push(entry),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let results = run(items).await;
                    // A request left without a result (a `run` answering too few) is told so by
                    // its dropped sender.
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                    drop(permit);
                });
            }
        });
        Self { queue }
    }

    /// Hands `item` to the next batch and waits for its result.
    pub(crate) async fn submit(&self, item: T) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("a batch ended without answering".into()))?
    }
}

/// Runs `batch` through `together`; when that fails as a whole and the batch had more than one
/// request, runs each request alone through `together` instead, so that a request the database
/// refuses fails alone rather than taking the others with it. A database that cannot be reached
/// or whose disk is full fails them all at once.
pub(crate) async fn or_one_by_one<T, R, F, Fut>(batch: Vec<T>, together: F) -> Vec<StoreResult<R>>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<StoreResult<R>>>>,
{
    let n = batch.len();
    let e = match together(batch.clone()).await {
        Ok(results) => return results,
        Err(e) => e,
    };
    let shared = |e: &StoreError| match e {
        StoreError::Unavailable(why) => Some(StoreError::Unavailable(why.clone())),
        StoreError::Full => Some(StoreError::Full),
        _ => None,
    };
    if n == 1 {
        return vec![Err(e)];
    }
    if shared(&e).is_some() {
        return (0..n).filter_map(|_| shared(&e)).map(Err).collect();
    }
    let mut out = Vec::with_capacity(n);
    for item in batch {
        match together(vec![item]).await {
            Ok(mut results) => out.push(results.pop().unwrap_or_else(|| {
                Err(StoreError::Backend("a statement answered nothing".into()))
            })),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// Runs `batch` through `or_one_by_one` in rounds in which no two requests share a `key` (the
/// second request for a key goes in the second round, and so on), and answers in `batch`'s order.
pub(crate) async fn in_rounds<T, R, K, F, Fut>(
    batch: Vec<T>,
    key: K,
    together: F,
) -> Vec<StoreResult<R>>
where
    T: Clone,
    K: Fn(&T) -> &str,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<StoreResult<R>>>>,
{
    let n = batch.len();
    let mut rounds: Vec<(Vec<usize>, Vec<T>)> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, item) in batch.into_iter().enumerate() {
        let round = seen.entry(key(&item).to_string()).or_insert(0);
        if rounds.len() <= *round {
            rounds.push((Vec::new(), Vec::new()));
        }
        if let Some((at, items)) = rounds.get_mut(*round) {
            at.push(i);
            items.push(item);
        }
        *round += 1;
    }
    let mut out: Vec<Option<StoreResult<R>>> = (0..n).map(|_| None).collect();
    for (at, items) in rounds {
        let results = or_one_by_one(items, &together).await;
        for (i, result) in at.into_iter().zip(results) {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(result);
            }
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("a request was not answered".into()))))
        .collect()
}
