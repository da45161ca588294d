//! Store tests, each run on a real SQLite file and on a real PostgreSQL database
//! (`testdb::on_every_backend`).

use crate::testdb::{on_every_backend, TestDb, TestStore};
use hangar_core::app_model::{AppDoc, ItemKind};
use hangar_core::app_ops;
use hangar_core::jobs::NewJob;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::store::*;
use hangar_core::AttachmentState;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

on_every_backend!(
    usernames_are_unique,
    blob_references_are_counted_and_the_last_one_queues_a_collection,
    pins_keep_bytes_and_a_blob_being_deleted_cannot_be_pinned,
    a_pin_with_an_object_key_records_the_first_key,
    placed_bytes_are_recorded_under_their_key_and_a_copy_is_discarded,
    uploads_to_a_message_answer_their_linked_rows,
    only_uploads_that_queue_jobs_wake_the_job_runners,
    only_storage_writes_that_queue_jobs_wake_the_job_runners,
    jobs_are_claimed_once_and_taken_over_after_their_lease,
    a_unique_job_is_queued_once,
    links_grant_reading_to_channel_and_project_members,
    changes_record_their_events_in_the_same_transaction,
    events_that_nobody_subscribes_to_queue_no_dispatch,
    reservations_never_exceed_the_quota,
    a_members_attachments_never_exceed_the_owner_quota,
    concurrent_records_are_kept_beside_a_refused_one,
    uploads_made_at_once_are_each_answered_as_if_alone,
    deleting_a_message_or_issue_releases_its_attachments,
    concurrent_item_changes_from_two_stores_are_both_applied,
    an_item_is_replaced_only_at_the_version_it_was_read,
);

/// A fresh database and one handle on it.
async fn store<S: TestStore>() -> (TestDb, S) {
    let db = S::fresh().await;
    let store = S::open(&db).await;
    (db, store)
}

fn new_attachment(uploader: i64, sha: &str) -> NewAttachment {
    NewAttachment {
        id: hangar_core::ids::random_id(),
        uploader_id: uploader,
        file_name: "a.txt".into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: sha.into(),
        state: AttachmentState::ReadyForDownloadFromServerToClient,
        media_context: None,
        stores_blob: true,
        hold: None,
    }
}

async fn usernames_are_unique<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    s.create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let err = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict("member")));
    assert_eq!(s.member_count().await.unwrap(), 1);
}

