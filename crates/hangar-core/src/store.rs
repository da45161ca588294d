//! The metadata store, split by concern. Each trait is one aggregate; operations that must be atomic
//! (an attachment and its blob reference, a message and its attachment links) are single methods.

use crate::app_model::{decode, encode, DecodeError, ItemKind};
use crate::model::*;
use crate::storage_path::StoragePath;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (the string names what already exists).
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A rule of the data refuses the change (a file where a directory is, …): `code` is stable.
    #[error("{reason}")]
    Refused { code: &'static str, reason: String },
    /// The disk holding the database is full.
    #[error("the metadata store's disk is full")]
    Full,
    /// The metadata store cannot be reached right now (connection refused or lost, no connection
    /// free in time, the server shutting down): a passing condition, not a fault of the request.
    #[error("the metadata store is unreachable: {0}")]
    Unavailable(String),
    #[error("metadata store failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// The refusal of a reference to a blob whose bytes are being deleted right now.
    pub fn blob_busy() -> StoreError {
        StoreError::Refused {
            code: BLOB_BUSY,
            reason: "the stored bytes are being deleted; upload again".into(),
        }
    }

    /// Whether this is `blob_busy`: a record that may be made again once the deletion is over.
    pub fn is_blob_busy(&self) -> bool {
        matches!(self, StoreError::Refused { code, .. } if *code == BLOB_BUSY)
    }
}

