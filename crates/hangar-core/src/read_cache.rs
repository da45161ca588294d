//! In-memory caches of what nearly every read asks the database first: who a bearer token belongs to,
//! what a ready attachment is, and whether a member reads an attachment through a message or issue.
//! Bounded, with a lifetime as a backstop, and explicitly invalidated: the store that changes what an
//! entry says names the change (`Invalidation`) after its commit, and on PostgreSQL also sends it to
//! the other nodes in the same transaction (docs/architecture.md, "Read caches").
//!
//! Every entry is written with the generation of its family read *before* its database query; any
//! invalidation bumps the generation, so a query that raced a change can never store what it read
//! from before the change.

use crate::model::{Attachment, Member, PersonalToken};
use crate::store::{AppRecord, AppToken};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// What a change makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Every token → caller entry (a token revoked, a member disabled, deleted, changed, its password
    /// reset; an application's token or state changed). Rare, so coarse.
    Callers,
    /// One attachment's descriptor and who reads it through links (deleted, published, unpublished,
    /// its state changed).
    Attachment(i64),
    /// Every "reads through a link" entry (a message or issue deleted, a membership ended).
    Readers,
}

impl Invalidation {
    /// The text carried between nodes (a PostgreSQL notification's payload).
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Callers => "c".into(),
            Invalidation::Attachment(id) => format!("a:{id}"),
            Invalidation::Readers => "r".into(),
        }
    }

    /// The invalidation `text` names; None for anything else.
    pub fn decode(text: &str) -> Option<Invalidation> {
        match text {
            "c" => Some(Invalidation::Callers),
            "r" => Some(Invalidation::Readers),
            _ => text
                .strip_prefix("a:")?
                .parse()
                .ok()
                .map(Invalidation::Attachment),
        }
    }
}

/// The caller behind a personal token, as the store answers it.
pub type PersonalCaller = (Member, PersonalToken);
/// The caller behind an application token, as the store answers it.
pub type AppCaller = (AppToken, AppRecord, Member);

/// A number to give back with what was read, so that a change in between refuses to store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(Option<u64>);

struct Family<K, V> {
    generation: u64,
    entries: HashMap<K, (V, i64)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Family<K, V> {
    fn new() -> Self {
        Self {
            generation: 0,
            entries: HashMap::new(),
        }
    }

    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Sizes and lifetime of the caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Entries per family (tokens, attachments, link readers).
    pub entries: usize,
    /// How long an entry is used at most, whatever the invalidations (a backstop).
    pub ttl_ms: i64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            entries: 10_000,
            ttl_ms: 30_000,
        }
    }
}

/// The read caches of one process. Cheap to share (`Arc`); every method takes a short lock.
pub struct ReadCache {
    limits: CacheLimits,
    state: Mutex<State>,
}

struct State {
    /// False while changes made elsewhere might not be heard (a node whose notification listener
    /// is not connected): nothing is read from or written to the caches then.
    enabled: bool,
    personal: Family<String, PersonalCaller>,
    apps: Family<String, AppCaller>,
    attachments: Family<i64, Attachment>,
    readers: Family<(i64, i64), ()>,
}

impl ReadCache {
    /// Caches that are in use from the start (one process on its database: every change is made
    /// here and invalidates here).
    pub fn new(limits: CacheLimits) -> Self {
        Self::with_state(limits, true)
    }

    /// Caches that stay unused until `enable` (a node that must first hear other nodes' changes).
    pub fn disabled(limits: CacheLimits) -> Self {
        Self::with_state(limits, false)
    }

    fn with_state(limits: CacheLimits, enabled: bool) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                enabled,
                personal: Family::new(),
                apps: Family::new(),
                attachments: Family::new(),
                readers: Family::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only cache entries behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Empties the caches and uses them again (a listener that has just started listening).
    pub fn enable(&self) {
        let mut s = self.lock();
        s.clear_all();
        s.enabled = true;
    }

    /// Empties the caches and stops using them (a listener that lost its connection).
    pub fn disable(&self) {
        let mut s = self.lock();
        s.clear_all();
        s.enabled = false;
    }