async fn blob_references_are_counted_and_the_last_one_queues_a_collection<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let sha = "a".repeat(64);
    let a = new_attachment(alice.id, &sha);
    let b = new_attachment(alice.id, &sha);
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    s.create_attachments(std::slice::from_ref(&b), None, None)
        .await
        .unwrap();
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, Some(2));
    s.delete_attachment(a.id).await.unwrap();
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, Some(1));
    assert_eq!(collections(&s).await, 0);
    s.delete_attachment(b.id).await.unwrap();
    // The row stays, at zero, until the collector has deleted the bytes; the job is queued for the
    // end of the grace period (an hour by default), in the same transaction.
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, Some(0));
    assert_eq!(collections(&s).await, 1);
    assert_eq!(s.due_jobs("collect-blob", now_ms()).await.unwrap(), 0);
    let Collect::Later(due) = s.begin_blob_deletion(&sha, now_ms()).await.unwrap() else {
        panic!("the blob is in its grace period");
    };
    assert!(due > now_ms() + 3500 * 1000, "due in an hour, not at {due}");
    assert_eq!(s.due_jobs("collect-blob", due).await.unwrap(), 1);
    assert_eq!(
        s.begin_blob_deletion(&sha, due).await.unwrap(),
        Collect::Delete
    );
    s.finish_blob_deletion(&sha).await.unwrap();
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, None);
    assert!(matches!(
        s.delete_attachment(b.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Blob collections queued (due whenever).
async fn collections<S: TestStore>(s: &S) -> i64 {
    s.due_jobs("collect-blob", i64::MAX).await.unwrap()
}

async fn a_pin_with_an_object_key_records_the_first_key<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let s = s.with_grace(std::time::Duration::ZERO);
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let later = now_ms() + 60_000;
    // New bytes: their row is made with the key, and a second upload of them learns that key.
    let sha = "d".repeat(64);
    assert_eq!(
        s.pin_blob_object("pin-1", &sha, 3, later, "objects/one")
            .await
            .unwrap(),
        PinnedObject::Keyed("objects/one".into())
    );
    assert_eq!(
        s.pin_blob_object("pin-2", &sha, 3, later, "objects/two")
            .await
            .unwrap(),
        PinnedObject::Keyed("objects/one".into())
    );
    assert_eq!(
        s.blob_object_key(&sha).await.unwrap().as_deref(),
        Some("objects/one")
    );
    assert_eq!(
        s.blob_of_object("objects/one").await.unwrap().as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(s.blob_of_object("objects/two").await.unwrap(), None);
    assert_eq!(
        s.begin_blob_deletion(&sha, now_ms()).await.unwrap(),
        Collect::Keep
    );
    // Bytes recorded without a key (the content-addressed layout) stay addressed by their hash.
    let other = "e".repeat(64);
    let a = new_attachment(alice.id, &other);
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.pin_blob_object("pin-3", &other, 3, later, "objects/three")
            .await
            .unwrap(),
        PinnedObject::Addressed
    );
    assert_eq!(s.blob_object_key(&other).await.unwrap(), None);
    s.release_pin("pin-3").await.unwrap();
    // Bytes being deleted cannot be pinned, with or without a key.
    s.delete_attachment(a.id).await.unwrap();
    assert_eq!(
        s.begin_blob_deletion(&other, now_ms()).await.unwrap(),
        Collect::Delete
    );
    assert_eq!(
        s.pin_blob_object("pin-4", &other, 3, later, "objects/four")
            .await
            .unwrap(),
        PinnedObject::Busy
    );
    assert_eq!(s.blob_object_key(&other).await.unwrap(), None);
}

/// The discards queued: the object key of each (claimed, so each is seen once).
async fn discards<S: TestStore>(s: &S) -> Vec<String> {
    let claimed = s
        .claim_jobs("test", 60_000, 100, &["discard-object"], true)
        .await
        .unwrap();
    claimed
        .iter()
        .map(|job| job.payload["object_key"].as_str().unwrap().to_string())
        .collect()
}

/// Bytes placed under a key of their own take no pin: the record writes the key on the blob's new
/// row, on the batched way (a plain upload), the long way (an upload to a message) and a storage
/// write alike; a record of content stored already queues the discard of its copy; a record meeting
/// the blob being deleted is refused (the ingest pipeline records again), and succeeds once the
/// deletion is over, under its own key.
async fn placed_bytes_are_recorded_under_their_key_and_a_copy_is_discarded<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let s = s.with_grace(std::time::Duration::ZERO);
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let placed = |key: &str| Some(BlobHold::Placed(key.to_string()));
    let sha = "d".repeat(64);
    let mut first = new_attachment(alice.id, &sha);
    first.hold = placed("packs/one/4096-3");
    s.create_attachments(std::slice::from_ref(&first), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.blob_object_key(&sha).await.unwrap().as_deref(),
        Some("packs/one/4096-3")
    );
    assert_eq!(
        s.blob_of_object("packs/one/4096-3").await.unwrap(),
        Some(sha.clone())
    );
    assert!(discards(&s).await.is_empty());

    // The same content again, batched and the long way: counted, the row's key kept, each copy
    // queued for its discard.
    let mut again = new_attachment(alice.id, &sha);
    again.hold = placed("packs/two/4096-3");
    s.create_attachments(std::slice::from_ref(&again), None, None)
        .await
        .unwrap();
    let channel = s.create_channel("general", &[alice.id]).await.unwrap();
    let message = s
        .create_message(channel.id, alice.id, "m", &[])
        .await
        .unwrap();
    let mut linked = new_attachment(alice.id, &sha);
    linked.hold = placed("packs/three/4096-3");
    s.create_attachments(std::slice::from_ref(&linked), Some(message.id), None)
        .await
        .unwrap();
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, Some(3));
    assert_eq!(
        s.blob_object_key(&sha).await.unwrap().as_deref(),
        Some("packs/one/4096-3")
    );
    let mut queued = discards(&s).await;
    queued.sort();
    assert_eq!(queued, ["packs/three/4096-3", "packs/two/4096-3"]);

    // A storage write of new content records its key as well.
    s.create_space("sp", "Space", None).await.unwrap();
    let path = hangar_core::storage_path::StoragePath::parse("a.txt").unwrap();
    let other = "e".repeat(64);
    let file = NewStorageFile {
        size: 3,
        content_type: "text/plain".into(),
        sha256: other.clone(),
        meta: None,
        hold: placed("packs/four/4096-3"),
    };
    s.put_file("sp", &path, &file, None, None, alice.id)
        .await
        .unwrap();
    assert_eq!(
        s.blob_object_key(&other).await.unwrap().as_deref(),
        Some("packs/four/4096-3")
    );

    // Being deleted: refused, and recorded under the new key once the deletion is over.
    for a in [first.id, again.id, linked.id] {
        s.delete_attachment(a).await.unwrap();
    }
    assert_eq!(
        s.begin_blob_deletion(&sha, now_ms()).await.unwrap(),
        Collect::Delete
    );
    let mut late = new_attachment(alice.id, &sha);
    late.hold = placed("packs/five/4096-3");
    let refused = s
        .create_attachments(std::slice::from_ref(&late), None, None)
        .await
        .unwrap_err();
    assert!(refused.is_blob_busy(), "{refused:?}");
    s.finish_blob_deletion(&sha).await.unwrap();
    s.create_attachments(std::slice::from_ref(&late), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.blob_object_key(&sha).await.unwrap().as_deref(),
        Some("packs/five/4096-3")
    );
    assert!(discards(&s).await.is_empty());
}

