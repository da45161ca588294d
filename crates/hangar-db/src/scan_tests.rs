//! Scan states on every backend (SPEC §9.6): one state per blob, queued with the first file that
//! holds new bytes, a quarantine event for every file of infected bytes (those stored later too),
//! failed scans queued again by a new upload, and the backlog of bytes stored while scanning was off.

use crate::testdb::{on_every_backend, TestStore};
use hangar_core::jobs::{JobKind, ScanBlob};
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::scan::{ScanState, ScanVerdict};
use hangar_core::storage_path::StoragePath;
use hangar_core::AttachmentState;

on_every_backend!(
    scan_states_belong_to_blobs_and_infected_bytes_quarantine_every_file,
    failed_scans_run_again_and_bytes_stored_unscanned_are_queued_later,
);

fn file(sha: char) -> NewStorageFile {
    NewStorageFile {
        size: 4,
        content_type: "text/plain".into(),
        sha256: sha.to_string().repeat(64),
        meta: None,
        hold: None,
    }
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

async fn put<S: TestStore>(s: &S, p: &str, c: char, actor: i64) {
    s.put_file(
        "sp",
        &StoragePath::parse(p).unwrap(),
        &file(c),
        None,
        None,
        actor,
    )
    .await
    .unwrap();
}

async fn state<S: TestStore>(s: &S, c: char) -> Option<ScanState> {
    s.blob_scan(&sha(c)).await.unwrap().and_then(|b| b.state)
}

async fn quarantines<S: TestStore>(s: &S) -> Vec<Event> {
    s.recent_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type.ends_with(".Quarantined"))
        .collect()
}

async fn scans_due<S: TestStore>(s: &S) -> i64 {
    s.due_jobs(ScanBlob::KIND, now_ms() + 1000).await.unwrap()
}

async fn scan_states_belong_to_blobs_and_infected_bytes_quarantine_every_file<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await.scanning();
    let me = s.create_member("m", "h", "M", Role::Admin).await.unwrap();
    s.create_space("sp", "Space", None).await.unwrap();
    // Two files and an attachment of the same new bytes: one pending blob, one queued scan.
    put(&s, "a.txt", 'a', me.id).await;
    put(&s, "b.txt", 'a', me.id).await;
    let attachment = NewAttachment {
        id: hangar_core::ids::random_id(),
        uploader_id: me.id,
        file_name: "a.com".into(),
        content_type: "text/plain".into(),
        size: 4,
        sha256: sha('a'),
        state: AttachmentState::ReadyForDownloadFromServerToClient,
        media_context: None,
        stores_blob: true,
        hold: None,
    };
    s.create_attachments(std::slice::from_ref(&attachment), None, None)
        .await
        .unwrap();
    assert_eq!(state(&s, 'a').await, Some(ScanState::Pending));
    assert_eq!(scans_due(&s).await, 1);
    assert!(quarantines(&s).await.is_empty());

    // Infected: every file holding the bytes is quarantined, once.
    let found = ScanVerdict::Infected("Test.Sig".into());
    assert!(s.record_scan(&sha('a'), &found).await.unwrap());
    assert!(!s.record_scan(&sha('a'), &found).await.unwrap());
    let events = quarantines(&s).await;
    let mut kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Attachment.Quarantined",
            "StorageFile.Quarantined",
            "StorageFile.Quarantined"
        ]
    );
    let on_attachment = events
        .iter()
        .find(|e| e.event_type == "Attachment.Quarantined")
        .unwrap();
    assert_eq!(on_attachment.payload["attachmentId"], attachment.id);
    assert_eq!(on_attachment.payload["signature"], "Test.Sig");
    let scan = s.blob_scan(&sha('a')).await.unwrap().unwrap();
    assert_eq!(scan.state, Some(ScanState::Infected));
    assert_eq!(scan.detail.as_deref(), Some("Test.Sig"));

    // A file stored later with those bytes is quarantined from its first moment, with no new scan.
    put(&s, "c.txt", 'a', me.id).await;
    let events = quarantines(&s).await;
    assert_eq!(events.len(), 4);
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "StorageFile.Quarantined");
    assert_eq!(last.payload["path"], "c.txt");
    assert_eq!(last.space_id.as_deref(), Some("sp"));
    assert_eq!(state(&s, 'a').await, Some(ScanState::Infected));

    // Clean bytes: nothing is announced, and a second file of them needs no scan.
    put(&s, "d.txt", 'd', me.id).await;
    assert!(s.record_scan(&sha('d'), &ScanVerdict::Clean).await.unwrap());
    put(&s, "e.txt", 'd', me.id).await;
    assert_eq!(state(&s, 'd').await, Some(ScanState::Clean));
    assert_eq!(quarantines(&s).await.len(), 4);
}

async fn failed_scans_run_again_and_bytes_stored_unscanned_are_queued_later<S: TestStore>() {
    let db = S::fresh().await;
    let plain = S::open(&db).await;
    let s = S::open(&db).await.scanning();
    let me = s.create_member("m", "h", "M", Role::Admin).await.unwrap();
    s.create_space("sp", "Space", None).await.unwrap();

    // A failed scan (too large for clamd) is queued again by the next upload of those bytes.
    put(&s, "big.bin", 'b', me.id).await;
    let failed = ScanVerdict::Failed("too large".into());
    assert!(s.record_scan(&sha('b'), &failed).await.unwrap());
    assert_eq!(state(&s, 'b').await, Some(ScanState::Failed));
    put(&s, "big2.bin", 'b', me.id).await;
    assert_eq!(state(&s, 'b').await, Some(ScanState::Pending));
    // Or by the operator, for every failed scan at once.
    assert!(s.record_scan(&sha('b'), &failed).await.unwrap());
    assert_eq!(s.retry_failed_scans().await.unwrap(), vec![sha('b')]);
    assert_eq!(s.retry_failed_scans().await.unwrap(), Vec::<String>::new());
    let retried = s.blob_scan(&sha('b')).await.unwrap().unwrap();
    assert_eq!(
        (retried.state, retried.detail),
        (Some(ScanState::Pending), None)
    );

    // Bytes stored while scanning was off have no state until the backlog queues them.
    put(&plain, "old1.txt", '1', me.id).await;
    put(&plain, "old2.txt", '2', me.id).await;
    assert_eq!(state(&s, '1').await, None);
    assert_eq!(s.queue_unscanned(1).await.unwrap(), 1);
    assert_eq!(s.queue_unscanned(10).await.unwrap(), 1);
    assert_eq!(s.queue_unscanned(10).await.unwrap(), 0);
    assert_eq!(state(&s, '1').await, Some(ScanState::Pending));
    assert_eq!(state(&s, '2').await, Some(ScanState::Pending));
    // 'b' (queued again) and the two old blobs.
    assert_eq!(scans_due(&s).await, 3);
    // A verdict on bytes nobody holds any more records nothing.
    assert!(!s.record_scan(&sha('z'), &ScanVerdict::Clean).await.unwrap());
}