    /// Empties the caches (another process changed the database).
    pub fn clear(&self) {
        self.lock().clear_all();
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Forgets what `change` makes stale.
    pub fn invalidate(&self, change: Invalidation) {
        let mut s = self.lock();
        match change {
            Invalidation::Callers => {
                s.personal.entries.clear();
                s.personal.bump();
                s.apps.entries.clear();
                s.apps.bump();
            }
            Invalidation::Attachment(id) => {
                s.attachments.entries.remove(&id);
                s.attachments.bump();
                s.readers.entries.retain(|(a, _), _| *a != id);
                s.readers.bump();
            }
            Invalidation::Readers => {
                s.readers.entries.clear();
                s.readers.bump();
            }
        }
    }

    pub fn personal(&self, token_hash: &str, now: i64) -> Result<PersonalCaller, Ticket> {
        let mut s = self.lock();
        let ttl = self.limits.ttl_ms;
        let enabled = s.enabled;
        lookup(&mut s.personal, enabled, token_hash, now, ttl)
            // An expired token is never answered from the cache (the store's query checks it too).
            .and_then(|(m, t)| match t.expires_utc {
                Some(e) if e <= now => Err(Ticket(None)),
                _ => Ok((m, t)),
            })
    }

    pub fn store_personal(
        &self,
        ticket: Ticket,
        token_hash: &str,
        value: &PersonalCaller,
        now: i64,
    ) {
        let mut s = self.lock();
        let cap = self.limits.entries;
        store(
            &mut s.personal,
            ticket,
            token_hash.to_string(),
            value,
            now,
            cap,
        );
    }

    /// Records a token's use in its cached entry, so that the next requests see it as recorded
    /// (at most once a minute per token: a scan of the entries is cheap enough).
    pub fn personal_used(&self, token_id: i64, now: i64) {
        let mut s = self.lock();
        for ((_, t), _) in s.personal.entries.values_mut() {
            if t.id == token_id {
                t.last_used_utc = Some(now);
            }
        }
    }

    pub fn app(&self, token_hash: &str, now: i64) -> Result<AppCaller, Ticket> {
        let mut s = self.lock();
        let ttl = self.limits.ttl_ms;
        let enabled = s.enabled;
        lookup(&mut s.apps, enabled, token_hash, now, ttl).and_then(|v| match v.0.expires_utc {
            Some(e) if e <= now => Err(Ticket(None)),
            _ => Ok(v),
        })
    }

    pub fn store_app(&self, ticket: Ticket, token_hash: &str, value: &AppCaller, now: i64) {
        let mut s = self.lock();
        let cap = self.limits.entries;
        store(&mut s.apps, ticket, token_hash.to_string(), value, now, cap);
    }

    pub fn app_used(&self, token_id: i64, now: i64) {
        let mut s = self.lock();
        for ((t, _, _), _) in s.apps.entries.values_mut() {
            if t.id == token_id {
                t.last_used_utc = Some(now);
            }
        }
    }

    pub fn attachment(&self, id: i64, now: i64) -> Result<Attachment, Ticket> {
        let mut s = self.lock();
        let ttl = self.limits.ttl_ms;
        let enabled = s.enabled;
        lookup(&mut s.attachments, enabled, &id, now, ttl)
    }

    pub fn store_attachment(&self, ticket: Ticket, a: &Attachment, now: i64) {
        let mut s = self.lock();
        let cap = self.limits.entries;
        store(&mut s.attachments, ticket, a.id, a, now, cap);
    }

    /// Whether `member_id` is known to read `attachment_id` through a link (only "yes" is kept:
    /// a new link must work at once, and adding one invalidates nothing).
    pub fn reader(&self, attachment_id: i64, member_id: i64, now: i64) -> Result<(), Ticket> {
        let mut s = self.lock();
        let ttl = self.limits.ttl_ms;
        let enabled = s.enabled;
        lookup(
            &mut s.readers,
            enabled,
            &(attachment_id, member_id),
            now,
            ttl,
        )
    }

    pub fn store_reader(&self, ticket: Ticket, attachment_id: i64, member_id: i64, now: i64) {
        let mut s = self.lock();
        let cap = self.limits.entries;
        store(
            &mut s.readers,
            ticket,
            (attachment_id, member_id),
            &(),
            now,
            cap,
        );
    }

    /// Entries held now (tokens, attachments, readers), for tests and metrics.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (
            s.personal.entries.len() + s.apps.entries.len(),
            s.attachments.entries.len(),
            s.readers.entries.len(),
        )
    }
}

impl State {
    fn clear_all(&mut self) {
        self.personal.entries.clear();
        self.personal.bump();
        self.apps.entries.clear();
        self.apps.bump();
        self.attachments.entries.clear();
        self.attachments.bump();
        self.readers.entries.clear();
        self.readers.bump();
    }
}

/// The live entry for `key`, or the ticket to store what the database answers.
fn lookup<K, V, Q>(
    family: &mut Family<K, V>,
    enabled: bool,
    key: &Q,
    now: i64,
    ttl_ms: i64,
) -> Result<V, Ticket>
where
    K: Hash + Eq + Clone + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    V: Clone,
{
    if !enabled {
        return Err(Ticket(None));
    }
    match family.entries.get(key) {
        Some((value, stored)) if now - stored < ttl_ms && now >= *stored => Ok(value.clone()),
        Some(_) => {
            family.entries.remove(key);
            Err(Ticket(Some(family.generation)))
        }
        None => Err(Ticket(Some(family.generation))),
    }
}