async fn uploads_to_a_message_answer_their_linked_rows<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let channel = s.create_channel("c", &[alice.id]).await.unwrap();
    let msg = s
        .create_message(channel.id, alice.id, "hi", &[])
        .await
        .unwrap();
    let new = [
        new_attachment(alice.id, &"f".repeat(64)),
        new_attachment(alice.id, &"0".repeat(64)),
    ];
    let made = s
        .create_attachments(&new, Some(msg.id), None)
        .await
        .unwrap();
    assert_eq!(
        made.iter().map(|a| a.id).collect::<Vec<_>>(),
        new.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    for a in &made {
        assert_eq!((a.message_id, a.room_id), (Some(msg.id), Some(channel.id)));
        // (No `PartialEq` on `Attachment`: its debug form shows every field.)
        let stored = s.attachment(a.id).await.unwrap().unwrap();
        assert_eq!(format!("{stored:?}"), format!("{a:?}"));
    }
    // Without a message, the rows answered are the ones stored too.
    let alone = new_attachment(alice.id, &"1".repeat(64));
    let made = s
        .create_attachments(std::slice::from_ref(&alone), None, None)
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!((made[0].id, made[0].message_id), (alone.id, None));
    assert_eq!(made[0].sha256.as_deref(), Some("1".repeat(64).as_str()));
    let stored = s.attachment(alone.id).await.unwrap().unwrap();
    assert_eq!(format!("{stored:?}"), format!("{:?}", made[0]));
}

/// A record that queued no job (no previews for its type, no application subscribed to its event)
/// does not wake the job runners, which would look for due jobs after every upload; one that
/// queued a job does.
async fn only_uploads_that_queue_jobs_wake_the_job_runners<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let mut signal = s.job_signal();
    signal.mark_unchanged();
    let mut plain = new_attachment(alice.id, &"2".repeat(64));
    plain.content_type = "application/octet-stream".into();
    s.create_attachments(std::slice::from_ref(&plain), None, None)
        .await
        .unwrap();
    assert!(!signal.has_changed().unwrap());
    assert_eq!(s.due_jobs("make-previews", i64::MAX).await.unwrap(), 0);
    let mut image = new_attachment(alice.id, &"3".repeat(64));
    image.content_type = "image/png".into();
    s.create_attachments(std::slice::from_ref(&image), None, None)
        .await
        .unwrap();
    assert!(signal.has_changed().unwrap());
    assert_eq!(s.due_jobs("make-previews", i64::MAX).await.unwrap(), 1);
}

/// A new file in a space queues nothing when no application subscribes to its event; replacing it
/// queues the collection of the old bytes, and that wakes the job runners.
async fn only_storage_writes_that_queue_jobs_wake_the_job_runners<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let s = s.with_grace(std::time::Duration::ZERO);
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    s.create_space("sp", "Space", None).await.unwrap();
    let path = hangar_core::storage_path::StoragePath::parse("a.txt").unwrap();
    let file = |c: char| NewStorageFile {
        size: 4,
        content_type: "text/plain".into(),
        sha256: c.to_string().repeat(64),
        meta: None,
        hold: None,
    };
    let mut signal = s.job_signal();
    signal.mark_unchanged();
    s.put_file("sp", &path, &file('4'), None, None, alice.id)
        .await
        .unwrap();
    assert!(!signal.has_changed().unwrap());
    assert_eq!(collections(&s).await, 0);
    s.put_file("sp", &path, &file('5'), None, None, alice.id)
        .await
        .unwrap();
    assert!(signal.has_changed().unwrap());
    assert_eq!(collections(&s).await, 1);
}