const BLOB_BUSY: &str = "blob-busy";

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn member_count(&self) -> StoreResult<i64>;
    async fn create_member(
        &self,
        username: &str,
        password_hash: &str,
        display_name: &str,
        role: Role,
    ) -> StoreResult<Member>;
    /// The member and their password hash.
    async fn member_credentials(&self, username: &str) -> StoreResult<Option<(Member, String)>>;
    async fn member_by_username(&self, username: &str) -> StoreResult<Option<Member>>;
    async fn set_password(&self, member_id: i64, password_hash: &str) -> StoreResult<()>;
    async fn list_members(&self) -> StoreResult<Vec<Member>>;

    async fn create_session(
        &self,
        token_hash: &str,
        member_id: i64,
        expires_utc: i64,
    ) -> StoreResult<()>;
    /// The member of a live session: not expired at `now`, and used after `idle_since` (the idle
    /// time-out). A use is recorded, at most once a minute.
    async fn session_member(
        &self,
        token_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> StoreResult<Option<Member>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Ends every session of a member (their password changed).
    async fn end_sessions(&self, member_id: i64) -> StoreResult<()>;
    /// Removes sessions that expired before `now`.
    async fn purge_sessions(&self, now: i64) -> StoreResult<u64>;

    async fn create_token(&self, token: &PersonalToken, token_hash: &str) -> StoreResult<()>;
    async fn token_member(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(Member, PersonalToken)>>;
    async fn list_tokens(&self, member_id: i64) -> StoreResult<Vec<PersonalToken>>;
    async fn touch_token(&self, token_id: i64, now: i64) -> StoreResult<()>;
    /// False when the member has no such token.
    async fn delete_token(&self, member_id: i64, token_id: i64) -> StoreResult<bool>;
}

/// What an operator does to a member from the command line (SPEC §9.8, with the revocations of §3).
#[async_trait]
pub trait MemberControlStore: Send + Sync {
    /// Sets the password and, in the same transaction, ends every session of the member and revokes
    /// every token it holds or approved.
    async fn reset_password(&self, member_id: i64, password_hash: &str) -> StoreResult<()>;
    /// Disables the member (its logins fail like a wrong password) and revokes as `reset_password`.
    async fn disable_member(&self, member_id: i64) -> StoreResult<()>;
    async fn is_disabled(&self, member_id: i64) -> StoreResult<bool>;
    /// Applies an administrator's change to a member in one transaction. Disabling or a new password
    /// revoke as `reset_password`. Disabling or demoting the last active administrator is refused
    /// (`Refused { code: "last-admin" }`), checked under the same transaction.
    async fn change_member(&self, member_id: i64, change: &MemberUpdate) -> StoreResult<()>;
    /// Deletes a member: every session and token ends, its memberships go, its username is freed;
    /// the row stays as a tombstone that owns the member's files (owned by the installation from
    /// then on). The last active administrator cannot be deleted (`last-admin`).
    async fn delete_member(&self, member_id: i64) -> StoreResult<()>;
    /// A member changes its own password: every other session and every token it holds or
    /// approved ends; the session `keep_session` (a token hash), if any, stays.
    async fn change_own_password(
        &self,
        member_id: i64,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> StoreResult<()>;
}

/// What an administrator changes of a member (`PATCH /api/v1/members/{username}`).
#[derive(Debug, Clone, Default)]
pub struct MemberUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

/// Failed authentication attempts counted per key in fixed windows, shared by every node through
/// the database (the throttle of SPEC §3).
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// The failures counted for `key` in its window still open at `now`: `(failures, window_end)`.
    async fn failures(&self, key: &str, now: i64) -> StoreResult<Option<(i64, i64)>>;
    /// Counts one failure, atomically: a window that ended before `now` starts again at `now` and
    /// lasts `window_ms`. Answers the count and the end of the window.
    async fn record_failure(&self, key: &str, now: i64, window_ms: i64) -> StoreResult<(i64, i64)>;
    /// Takes back one failure counted for `key` in its window still open at `now` (an attempt
    /// counted before it was made turned out right); never below zero.
    async fn forgive_failure(&self, key: &str, now: i64) -> StoreResult<()>;
    /// Forgets windows that ended before `now`.
    async fn prune_attempts(&self, now: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait SpaceStore: Send + Sync {
    async fn create_space(
        &self,
        id: &str,
        name: &str,
        quota_bytes: Option<i64>,
    ) -> StoreResult<Space>;
    async fn space(&self, id: &str) -> StoreResult<Option<Space>>;
    /// Every space when `member_id` is None, else the member's spaces.
    async fn list_spaces(&self, member_id: Option<i64>) -> StoreResult<Vec<Space>>;
    async fn update_space(
        &self,
        id: &str,
        name: Option<&str>,
        quota_bytes: Option<Option<i64>>,
    ) -> StoreResult<Option<Space>>;
    /// Deletes the space with its files; false when there is no such space.
    async fn delete_space(&self, id: &str) -> StoreResult<bool>;
    async fn add_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<()>;
    async fn remove_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<bool>;
    async fn is_space_member(&self, space_id: &str, member_id: i64) -> StoreResult<bool>;
    /// Whether the member who declared a two-stage upload may still write to the space when its
    /// bytes arrive: not deleted or disabled, and an admin, a member of the space, or an
    /// application's bot member (whose rights were checked at the declaration).
    async fn may_still_write(&self, space_id: &str, member_id: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    async fn create_channel(&self, name: &str, member_ids: &[i64]) -> StoreResult<Channel>;
    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>>;
    /// Every channel when `member_id` is None, else the member's channels.
    async fn list_channels(&self, member_id: Option<i64>) -> StoreResult<Vec<Channel>>;
    async fn add_channel_member(&self, channel_id: i64, member_id: i64) -> StoreResult<()>;
    async fn is_channel_member(&self, channel_id: i64, member_id: i64) -> StoreResult<bool>;
    /// Records a message with its attachment links in one transaction.
    async fn create_message(
        &self,
        channel_id: i64,
        author_id: i64,
        text: &str,
        links: &[AttachmentLink],
    ) -> StoreResult<Message>;
    async fn message(&self, id: i64) -> StoreResult<Option<Message>>;
    /// Deletes a message; its attachments stay, released (an attachment left with no message or
    /// issue counts as unattached from now on).
    async fn delete_message(&self, id: i64) -> StoreResult<()>;
    /// Messages after position `after_seq`, oldest first, at most `limit`.
    async fn list_messages(
        &self,
        channel_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<Message>>;
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(
        &self,
        key: &str,
        name: &str,
        member_ids: &[i64],
    ) -> StoreResult<Project>;
    async fn project_by_key(&self, key: &str) -> StoreResult<Option<Project>>;
    async fn project_by_id(&self, id: i64) -> StoreResult<Option<Project>>;
    /// The projects a member belongs to (every project when `member_id` is None), oldest first.
    async fn list_projects(&self, member_id: Option<i64>) -> StoreResult<Vec<Project>>;
    async fn is_project_member(&self, project_id: i64, member_id: i64) -> StoreResult<bool>;
    /// Creates an issue with the next number of its project and its attachment links, atomically.
    async fn create_issue(
        &self,
        project_id: i64,
        author_id: i64,
        title: &str,
        status: &str,
        links: &[AttachmentLink],
    ) -> StoreResult<Issue>;
    async fn issue_by_number(&self, project_id: i64, number: i64) -> StoreResult<Option<Issue>>;
    async fn issue_by_id(&self, id: i64) -> StoreResult<Option<Issue>>;
    async fn list_issues(
        &self,
        project_id: i64,
        skip: i64,
        top: i64,
    ) -> StoreResult<(Vec<Issue>, i64)>;
    async fn add_issue_attachments(
        &self,
        issue_id: i64,
        links: &[AttachmentLink],
    ) -> StoreResult<Issue>;
    /// Deletes an issue; its attachments stay, released as by `ChatStore::delete_message`.
    async fn delete_issue(&self, id: i64) -> StoreResult<()>;
}

#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Records attachments (and their blob references) and, when given, links them to a message, in
    /// one transaction. With `owner_quota`, refuses (`Refused` `limits-reached`) when the uploader's
    /// attachments would then hold more bytes than that (see `member_usage`), checked atomically
    /// with every other upload of the same member.
    async fn create_attachments(
        &self,
        new: &[NewAttachment],
        message_id: Option<i64>,
        owner_quota: Option<i64>,
    ) -> StoreResult<Vec<Attachment>>;
    /// The bytes a member's attachments hold against the member's quota: the logical sizes of those
    /// with stored bytes and of resumable uploads still under way (at their declared length).
    async fn member_usage(&self, member_id: i64) -> StoreResult<i64>;
    /// Up to `limit` finished attachments attached to no message or issue since before `cutoff`
    /// (epoch ms: since their upload, or since their last message or issue was deleted).
    async fn unattached_before(&self, cutoff: i64, limit: i64) -> StoreResult<Vec<i64>>;
    async fn attachment(&self, id: i64) -> StoreResult<Option<Attachment>>;
    /// The attachment as a download needs it: what `attachment` answers, possibly from the read
    /// cache (`read_cache`), so its preview fields (`has_thumbnail`, dimensions) may be older.
    /// Everything a download decides by (state, name, type, size, checksum, uploader, public link)
    /// is exact: each change of those invalidates the entry.
    async fn attachment_for_download(&self, id: i64) -> StoreResult<Option<Attachment>> {
        self.attachment(id).await
    }
    /// Whether the member may read the attachment through a message or issue it is attached to.
    /// A store may answer "yes" from its read cache (links and memberships that end invalidate it).
    async fn readable_through_links(&self, attachment_id: i64, member_id: i64)
        -> StoreResult<bool>;
    async fn is_linked_to_message(&self, attachment_id: i64, message_id: i64) -> StoreResult<bool>;
    /// Makes the attachment public; answers the link version its token derives from.
    async fn publish(&self, id: i64) -> StoreResult<i64>;
    /// Makes it private again and moves to a new link version, so every earlier token dies.
    async fn revoke_public_link(&self, id: i64) -> StoreResult<()>;
    /// Deletes the attachment and its links (its blob reference goes with them).
    async fn delete_attachment(&self, id: i64) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
}

/// Share links (SPEC §9.4). A link goes with its file: the store deletes it when the attachment or
/// the storage file is deleted (a moved file takes its links along). Download counts are kept here,
/// so that every node counts against the same cap.
#[async_trait]
pub trait ShareLinkStore: Send + Sync {
    /// Records a link under the SHA-256 of its token; `NotFound("file")` when the target is gone.
    async fn create_share_link(&self, link: &ShareLink, token_hash: &str) -> StoreResult<()>;
    /// The link with this token hash, if its creator is still an active member (a disabled or
    /// deleted member's links stop working). Expired and used-up links are answered too: the caller
    /// tells them apart (410, not 404).
    async fn share_link_by_token(&self, token_hash: &str) -> StoreResult<Option<ShareLink>>;
    async fn share_link(&self, id: i64) -> StoreResult<Option<ShareLink>>;
    /// The links of one creator, or every link when None; newest first.
    async fn list_share_links(&self, creator_id: Option<i64>) -> StoreResult<Vec<ShareLink>>;
    /// False when there is no such link.
    async fn delete_share_link(&self, id: i64) -> StoreResult<bool>;
    /// Counts one download in a single conditional update: false (and nothing counted) when the
    /// link is gone, expired at `now`, or has reached its `max_downloads`, whichever node asks.
    async fn count_share_download(&self, id: i64, now: i64) -> StoreResult<bool>;
    /// Takes back a download counted for a request that then failed before sending anything (the
    /// storage could not be read); never below zero.
    async fn uncount_share_download(&self, id: i64) -> StoreResult<()>;
}

/// Previews of attachments' bytes (SPEC §9.3), keyed by the source's SHA-256. Each preview is a blob
/// referenced like any other; the source's previews go, with their references, in the transaction
/// that drops the source's last reference.
#[async_trait]
pub trait PreviewStore: Send + Sync {
    /// What is known of a source's previews; None when nobody looked yet.
    async fn preview_source(
        &self,
        sha256: &str,
    ) -> StoreResult<Option<crate::preview::PreviewSource>>;
    /// One preview of a source.
    async fn preview(
        &self,
        source: &str,
        size: i64,
    ) -> StoreResult<Option<crate::preview::PreviewRecord>>;
    /// Records a source's previews and the original's size, taking a reference on each preview's
    /// blob and dropping its pin, in one transaction, if something still references the source and
    /// nobody recorded them first.
    async fn record_previews(
        &self,
        source: &str,
        width: i64,
        height: i64,
        previews: &[crate::preview::NewPreview],
    ) -> StoreResult<crate::preview::PreviewRecorded>;
    /// Records that a source gets no preview (while something references it).
    async fn record_no_preview(&self, source: &str) -> StoreResult<()>;
}

/// What the database knows of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRecord {
    /// None when there is no row (nothing refers to it now).
    pub refcount: Option<i64>,
    /// Whether an upload that is about to refer to it holds a live pin.
    pub pinned: bool,
}

/// What `pin_blob_object` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinnedObject {
    /// The blob is being deleted right now: wait a moment and pin again.
    Busy,
    /// Pinned; the blob's bytes are the object under this key (the caller's, or an earlier one).
    Keyed(String),
    /// Pinned; the blob's row predates object keys: its bytes are under the content-addressed key.
    Addressed,
}

/// What a collector may do with a blob's bytes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    /// Referenced or pinned: the bytes stay.
    Keep,
    /// Unreferenced, but its grace period ends at this time (epoch ms): look again then.
    Later(i64),
    /// Marked as being deleted: delete the bytes, then `finish_blob_deletion`. Until then no upload
    /// can pin it.
    Delete,
}

/// The lifecycle of shared blobs, decided in the database (SPEC §10). Dropping a blob's last
/// reference queues a `CollectBlob` job after the grace period, in the same transaction; an upload
/// pins the blob it is about to commit before the bytes are written; bytes are deleted only when,
/// at that time, nothing references or pins them. No in-process lock is involved, so this holds with
/// several processes on one database.
#[async_trait]
pub trait BlobLifecycleStore: Send + Sync {
    /// Pins a blob for an upload that is about to commit and reference it, until `expires_utc`.
    /// False when the blob is being deleted right now: wait a moment and pin again.
    async fn pin_blob(&self, pin_id: &str, sha256: &str, expires_utc: i64) -> StoreResult<bool>;
    /// `pin_blob` for bytes already written to an object of their own (`object_key`: object
    /// stores, which cannot rename), in the same transaction recording that key on the blob's row
    /// unless the row has one: the first object of a content is the one kept, and the others are
    /// duplicates to delete. A store that records no keys pins only (the content-addressed layout).
    async fn pin_blob_object(
        &self,
        pin_id: &str,
        sha256: &str,
        size: i64,
        expires_utc: i64,
        object_key: &str,
    ) -> StoreResult<PinnedObject> {
        let _ = (size, object_key);
        Ok(match self.pin_blob(pin_id, sha256, expires_utc).await? {
            true => PinnedObject::Addressed,
            false => PinnedObject::Busy,
        })
    }
    /// The object key recorded for a blob; None for the content-addressed layout (rows from before
    /// object keys) or no row.
    async fn blob_object_key(&self, sha256: &str) -> StoreResult<Option<String>> {
        let _ = sha256;
        Ok(None)
    }
    /// The blob whose bytes are recorded under `object_key`, if any (for listings of the store).
    async fn blob_of_object(&self, object_key: &str) -> StoreResult<Option<String>> {
        let _ = object_key;
        Ok(None)
    }
    /// Drops a pin that will not be used (the upload failed), queueing a collection if nothing else
    /// holds the blob.
    async fn release_pin(&self, pin_id: &str) -> StoreResult<()>;
    /// Removes pins that expired before `now`, queueing a collection for the blobs they held.
    async fn expire_pins(&self, now: i64) -> StoreResult<u64>;
    /// Decides, atomically, whether the blob's bytes may be deleted now (see `Collect`).
    async fn begin_blob_deletion(&self, sha256: &str, now: i64) -> StoreResult<Collect>;
    /// The bytes are gone: forget the blob.
    async fn finish_blob_deletion(&self, sha256: &str) -> StoreResult<()>;
    async fn blob_record(&self, sha256: &str) -> StoreResult<BlobRecord>;
    /// Whether the database holds anything at all (members or blobs): false for a new database.
    async fn holds_data(&self) -> StoreResult<bool>;
    /// Blobs something refers to (refcount above 0), by hash after `after`, at most `limit`:
    /// `(sha256, size)`.
    async fn referenced_blobs(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// What refers to a blob, in words (`attachment 12 "a.txt"`, `space docs file "a/b.txt"`).
    async fn blob_users(&self, sha256: &str) -> StoreResult<Vec<String>>;
    /// Unreferenced blobs whose grace period ended before `now` and that no live pin holds (what a
    /// collection at `now` would delete), and those being deleted.
    async fn collectable_blobs(&self, now: i64) -> StoreResult<Vec<String>>;
    /// How many blobs the database knows and how many bytes they hold (each content once,
    /// unreferenced ones waiting for collection included): one aggregate over the blob table, for
    /// the metrics.
    async fn stored_totals(&self) -> StoreResult<StoredTotals>;
}

/// What the blob store holds, as the database knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredTotals {
    pub blobs: i64,
    pub bytes: i64,
}

#[async_trait]
pub trait StorageStore: Send + Sync {
    async fn entry(&self, space_id: &str, path: &StoragePath) -> StoreResult<Option<StorageEntry>>;
    /// Entries directly inside `dir` (the top level when None) with names after `after`, in byte order.
    async fn list_dir(
        &self,
        space_id: &str,
        dir: Option<&StoragePath>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StorageEntry>>;
    async fn usage(&self, space_id: &str) -> StoreResult<Option<Usage>>;

    /// Reserves `bytes` of the space's quota, atomically with every other reservation; None when
    /// they do not fit.
    async fn reserve(
        &self,
        space_id: &str,
        bytes: i64,
        upload_id: Option<&str>,
        expires_utc: i64,
    ) -> StoreResult<Option<i64>>;
    /// Changes a reservation to `bytes`; false when that does not fit.
    async fn resize_reservation(&self, id: i64, bytes: i64) -> StoreResult<bool>;
    async fn release_reservation(&self, id: i64) -> StoreResult<()>;
    /// Keeps a reservation alive while its upload streams: a reservation is a lease, and one whose
    /// process died expires by itself (no start-up sweep of other processes' work).
    async fn renew_reservation(&self, id: i64) -> StoreResult<()>;

    /// Writes a file (creating missing directories, replacing an existing file), consumes the
    /// reservation, records the event, all in one transaction. Refused with `is-a-directory` or
    /// `under-a-file`.
    async fn put_file(
        &self,
        space_id: &str,
        path: &StoragePath,
        file: &NewStorageFile,
        reservation: Option<i64>,
        upload_id: Option<&str>,
        actor_id: i64,
    ) -> StoreResult<PutOutcome>;
    /// Deletes a file, or a directory tree when `recursive`.
    async fn delete_entry(
        &self,
        space_id: &str,
        path: &StoragePath,
        recursive: bool,
        actor_id: i64,
    ) -> StoreResult<()>;
    /// Moves a file or directory; returns the moved entry.
    async fn move_entry(
        &self,
        space_id: &str,
        from: &StoragePath,
        to: &StoragePath,
        overwrite: bool,
        actor_id: i64,
    ) -> StoreResult<StorageEntry>;

    async fn create_upload(&self, upload: &PendingUpload) -> StoreResult<()>;
    async fn pending_upload(&self, id: &str) -> StoreResult<Option<PendingUpload>>;
    /// The ids of the unfinished, unexpired two-stage uploads to a path, oldest first.
    async fn uploads_at(&self, space_id: &str, path: &StoragePath) -> StoreResult<Vec<String>>;
    /// Marks a pending upload as receiving its bytes (a lease, renewed with its reservation); false
    /// when it is not pending and no other receiver's lease has expired.
    async fn claim_upload(&self, id: &str) -> StoreResult<bool>;
    /// `claim_upload` with a lease of `lease_ms` (work that holds the claim briefly, so that a
    /// dead holder's claim lapses soon), kept alive by `renew_upload_claim`.
    async fn claim_upload_for(&self, id: &str, lease_ms: i64) -> StoreResult<bool>;
    /// Extends the lease of a receiving upload's claim to `lease_ms` from now.
    async fn renew_upload_claim(&self, id: &str, lease_ms: i64) -> StoreResult<()>;
    /// Puts a receiving upload back to pending (its bytes failed), so it can be tried again.
    async fn unclaim_upload(&self, id: &str) -> StoreResult<()>;
    /// Removes expired uploads and expired reservations.
    async fn expire_uploads(&self, now: i64) -> StoreResult<u64>;

    /// The newest events, newest last.
    async fn recent_events(&self, limit: i64) -> StoreResult<Vec<Event>>;
}

/// How an attachment's resumable upload ended once its bytes were whole.
#[derive(Debug, Clone)]
pub struct TusAttachmentDone {
    pub size: i64,
    pub sha256: String,
    /// `ReadyForDownloadFromServerToClient`, or `ChecksumVerificationOnServerSideMismatch` (then
    /// without bytes: no hold, no blob reference).
    pub state: crate::AttachmentState,
    /// What holds the committed blob until the reference is recorded.
    pub hold: Option<BlobHold>,
}

/// Why a resumable upload ends before it is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusEnd {
    /// The client's `DELETE`: its unfinished attachment goes with it.
    Terminate,
    /// Idle past `Upload-Expires`: its unfinished attachment stays as `UploadFromClientToServerFailed`.
    Expire,
}

/// What `end_tus_upload` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TusEnded {
    /// The row is gone: free its bytes.
    Ended(Box<crate::tus::TusUpload>),
    /// No such upload.
    Missing,
    /// A request is writing to it (until the lease given).
    Busy(i64),
    /// Not expired yet (it expires then).
    NotYet(i64),
}