fn store<K: Hash + Eq + Clone, V: Clone>(
    family: &mut Family<K, V>,
    ticket: Ticket,
    key: K,
    value: &V,
    now: i64,
    capacity: usize,
) {
    // Stored only when nothing was invalidated since the lookup (and the caches were in use then).
    if ticket.0 != Some(family.generation) {
        return;
    }
    if family.entries.len() >= capacity && !family.entries.contains_key(&key) {
        // Full: drop one entry (whichever the map yields first: effectively at random).
        if let Some(victim) = family.entries.keys().next().cloned() {
            family.entries.remove(&victim);
        }
    }
    family.entries.insert(key, (value.clone(), now));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::AttachmentState;

    fn caller(expires: Option<i64>) -> PersonalCaller {
        (
            Member {
                id: 7,
                username: "ann".into(),
                display_name: "Ann".into(),
                role: Role::Member,
                created_utc: 0,
            },
            PersonalToken {
                id: 1,
                member_id: 7,
                name: "t".into(),
                scope: crate::access::Scope::parse("**"),
                expires_utc: expires,
                created_utc: 0,
                last_used_utc: None,
                made_with: None,
            },
        )
    }

    fn attachment(id: i64) -> Attachment {
        Attachment {
            id,
            uploader_id: 7,
            file_name: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 3,
            sha256: Some("ab".into()),
            state: AttachmentState::ReadyForDownloadFromServerToClient,
            media_context: None,
            has_thumbnail: false,
            width: None,
            height: None,
            public: false,
            link_version: 0,
            created_utc: 0,
            modified_utc: 0,
            message_id: None,
            room_id: None,
        }
    }

    fn limits() -> CacheLimits {
        CacheLimits {
            entries: 3,
            ttl_ms: 1_000,
        }
    }

    #[test]
    fn an_entry_is_kept_until_invalidated() {
        let c = ReadCache::new(limits());
        let ticket = c.personal("h", 0).unwrap_err();
        c.store_personal(ticket, "h", &caller(None), 0);
        assert_eq!(c.personal("h", 10).unwrap().0.id, 7);
        c.invalidate(Invalidation::Attachment(1));
        assert!(c.personal("h", 10).is_ok(), "other families stay");
        c.invalidate(Invalidation::Callers);
        assert!(c.personal("h", 10).is_err());
    }

    #[test]
    fn what_was_read_before_a_change_is_not_stored_after_it() {
        let c = ReadCache::new(limits());
        let ticket = c.attachment(1, 0).unwrap_err();
        // The change commits and invalidates while the query that read the old row is running.
        c.invalidate(Invalidation::Attachment(1));
        c.store_attachment(ticket, &attachment(1), 0);
        assert!(c.attachment(1, 0).is_err());
        let ticket = c.attachment(1, 0).unwrap_err();
        c.store_attachment(ticket, &attachment(1), 0);
        assert!(c.attachment(1, 0).is_ok());
    }

    #[test]
    fn entries_live_at_most_their_lifetime_and_tokens_not_past_expiry() {
        let c = ReadCache::new(limits());
        let t = c.personal("h", 0).unwrap_err();
        c.store_personal(t, "h", &caller(Some(500)), 0);
        assert!(c.personal("h", 499).is_ok());
        assert!(c.personal("h", 500).is_err());
        let t = c.attachment(1, 0).unwrap_err();
        c.store_attachment(t, &attachment(1), 0);
        assert!(c.attachment(1, 999).is_ok());
        assert!(c.attachment(1, 1_000).is_err());
    }

    #[test]
    fn a_disabled_cache_answers_and_keeps_nothing() {
        let c = ReadCache::disabled(limits());
        let t = c.reader(1, 2, 0).unwrap_err();
        c.store_reader(t, 1, 2, 0);
        assert!(c.reader(1, 2, 0).is_err());
        c.enable();
        let t = c.reader(1, 2, 0).unwrap_err();
        c.store_reader(t, 1, 2, 0);
        assert!(c.reader(1, 2, 0).is_ok());
        c.disable();
        assert!(c.reader(1, 2, 0).is_err());
        assert_eq!(c.sizes(), (0, 0, 0));
    }

    #[test]
    fn readers_go_with_their_attachment_or_all_at_once() {
        let c = ReadCache::new(limits());
        for (a, m) in [(1, 2), (3, 2)] {
            let t = c.reader(a, m, 0).unwrap_err();
            c.store_reader(t, a, m, 0);
        }
        c.invalidate(Invalidation::Attachment(1));
        assert!(c.reader(1, 2, 0).is_err());
        assert!(c.reader(3, 2, 0).is_ok());
        c.invalidate(Invalidation::Readers);
        assert!(c.reader(3, 2, 0).is_err());
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = ReadCache::new(limits());
        for id in 0..10 {
            let t = c.attachment(id, 0).unwrap_err();
            c.store_attachment(t, &attachment(id), 0);
        }
        assert_eq!(c.sizes().1, 3);
        assert!(c.attachment(9, 0).is_ok(), "the newest is kept");
    }

    #[test]
    fn invalidations_round_trip_as_text() {
        for i in [
            Invalidation::Callers,
            Invalidation::Readers,
            Invalidation::Attachment(9_007_199_254_740_991),
        ] {
            assert_eq!(Invalidation::decode(&i.encode()), Some(i));
        }
        assert_eq!(Invalidation::decode("a:x"), None);
        assert_eq!(Invalidation::decode(""), None);
    }
}