async fn pins_keep_bytes_and_a_blob_being_deleted_cannot_be_pinned<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let s = s.with_grace(std::time::Duration::ZERO);
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let sha = "b".repeat(64);
    let later = now_ms() + 60_000;
    // An upload pinned the bytes before committing them: the collector keeps them.
    assert!(s.pin_blob("pin-1", &sha, later).await.unwrap());
    assert_eq!(
        s.blob_record(&sha).await.unwrap(),
        BlobRecord {
            refcount: None,
            pinned: true
        }
    );
    assert_eq!(
        s.begin_blob_deletion(&sha, now_ms()).await.unwrap(),
        Collect::Keep
    );
    // Recording the reference drops the pin in the same transaction.
    let mut a = new_attachment(alice.id, &sha);
    a.hold = Some(hangar_core::model::BlobHold::Pin("pin-1".into()));
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    assert_eq!(
        s.blob_record(&sha).await.unwrap(),
        BlobRecord {
            refcount: Some(1),
            pinned: false
        }
    );
    s.delete_attachment(a.id).await.unwrap();
    // The collector decided: from now until it finishes, no upload may pin these bytes.
    assert_eq!(
        s.begin_blob_deletion(&sha, now_ms()).await.unwrap(),
        Collect::Delete
    );
    assert!(!s.pin_blob("pin-2", &sha, later).await.unwrap());
    let mut b = new_attachment(alice.id, &sha);
    b.hold = None;
    assert!(matches!(
        s.create_attachments(std::slice::from_ref(&b), None, None)
            .await,
        Err(StoreError::Refused {
            code: "blob-busy",
            ..
        })
    ));
    s.finish_blob_deletion(&sha).await.unwrap();
    assert!(s.pin_blob("pin-2", &sha, later).await.unwrap());

    // A pin that its upload never used: released at once, or expired later, it queues a collection.
    s.release_pin("pin-2").await.unwrap();
    assert_eq!(collections(&s).await, 1);
    let other = "c".repeat(64);
    assert!(s.pin_blob("pin-3", &other, now_ms() - 1).await.unwrap());
    assert_eq!(s.expire_pins(now_ms()).await.unwrap(), 1);
    assert_eq!(collections(&s).await, 2);
    assert_eq!(
        s.begin_blob_deletion(&other, now_ms()).await.unwrap(),
        Collect::Delete
    );
}

fn numbered_job(n: i64, run_after: i64) -> NewJob {
    NewJob {
        kind: "test".into(),
        payload: serde_json::json!({ "n": n }),
        unique_key: None,
        run_after,
        keep_existing: false,
    }
}

async fn jobs_are_claimed_once_and_taken_over_after_their_lease<S: TestStore>() {
    let (db, s) = store::<S>().await;
    // A second process's view of the same database: its own pool.
    let other = S::open(&db).await;
    let now = now_ms();
    for n in 0..20 {
        s.enqueue(&numbered_job(n, now)).await.unwrap();
    }
    // Two processes claim at once: every job goes to exactly one of them.
    let (a, b) = tokio::join!(
        s.claim_jobs("a", 60_000, 15, &[], false),
        other.claim_jobs("b", 60_000, 15, &[], false)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 20);
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|j| j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no job was claimed twice");
    // Nothing is left to claim while their leases last.
    assert!(s
        .claim_jobs("c", 60_000, 100, &[], false)
        .await
        .unwrap()
        .is_empty());
    for j in &a {
        s.complete_job(j.id, "a").await.unwrap();
    }
    for j in &b {
        other.complete_job(j.id, "b").await.unwrap();
    }
    assert_eq!(s.queue_counts().await.unwrap(), Default::default());

    // A worker whose leases run out (it died) loses its jobs to the next claim, and its late
    // completion or renewal is void.
    for n in 0..5 {
        s.enqueue(&numbered_job(n, now)).await.unwrap();
    }
    let dead = other.claim_jobs("dead", -1, 100, &[], false).await.unwrap();
    assert_eq!(dead.len(), 5);
    let taken = s.claim_jobs("c", 60_000, 100, &[], false).await.unwrap();
    assert_eq!(taken.len(), 5);
    assert!(taken.iter().all(|j| j.attempts == 2));
    for j in &dead {
        other.complete_job(j.id, "dead").await.unwrap();
        assert!(!other
            .extend_lease(j.id, "dead", now_ms() + 1000)
            .await
            .unwrap());
    }
    assert_eq!(s.queue_counts().await.unwrap().running, 5);
    let later = now_ms();
    // A failure puts a job back for later; giving up keeps it, as failed.
    let (first, rest) = taken.split_first().unwrap();
    s.retry_job(first.id, "c", later + 5000, "boom", false)
        .await
        .unwrap();
    for j in rest {
        s.retry_job(j.id, "c", later, "boom", true).await.unwrap();
    }
    let counts = s.queue_counts().await.unwrap();
    assert_eq!((counts.queued, counts.failed), (1, rest.len() as i64));
    assert_eq!(s.next_due().await.unwrap(), Some(later + 5000));
}

async fn a_unique_job_is_queued_once<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let job = |at: i64| NewJob {
        kind: "chore".into(),
        payload: serde_json::json!({}),
        unique_key: Some("chore".into()),
        run_after: at,
        keep_existing: false,
    };
    s.enqueue(&job(100)).await.unwrap();
    s.enqueue(&job(50)).await.unwrap();
    assert_eq!(s.queue_counts().await.unwrap().queued, 1);
    assert_eq!(s.next_due().await.unwrap(), Some(100));
    // Re-queued while it runs (a chore scheduling its next run): the completion leaves it queued.
    let claimed = s.claim_jobs("w", 60_000, 10, &[], false).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.enqueue(&job(5000)).await.unwrap();
    s.complete_job(claimed[0].id, "w").await.unwrap();
    assert_eq!(s.queue_counts().await.unwrap().queued, 1);
    assert_eq!(s.next_due().await.unwrap(), Some(5000));
    // "If absent" leaves the queued one where it is.
    s.enqueue(&job(1).if_absent()).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(5000));
}