/// Resumable (tus) uploads, SPEC §9.1. The offset, the owner and the expiry live here; the bytes
/// live in the blob store's partial uploads, under the same id.
#[async_trait]
pub trait TusStore: Send + Sync {
    /// Records a new upload with, for an attachment target, its attachment in
    /// `UploadFromClientToServerInProgress` (no bytes and no event yet), and queues its expiry:
    /// one transaction.
    async fn create_tus_upload(
        &self,
        upload: &crate::tus::TusUpload,
        attachment: Option<&NewAttachment>,
        owner_quota: Option<i64>,
    ) -> StoreResult<()>;
    async fn tus_upload(&self, id: &str) -> StoreResult<Option<crate::tus::TusUpload>>;
    /// Takes a receiving, unexpired upload for one request writing at `offset`, until `lease_until`.
    /// An upload whose completion was cut short (its process died) is receiving again once its
    /// hold lapsed: the last chunk can be sent again.
    async fn claim_tus_upload(
        &self,
        id: &str,
        offset: i64,
        lease_until: i64,
        now: i64,
    ) -> StoreResult<crate::tus::TusClaim>;
    /// Extends the hold of the request writing to the upload (a long chunk, a long completion);
    /// false when the upload is not held any more.
    async fn renew_tus_lease(&self, id: &str, lease_until: i64) -> StoreResult<bool>;
    /// Moves a claimed upload's offset from `from` to `to`, its expiry (and expiry job) to
    /// `expires_utc`, and gives it back; false when its offset was not `from`.
    async fn advance_tus_upload(
        &self,
        id: &str,
        from: i64,
        to: i64,
        expires_utc: i64,
    ) -> StoreResult<bool>;
    /// Every byte of a claimed upload arrived: it is `Completing` (its attachment
    /// `ChecksumVerificationOnServerSideInProgress`) while the whole is verified and recorded.
    async fn begin_tus_completion(&self, id: &str) -> StoreResult<()>;
    /// Gives a claimed upload back as it was (a failed chunk or completion): `Receiving` at its
    /// offset, its attachment `UploadFromClientToServerInProgress`.
    async fn release_tus_upload(&self, id: &str) -> StoreResult<()>;
    /// Completes an attachment's upload in one transaction: the attachment's bytes, size, checksum
    /// and state, `Attachment.Created`, and the upload `Done` at its length. (A storage target's
    /// upload is completed by `StorageStore::put_file` given the upload's id.)
    async fn complete_tus_attachment(
        &self,
        id: &str,
        done: &TusAttachmentDone,
    ) -> StoreResult<Attachment>;
    /// Ends an upload that no request is writing to (`Busy` otherwise); with `Expire`, only once
    /// `now` is past its expiry. The row goes; the caller frees the bytes.
    async fn end_tus_upload(&self, id: &str, how: TusEnd, now: i64) -> StoreResult<TusEnded>;
}

