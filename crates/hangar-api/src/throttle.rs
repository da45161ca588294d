//! Throttling of password guesses (SPEC §3): failures are counted per key (`login-user:NAME`,
//! `login-addr:IP`, `client-id:ID`, …) in fixed windows kept in the database, so that every node of
//! an installation counts the same attempts; a key at its limit is refused until its window ends.

use crate::client::ClientAddr;
use crate::error::{ApiError, ApiResult};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode};
use hangar_core::store::AttemptStore;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// At most `failures` failed attempts per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub failures: i64,
    pub window_ms: i64,
}

/// The limits of SPEC §3, which `--login-failures-per-user` and `--login-failures-per-address` may change.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per username (or client id): 5 failures in 15 minutes.
    pub per_name: Limit,
    /// Per client address: 30 failures in a minute.
    pub per_address: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_name: Limit {
                failures: 5,
                window_ms: 15 * 60 * 1000,
            },
            per_address: Limit {
                failures: 30,
                window_ms: 60 * 1000,
            },
        }
    }
}

/// Wrong passwords of one share link (SPEC §9.4): 5 in 15 minutes.
pub const SHARE_LINK_PASSWORD: Limit = Limit {
    failures: 5,
    window_ms: 15 * 60 * 1000,
};

/// One counted thing: what kind of attempt, whose, and the limit that applies.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub limit: Limit,
}

impl Key {
    /// `kind` names what is counted (`login-user`, `login-addr`, `client-id`, `client-addr`,
    /// `share-link`…); `value` whose attempts they are.
    pub fn new(kind: &str, value: &str, limit: Limit) -> Key {
        Key {
            name: format!("{kind}:{}", bounded(value)),
            limit,
        }
    }
}

/// At most 128 characters of what a client sent (usernames have at most 64, client ids fewer): a
/// megabyte of "username" must not become a megabyte of key or of log line.
pub fn bounded(value: &str) -> String {
    value.chars().take(128).collect()
}

/// The throttle: checks keys before an attempt, counts a failure after one.
#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn AttemptStore>,
    pub limits: Limits,
}

/// A refused attempt: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            format!(
                "too many failed attempts: try again in {} seconds",
                t.retry_after_secs
            ),
        );
        e.retry_after = Some(t.retry_after_secs);
        e
    }
}

fn retry_after(window_end: i64, now: i64) -> Throttled {
    // Rounded up: a client that waits exactly this long is let through.
    let secs = ((window_end - now).max(0) + 999) / 1000;
    let secs = secs.max(1);
    Throttled {
        retry_after_secs: secs as u64,
    }
}

impl Throttle {
    pub fn new(store: Arc<dyn AttemptStore>, limits: Limits) -> Throttle {
        Throttle { store, limits }
    }

    /// Refuses when any key has reached its limit in its current window.
    pub async fn check(&self, keys: &[Key], now: i64) -> ApiResult<Result<(), Throttled>> {
        let mut worst: Option<Throttled> = None;
        for key in keys {
            if let Some((failures, end)) = self.store.failures(&key.name, now).await? {
                if failures >= key.limit.failures {
                    let t = retry_after(end, now);
                    worst = Some(worst.map_or(t, |w| w.max_by_secs(t)));
                }
            }
        }
        Ok(worst.map_or(Ok(()), Err))
    }

    /// Counts an attempt against every key *before* it is made, so that many guesses sent at once
    /// cannot all pass a check that none of them was counted in yet: refused once any key has more
    /// attempts than its limit in its window. After a right guess, `succeeded` takes the count back;
    /// a wrong one stays counted.
    pub async fn begin(&self, keys: &[Key], now: i64) -> ApiResult<Result<(), Throttled>> {
        let mut worst: Option<Throttled> = None;
        for key in keys {
            let (attempts, end) = self
                .store
                .record_failure(&key.name, now, key.limit.window_ms)
                .await?;
            if attempts > key.limit.failures {
                let t = retry_after(end, now);
                worst = Some(worst.map_or(t, |w| w.max_by_secs(t)));
            }
        }
        Ok(worst.map_or(Ok(()), Err))
    }

    /// The attempt counted by `begin` was right: it is not a failure.
    pub async fn succeeded(&self, keys: &[Key], now: i64) -> ApiResult<()> {
        for key in keys {
            self.store.forgive_failure(&key.name, now).await?;
        }
        Ok(())
    }

    /// Counts one failed attempt against every key.
    pub async fn failed(&self, keys: &[Key], now: i64) -> ApiResult<()> {
        for key in keys {
            self.store
                .record_failure(&key.name, now, key.limit.window_ms)
                .await?;
        }
        Ok(())
    }
}

impl Throttled {
    fn max_by_secs(self, other: Throttled) -> Throttled {
        if other.retry_after_secs > self.retry_after_secs {
            other
        } else {
            self
        }
    }
}

/// The address a request came from: the client address the router put on the request (the TCP
/// peer, or what a `--trusted-proxies` proxy forwarded), else the TCP peer.
pub fn client_addr(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ClientAddr(ip)) = extensions.get::<ClientAddr>() {
        return Some(*ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical())
}

/// The client address as an extractor (`unknown` when the server was built without peer
/// addresses, as some in-process tests are).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl Peer {
    pub fn text(&self) -> String {
        self.0
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(client_addr(&parts.extensions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after(10_001, 0).retry_after_secs, 11);
        assert_eq!(retry_after(10_000, 0).retry_after_secs, 10);
        assert_eq!(retry_after(5, 10).retry_after_secs, 1);
    }

    #[test]
    fn keys_name_their_kind() {
        let k = Key::new("login-user", "alice", Limits::default().per_name);
        assert_eq!(k.name, "login-user:alice");
        assert_eq!(k.limit.failures, 5);
    }
}