async fn links_grant_reading_to_channel_and_project_members<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let bob = s
        .create_member("bob", "h", "B", Role::Member)
        .await
        .unwrap();
    let carol = s
        .create_member("carol", "h", "C", Role::Member)
        .await
        .unwrap();
    let a = new_attachment(alice.id, &"b".repeat(64));
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    assert!(!s.readable_through_links(a.id, bob.id).await.unwrap());
    let channel = s
        .create_channel("general", &[alice.id, bob.id])
        .await
        .unwrap();
    let link = AttachmentLink {
        attachment_id: a.id,
        class_name: "FileAttachment".into(),
        details: Default::default(),
    };
    let msg = s
        .create_message(channel.id, alice.id, "hi", std::slice::from_ref(&link))
        .await
        .unwrap();
    assert_eq!(msg.attachments.len(), 1);
    assert!(s.readable_through_links(a.id, bob.id).await.unwrap());
    assert!(!s.readable_through_links(a.id, carol.id).await.unwrap());
    let stored = s.attachment(a.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.message_id, stored.room_id),
        (Some(msg.id), Some(channel.id))
    );
    let project = s.create_project("P", "Project", &[carol.id]).await.unwrap();
    let issue = s
        .create_issue(project.id, carol.id, "t", "Open", &[link])
        .await
        .unwrap();
    assert_eq!(issue.number, 1);
    assert_eq!(issue.key(), "P-T-1");
    assert!(s.readable_through_links(a.id, carol.id).await.unwrap());
    let second = s
        .create_issue(project.id, carol.id, "t2", "Open", &[])
        .await
        .unwrap();
    assert_eq!(second.number, 2);
    // Projects are listed to their members; without a member, all of them.
    let keys = |projects: Vec<Project>| projects.into_iter().map(|p| p.key).collect::<Vec<_>>();
    assert_eq!(keys(s.list_projects(Some(carol.id)).await.unwrap()), ["P"]);
    assert!(s.list_projects(Some(alice.id)).await.unwrap().is_empty());
    assert_eq!(keys(s.list_projects(None).await.unwrap()), ["P"]);
}

async fn changes_record_their_events_in_the_same_transaction<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let a = new_attachment(alice.id, &"c".repeat(64));
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    let channel = s.create_channel("c", &[alice.id]).await.unwrap();
    s.create_message(channel.id, alice.id, "hi", &[])
        .await
        .unwrap();
    let project = s.create_project("P", "P", &[alice.id]).await.unwrap();
    let issue = s
        .create_issue(project.id, alice.id, "t", "Open", &[])
        .await
        .unwrap();
    s.add_issue_attachments(issue.id, &[]).await.unwrap();
    s.delete_attachment(a.id).await.unwrap();
    let kinds: Vec<String> = s
        .recent_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        [
            "Attachment.Created",
            "ChatMessage.Created",
            "Issue.Created",
            "Issue.Updated",
            "Attachment.Deleted"
        ]
    );
}

/// An event is dispatched by a job only when an application could receive it: while no
/// subscription exists, uploads queue no `dispatch-event` job (and their events count as
/// dispatched); a new chat message always does (its links may be unfurled). An upload that queued
/// its event's dispatch wakes the job runners.
async fn events_that_nobody_subscribes_to_queue_no_dispatch<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let later = now_ms() + 60_000;
    let a = new_attachment(alice.id, &"d".repeat(64));
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    assert_eq!(s.due_jobs("dispatch-event", later).await.unwrap(), 0);
    let channel = s.create_channel("c", &[alice.id]).await.unwrap();
    s.create_message(channel.id, alice.id, "hi", &[])
        .await
        .unwrap();
    assert_eq!(s.due_jobs("dispatch-event", later).await.unwrap(), 1);
    let app = s
        .create_app("c1", "App", &AppDoc::default(), None)
        .await
        .unwrap();
    let subscription = AppItem::new(app.id, ItemKind::Subscription, "w", "s", &json!({}));
    s.put_item(&subscription, None).await.unwrap();
    let mut signal = s.job_signal();
    signal.mark_unchanged();
    let b = new_attachment(alice.id, &"e".repeat(64));
    let answered = s
        .create_attachments(std::slice::from_ref(&b), None, None)
        .await
        .unwrap();
    assert_eq!(s.due_jobs("dispatch-event", later).await.unwrap(), 2);
    // The job runners were told, and the answer is the row as stored.
    assert!(signal.has_changed().unwrap());
    let stored = s.attachment(b.id).await.unwrap().unwrap();
    assert_eq!(format!("{answered:?}"), format!("{:?}", [stored]));
    assert_eq!(answered[0].file_name, "a.txt");
    // Every event is still in the outbox, in order.
    let kinds: Vec<String> = s
        .recent_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        [
            "Attachment.Created",
            "ChatMessage.Created",
            "Attachment.Created"
        ]
    );
}