/// A registered application. Its settings, state and sealed secrets live in `doc`
/// (`app_model::AppDoc`); the store keeps it whole and versions it against lost updates.
#[derive(Debug, Clone)]
pub struct AppRecord {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    /// The member row the application acts as (author of its messages, owner of its uploads).
    pub bot_member_id: i64,
    pub archived: bool,
    pub doc: crate::app_model::AppDoc,
    pub version: i64,
    pub created_utc: i64,
}

/// A token issued to an application: an OAuth access or refresh token, an authorization code, or a
/// permanent token. `member_id` is set for tokens issued on behalf of a member (the code flow).
#[derive(Debug, Clone)]
pub struct AppToken {
    pub id: i64,
    pub app_id: i64,
    pub kind: String,
    pub name: String,
    pub scope: String,
    pub member_id: Option<i64>,
    pub expires_utc: Option<i64>,
    pub created_utc: i64,
    pub last_used_utc: Option<i64>,
    /// Kind-specific data (an authorization code's redirect URI and PKCE challenge).
    pub data: serde_json::Value,
    /// The application token this one was made with (a permanent token minted with an OAuth access
    /// token): revoking or deleting that one deletes this one. Written at creation; reads leave it
    /// None.
    pub made_with: Option<i64>,
    /// The member who minted it (permanent tokens): revoked with that member's tokens. Written at
    /// creation; reads leave it None.
    pub minted_by: Option<i64>,
}

/// One keyed thing an application owns: a parameter, a key, a right, a webhook, a subscription…
/// `kind` says which, and so the type of `value` (`app_model`, read with `AppItem::get`); `scope`
/// groups them (a profile, a context, a webhook).
#[derive(Debug, Clone)]
pub struct AppItem {
    pub app_id: i64,
    pub kind: crate::app_model::ItemKind,
    pub scope: String,
    pub key: String,
    pub value: serde_json::Value,
    pub created_utc: i64,
    /// Bumped by every write of the item, so that a read-modify-write can check that nobody wrote it
    /// in between (`AppStore::replace_item`). Inserts ignore it: a new item starts at 1 (code that
    /// builds one says 0).
    pub version: i64,
}

impl AppItem {
    /// A new item holding `value` (version 0: the store numbers it).
    pub fn new<T: serde::Serialize>(
        app_id: i64,
        kind: ItemKind,
        scope: impl Into<String>,
        key: impl Into<String>,
        value: &T,
    ) -> AppItem {
        AppItem {
            app_id,
            kind,
            scope: scope.into(),
            key: key.into(),
            value: encode(value),
            created_utc: crate::now_ms(),
            version: 0,
        }
    }

    /// The item's value as the type its kind holds (`app_model::ItemKind`).
    pub fn get<T: serde::de::DeserializeOwned>(&self) -> StoreResult<T> {
        Ok(decode(self.kind, &self.value)?)
    }
}