async fn reservations_never_exceed_the_quota<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    s.create_space("sp", "Space", Some(100)).await.unwrap();
    let far = hangar_core::now_ms() + 60_000;
    let first = s.reserve("sp", 60, None, far).await.unwrap().expect("fits");
    assert_eq!(s.reserve("sp", 41, None, far).await.unwrap(), None);
    let second = s
        .reserve("sp", 40, None, far)
        .await
        .unwrap()
        .expect("fits exactly");
    assert!(!s.resize_reservation(second, 41).await.unwrap());
    s.release_reservation(first).await.unwrap();
    assert!(s.resize_reservation(second, 100).await.unwrap());
    let usage = s.usage("sp").await.unwrap().unwrap();
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes, usage.quota_bytes),
        (0, 100, Some(100))
    );
}

/// Twenty uploads of 10 bytes from two stores (two nodes) against a quota of 95: exactly nine fit,
/// whatever the interleaving, and what is counted is what was kept.
async fn a_members_attachments_never_exceed_the_owner_quota<S: TestStore>() {
    let (db, a) = store::<S>().await;
    let b = S::open(&db).await;
    let alice = a
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut new = new_attachment(alice.id, &format!("{i:064x}"));
        new.size = 10;
        tasks.push(tokio::spawn(async move {
            store.create_attachments(&[new], None, Some(95)).await
        }));
    }
    let mut kept = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => kept += 1,
            Err(StoreError::Refused { code, .. }) => assert_eq!(code, "limits-reached"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(kept, 9);
    assert_eq!(a.member_usage(alice.id).await.unwrap(), 90);
    // A resumable upload under way counts at its declared length; a failed checksum counts nothing.
    let mut mismatch = new_attachment(alice.id, &"f".repeat(64));
    mismatch.stores_blob = false;
    mismatch.state = AttachmentState::ChecksumVerificationOnServerSideMismatch;
    a.create_attachments(&[mismatch], None, Some(95))
        .await
        .unwrap();
    assert_eq!(b.member_usage(alice.id).await.unwrap(), 90);
}

/// Many uploads recorded at once (on SQLite, in one group commit) while some are refused (their
/// message does not exist): every other one is recorded with its pin dropped, no refused one is.
async fn concurrent_records_are_kept_beside_a_refused_one<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = s.clone();
        let mut new = new_attachment(alice.id, &format!("{:064x}", i % 7));
        let pin = format!("pin-{i}");
        assert!(store
            .pin_blob(&pin, &new.sha256, now_ms() + 60_000)
            .await
            .unwrap());
        new.hold = Some(hangar_core::model::BlobHold::Pin(pin));
        let message = (i % 10 == 3).then_some(-1);
        tasks.push(tokio::spawn(async move {
            let id = new.id;
            (
                id,
                message,
                store.create_attachments(&[new], message, None).await,
            )
        }));
    }
    for t in tasks {
        let (id, message, recorded) = t.await.unwrap();
        match (message, recorded) {
            (None, Ok(a)) => assert_eq!(a[0].id, id),
            (Some(_), Err(StoreError::NotFound(what))) => assert_eq!(what, "message"),
            (m, r) => panic!("message {m:?}: unexpected {r:?}"),
        }
        let kept = s.attachment(id).await.unwrap().is_some();
        assert_eq!(kept, message.is_none());
    }
    // 36 references over 7 blobs; the refused uploads' pins are theirs to release.
    let mut refs = 0;
    for i in 0..7 {
        let record = s.blob_record(&format!("{i:064x}")).await.unwrap();
        refs += record.refcount.unwrap_or(0);
    }
    assert_eq!(refs, 36);
}