impl From<DecodeError> for StoreError {
    fn from(e: DecodeError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// An outbox event as the dispatcher reads it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub space_id: Option<String>,
    pub actor_id: Option<i64>,
    pub payload: serde_json::Value,
    pub created_utc: i64,
}

/// A payload waiting to be delivered (or delivered) to an application's endpoint.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable across attempts: receivers deduplicate on it (`webhook-id`).
    pub id: String,
    pub app_id: i64,
    pub webhook_id: Option<String>,
    pub kind: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_utc: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_utc: i64,
}

impl Delivery {
    /// A delivery due now, not attempted yet.
    pub fn pending(
        id: String,
        app_id: i64,
        webhook_id: Option<String>,
        kind: &str,
        body: String,
    ) -> Delivery {
        let now = crate::now_ms();
        Delivery {
            id,
            app_id,
            webhook_id,
            kind: kind.to_string(),
            body,
            status: "pending".into(),
            attempts: 0,
            next_attempt_utc: now,
            last_status: None,
            last_error: None,
            created_utc: now,
        }
    }
}

pub struct AppPage {
    pub apps: Vec<AppRecord>,
    pub total: i64,
}

/// Which applications a listing shows.
#[derive(Debug, Clone, Default)]
pub struct AppFilter {
    /// Those whose name contains this (case-insensitive).
    pub name: Option<String>,
    pub with_archived: bool,
    /// Include the applications that manage themselves (connected, multi-org).
    pub with_managed: bool,
    /// Only those created by one of these members (None: anyone's).
    pub owners: Option<Vec<i64>>,
}