/// Many pins and plain uploads at once (which PostgreSQL gathers into batches of one statement):
/// each is answered with its own row, the same bytes uploaded several times count once per upload,
/// and an upload the database refuses (its blob being deleted, its uploader unknown) fails alone.
async fn uploads_made_at_once_are_each_answered_as_if_alone<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let s = s.with_grace(std::time::Duration::ZERO);
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    // A blob the collector has decided to delete: it can be neither pinned nor referenced.
    let doomed = "d".repeat(64);
    assert!(s
        .pin_blob("doomed", &doomed, now_ms() + 60_000)
        .await
        .unwrap());
    s.release_pin("doomed").await.unwrap();
    assert_eq!(
        s.begin_blob_deletion(&doomed, now_ms()).await.unwrap(),
        Collect::Delete
    );
    let later = now_ms() + 60_000;
    let sha = |i: usize| match i {
        7 | 19 => doomed.clone(),
        i => format!("{:064x}", i % 11),
    };
    let pins: Vec<_> = (0..48)
        .map(|i| {
            let (store, sha) = (s.clone(), sha(i));
            tokio::spawn(async move { store.pin_blob(&format!("pin-{i}"), &sha, later).await })
        })
        .collect();
    let mut pinned = Vec::new();
    for pin in pins {
        pinned.push(pin.await.unwrap().unwrap());
    }
    for (i, pinned) in pinned.iter().enumerate() {
        assert_eq!(*pinned, sha(i) != doomed, "pin {i}");
    }
    let uploads: Vec<_> = (0..48)
        .map(|i| {
            let store = s.clone();
            let mut new = new_attachment(alice.id, &sha(i));
            new.file_name = format!("file-{i}.txt");
            new.hold = pinned[i].then(|| hangar_core::model::BlobHold::Pin(format!("pin-{i}")));
            if i == 30 {
                new.uploader_id = alice.id + 1000;
            }
            tokio::spawn(
                async move { (new.id, store.create_attachments(&[new], None, None).await) },
            )
        })
        .collect();
    let mut refs = std::collections::HashMap::<String, i64>::new();
    for (i, upload) in uploads.into_iter().enumerate() {
        let (id, recorded) = upload.await.unwrap();
        match i {
            7 | 19 => assert!(
                matches!(
                    &recorded,
                    Err(StoreError::Refused {
                        code: "blob-busy",
                        ..
                    })
                ),
                "upload {i}: {recorded:?}"
            ),
            30 => assert!(recorded.is_err(), "upload {i}: {recorded:?}"),
            _ => {
                let rows = recorded.unwrap_or_else(|e| panic!("upload {i}: {e:?}"));
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].id, id);
                assert_eq!(rows[0].file_name, format!("file-{i}.txt"));
                assert_eq!(rows[0].sha256.as_deref(), Some(sha(i).as_str()));
                *refs.entry(sha(i)).or_default() += 1;
            }
        }
        assert_eq!(
            s.attachment(id).await.unwrap().is_some(),
            !matches!(i, 7 | 19 | 30)
        );
    }
    for (sha, count) in &refs {
        assert_eq!(
            s.blob_record(sha).await.unwrap(),
            BlobRecord {
                refcount: Some(*count),
                // Upload 30's pin stays (its upload was refused: releasing it is its caller's).
                pinned: *sha == format!("{:064x}", 30 % 11),
            },
            "blob {sha}"
        );
    }
    assert_eq!(refs.values().sum::<i64>(), 45);
}