/// Applications: registration, lookup, paging and versioned changes.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates the application and the member it acts as, and queues its first payload (InitPayload,
    /// with its `Deliver` job) if any, in one transaction.
    async fn create_app(
        &self,
        client_id: &str,
        name: &str,
        doc: &crate::app_model::AppDoc,
        first: Option<&Delivery>,
    ) -> StoreResult<AppRecord>;
    async fn app(&self, id: i64) -> StoreResult<Option<AppRecord>>;
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<AppRecord>>;
    async fn app_by_member(&self, member_id: i64) -> StoreResult<Option<AppRecord>>;
    /// A page of the applications `filter` lets through, ordered by name or creation time.
    async fn list_apps(
        &self,
        filter: &AppFilter,
        by_created: bool,
        skip: i64,
        top: i64,
    ) -> StoreResult<AppPage>;
    /// Replaces name, archived flag and doc if the version is still `version`; else `Conflict`.
    async fn update_app(
        &self,
        id: i64,
        version: i64,
        name: &str,
        archived: bool,
        doc: &crate::app_model::AppDoc,
    ) -> StoreResult<AppRecord>;
}

/// Tokens issued to applications: access, refresh, authorization codes, permanent tokens.
#[async_trait]
pub trait AppTokenStore: Send + Sync {
    async fn create_app_token(&self, token: &AppToken, token_hash: &str) -> StoreResult<()>;
    /// The live token with this hash, its application and the member it acts as.
    async fn app_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AppToken, AppRecord, crate::model::Member)>>;
    /// Removes and answers a live single-use token (authorization code, refresh token) of `kind`.
    async fn take_app_token(
        &self,
        token_hash: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<AppToken>>;
    /// Marks an authorization code used and answers it with `true` the first time; a code already
    /// used is answered with `false` (a replay); an unknown or expired one with None.
    async fn use_code(&self, token_hash: &str, now: i64) -> StoreResult<Option<(AppToken, bool)>>;
    /// The same for a refresh token: marked used (kept until it expires, so that a replay is
    /// recognised) and answered with `true` the first time, `false` when already used.
    async fn use_refresh(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(AppToken, bool)>>;
    /// Ends every token issued from the grant (authorization code) `grant_id`.
    async fn revoke_grant(&self, app_id: i64, grant_id: i64) -> StoreResult<u64>;
    async fn list_app_tokens(&self, app_id: i64, kind: &str) -> StoreResult<Vec<AppToken>>;
    async fn update_app_token(&self, token: &AppToken) -> StoreResult<bool>;
    async fn delete_app_token(&self, app_id: i64, token_id: i64) -> StoreResult<bool>;
    /// Ends every token of the application (it was archived).
    async fn delete_app_tokens(&self, app_id: i64) -> StoreResult<()>;
    async fn touch_app_token(&self, token_id: i64, now: i64) -> StoreResult<()>;
}

/// The keyed things an application owns (parameters, rights, keys, webhooks, subscriptions, unfurls).
#[async_trait]
pub trait AppItemStore: Send + Sync {
    /// Inserts or replaces an item (bumping a replaced item's version). With `limit`, a new key is
    /// refused (`limits-reached`) when the (app, kind, scope) group already holds that many: checked
    /// and written in one transaction.
    async fn put_item(&self, item: &AppItem, limit: Option<i64>) -> StoreResult<()>;
    /// Like `put_item`, but `Conflict` when the key exists: checked and written in one transaction.
    async fn insert_item(&self, item: &AppItem, limit: Option<i64>) -> StoreResult<()>;
    /// Replaces the value of an existing item if its version is still `item.version`, bumping the
    /// version (compare-and-set); false when it was written or deleted meanwhile.
    async fn replace_item(&self, item: &AppItem) -> StoreResult<bool>;
    async fn item(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<AppItem>>;
    /// Items of a kind, by key order: of one app (or every app), of one scope (or all), after a key.
    async fn items(
        &self,
        app_id: Option<i64>,
        kind: ItemKind,
        scope: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AppItem>>;
    async fn delete_item(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: &str,
        key: &str,
    ) -> StoreResult<bool>;
    async fn delete_items(
        &self,
        app_id: i64,
        kind: ItemKind,
        scope: Option<&str>,
    ) -> StoreResult<u64>;
}

/// The event outbox as webhooks read it, and the deliveries it produces.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// One outbox event.
    async fn event(&self, id: &str) -> StoreResult<Option<EventRecord>>;
    /// In one transaction: records the deliveries (each with its `Deliver` job) and unfurl items that
    /// an event produced, and marks the event dispatched. Deliveries and items have ids derived from
    /// the event, so dispatching an event twice (a dispatcher that died before finishing its job)
    /// records each once.
    async fn record_dispatch(
        &self,
        event_id: &str,
        deliveries: &[Delivery],
        items: &[AppItem],
    ) -> StoreResult<()>;
    /// Records a delivery and queues its `Deliver` job, in one transaction.
    async fn enqueue_delivery(&self, delivery: &Delivery) -> StoreResult<()>;
    async fn delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;
    async fn finish_delivery(&self, delivery: &Delivery) -> StoreResult<()>;
    async fn deliveries(&self, app_id: i64, kind: Option<&str>) -> StoreResult<Vec<Delivery>>;
    /// Deliveries of every application, newest first, with this status (`pending`, `delivered`,
    /// `failed`) or any, at most `limit`.
    async fn recent_deliveries(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
    /// Puts a failed delivery back to pending with a fresh count of attempts and queues its
    /// `Deliver` job, in one transaction; false when there is no failed delivery with that id.
    async fn retry_delivery(&self, id: &str) -> StoreResult<bool>;
    /// Forgets finished deliveries, unfurl queue items, expired tokens and dispatched events from
    /// before `before`.
    async fn prune_app_data(&self, before: i64) -> StoreResult<u64>;
}

/// Everything the applications platform stores, in one handle.
pub trait Applications: AppStore + AppTokenStore + AppItemStore + OutboxStore {}

impl<T: AppStore + AppTokenStore + AppItemStore + OutboxStore> Applications for T {}