async fn deleting_a_message_or_issue_releases_its_attachments<S: TestStore>() {
    let (_d, s) = store::<S>().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let (a, b) = (
        new_attachment(alice.id, &"1".repeat(64)),
        new_attachment(alice.id, &"2".repeat(64)),
    );
    s.create_attachments(&[a.clone(), b.clone()], None, None)
        .await
        .unwrap();
    let link = |id| AttachmentLink {
        attachment_id: id,
        class_name: "FileAttachment".into(),
        details: Default::default(),
    };
    let channel = s.create_channel("c", &[alice.id]).await.unwrap();
    let msg = s
        .create_message(channel.id, alice.id, "hi", &[link(a.id), link(b.id)])
        .await
        .unwrap();
    let project = s.create_project("P", "P", &[alice.id]).await.unwrap();
    let issue = s
        .create_issue(project.id, alice.id, "t", "Open", &[link(b.id)])
        .await
        .unwrap();
    assert_eq!(issue.author_id, Some(alice.id));
    let far = now_ms() + 60_000;
    assert!(s.unattached_before(far, 10).await.unwrap().is_empty());

    s.delete_message(msg.id).await.unwrap();
    assert!(s.message(msg.id).await.unwrap().is_none());
    // `a` lost its only link; `b` still belongs to the issue.
    assert_eq!(s.unattached_before(far, 10).await.unwrap(), vec![a.id]);
    let released = s.attachment(a.id).await.unwrap().expect("kept");
    assert_eq!((released.message_id, released.room_id), (None, None));
    // The TTL counts from the release, not from the upload.
    let before = now_ms() - 1;
    assert!(s
        .unattached_before(before - 60_000, 10)
        .await
        .unwrap()
        .is_empty());

    s.delete_issue(issue.id).await.unwrap();
    assert!(s.issue_by_id(issue.id).await.unwrap().is_none());
    let mut both = vec![a.id, b.id];
    both.sort();
    assert_eq!(s.unattached_before(far, 10).await.unwrap(), both);
    assert!(matches!(
        s.delete_message(msg.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_issue(issue.id).await,
        Err(StoreError::NotFound(_))
    ));
    let kinds: Vec<String> = s
        .recent_events(2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(
        kinds.contains(&"ChatMessage.Deleted".to_string()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"Issue.Deleted".to_string()), "{kinds:?}");
}

/// Appends `entry` to the JSON array of one application item through `app_ops::modify_item`. On its
/// first attempt it waits (at most 10 s) until `arrived` counts both racers, so that both have read
/// the same version and one of them must lose; `calls` counts the attempts of both.
async fn append_racing<S: TestStore>(
    store: S,
    app_id: i64,
    entry: &'static str,
    arrived: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
) -> AppItem {
    let first = AtomicBool::new(true);
    // The store keeps any value: a list of strings stands for any item here.
    let kind = ItemKind::Parameter;
    let item = app_ops::modify_item(
        &store,
        app_id,
        kind,
        "",
        "k",
        |current: Option<Vec<String>>| {
            calls.fetch_add(1, SeqCst);
            if first.swap(false, SeqCst) {
                arrived.fetch_add(1, SeqCst);
                tokio::task::block_in_place(|| {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while arrived.load(SeqCst) < 2 && std::time::Instant::now() < until {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                });
            }
            let mut list = current.unwrap_or_default();
            list.push(entry.to_string());
            Ok::<_, StoreError>(Some(list))
        },
    )
    .await
    .unwrap();
    item.expect("written")
}

/// Two processes (two stores on one file) changing the same item at once: the loser of each race
/// retries on the winner's version, so both changes are kept, whether the item existed or not.
async fn concurrent_item_changes_from_two_stores_are_both_applied<S: TestStore>() {
    let (db, a) = store::<S>().await;
    let b = S::open(&db).await;
    let app = a
        .create_app("c1", "App", &AppDoc::default(), None)
        .await
        .unwrap();
    for (round, [x, y]) in [["a", "b"], ["c", "d"]].into_iter().enumerate() {
        let (arrived, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let first = tokio::spawn(append_racing(
            a.clone(),
            app.id,
            x,
            arrived.clone(),
            calls.clone(),
        ));
        let second = tokio::spawn(append_racing(
            b.clone(),
            app.id,
            y,
            arrived.clone(),
            calls.clone(),
        ));
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        // Both read the same version, one lost and was applied again: three attempts in all.
        assert_eq!(calls.load(SeqCst), 3, "round {round}");
        assert_eq!(first.version.max(second.version), 2 * round as i64 + 2);
        let stored = b
            .item(app.id, ItemKind::Parameter, "", "k")
            .await
            .unwrap()
            .unwrap();
        let mut entries: Vec<&str> = stored
            .value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        entries.sort();
        let expected: &[&str] = if round == 0 {
            &["a", "b"]
        } else {
            &["a", "b", "c", "d"]
        };
        assert_eq!(entries, expected);
        assert_eq!(stored.version, 2 * round as i64 + 2);
    }
}

async fn an_item_is_replaced_only_at_the_version_it_was_read<S: TestStore>() {
    let (db, a) = store::<S>().await;
    let b = S::open(&db).await;
    let app = a
        .create_app("c1", "App", &AppDoc::default(), None)
        .await
        .unwrap();
    let new = AppItem {
        app_id: app.id,
        kind: ItemKind::Webhook,
        scope: String::new(),
        key: "w".into(),
        value: json!({"n": 0}),
        created_utc: now_ms(),
        // Ignored: a new item starts at version 1.
        version: 42,
    };
    a.insert_item(&new, None).await.unwrap();
    let read = a
        .item(app.id, ItemKind::Webhook, "", "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.version, 1);

    let fresh = AppItem {
        value: json!({"n": 1}),
        ..read.clone()
    };
    assert!(b.replace_item(&fresh).await.unwrap());
    let stale = AppItem {
        value: json!({"n": 2}),
        ..read.clone()
    };
    assert!(!a.replace_item(&stale).await.unwrap(), "a stale version");
    let stored = a
        .item(app.id, ItemKind::Webhook, "", "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.value, stored.version), (json!({"n": 1}), 2));

    // An upsert bumps the version too, so a change read before it is refused as well.
    let upsert = AppItem {
        value: json!({"n": 3}),
        ..read.clone()
    };
    a.put_item(&upsert, None).await.unwrap();
    let after_put = a
        .item(app.id, ItemKind::Webhook, "", "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((after_put.value, after_put.version), (json!({"n": 3}), 3));
    let read_before_put = AppItem {
        value: json!({"n": 4}),
        version: 2,
        ..read.clone()
    };
    assert!(!b.replace_item(&read_before_put).await.unwrap());
    assert!(matches!(
        b.insert_item(&new, None).await,
        Err(StoreError::Conflict(_))
    ));

    // Nor is an item deleted meanwhile brought back.
    assert!(a
        .delete_item(app.id, ItemKind::Webhook, "", "w")
        .await
        .unwrap());
    let gone = AppItem { version: 3, ..read };
    assert!(!b.replace_item(&gone).await.unwrap());
    assert!(a
        .item(app.id, ItemKind::Webhook, "", "w")
        .await
        .unwrap()
        .is_none());
}
