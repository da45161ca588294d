//! Resumable (tus) uploads in the store, on every backend: claims by offset, leases, completion of
//! an attachment with its event, termination and expiry.

use crate::testdb::{on_every_backend, TestStore};
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::*;
use hangar_core::tus::{TusClaim, TusState, TusTarget, TusUpload};
use hangar_core::AttachmentState;

on_every_backend!(
    a_tus_upload_moves_by_claimed_offsets_and_completes_its_attachment,
    tus_uploads_end_by_termination_expiry_and_their_storage_file,
);

fn upload(id: &str, owner: i64, target: TusTarget, expires_utc: i64) -> TusUpload {
    TusUpload {
        id: id.into(),
        owner_id: owner,
        length: 10,
        offset: 0,
        metadata: "filename YS50eHQ=".into(),
        file_name: "a.txt".into(),
        content_type: "text/plain".into(),
        target,
        declared_sha256: None,
        state: TusState::Receiving,
        lease_until: None,
        expires_utc,
        created_utc: now_ms(),
    }
}

fn in_progress(id: i64, owner: i64) -> NewAttachment {
    NewAttachment {
        id,
        uploader_id: owner,
        file_name: "a.txt".into(),
        content_type: "text/plain".into(),
        size: 10,
        sha256: String::new(),
        state: AttachmentState::UploadFromClientToServerInProgress,
        media_context: None,
        stores_blob: false,
        hold: None,
    }
}

async fn a_tus_upload_moves_by_claimed_offsets_and_completes_its_attachment<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let node_b = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let now = now_ms();
    let id = "00112233445566778899aabbccddeeff";
    let target = TusTarget::Attachment { attachment_id: 77 };
    let new = upload(id, me.id, target, now + 60_000);
    s.create_tus_upload(&new, Some(&in_progress(77, me.id)), None)
        .await
        .unwrap();
    assert_eq!(s.tus_upload(id).await.unwrap().unwrap(), new);
    let a = s.attachment(77).await.unwrap().unwrap();
    assert_eq!(a.state, AttachmentState::UploadFromClientToServerInProgress);
    assert_eq!(a.sha256, None);

    // One writer at a time, at the upload's offset, from any node.
    assert_eq!(
        s.claim_tus_upload(id, 0, now + 5_000, now).await.unwrap(),
        TusClaim::Claimed
    );
    assert_eq!(
        node_b
            .claim_tus_upload(id, 0, now + 5_000, now)
            .await
            .unwrap(),
        TusClaim::Busy
    );
    // A lease that ran out is taken over.
    assert_eq!(
        node_b
            .claim_tus_upload(id, 0, now + 20_000, now + 6_000)
            .await
            .unwrap(),
        TusClaim::Claimed
    );
    assert!(!node_b
        .advance_tus_upload(id, 3, 6, now + 70_000)
        .await
        .unwrap());
    assert!(node_b
        .advance_tus_upload(id, 0, 6, now + 70_000)
        .await
        .unwrap());
    let moved = s.tus_upload(id).await.unwrap().unwrap();
    assert_eq!(
        (moved.offset, moved.lease_until, moved.expires_utc),
        (6, None, now + 70_000)
    );
    assert_eq!(
        s.claim_tus_upload(id, 0, now + 5_000, now).await.unwrap(),
        TusClaim::WrongOffset(6)
    );
    // A refused chunk gives the upload back as it was.
    assert_eq!(
        s.claim_tus_upload(id, 6, now + 5_000, now).await.unwrap(),
        TusClaim::Claimed
    );
    s.release_tus_upload(id).await.unwrap();
    // A completion cut short (its process died): once the hold lapses, the last chunk comes again.
    assert_eq!(
        s.claim_tus_upload(id, 6, now + 5_000, now).await.unwrap(),
        TusClaim::Claimed
    );
    assert!(s.renew_tus_lease(id, now + 8_000).await.unwrap());
    s.begin_tus_completion(id).await.unwrap();
    assert_eq!(
        node_b
            .claim_tus_upload(id, 6, now + 9_000, now + 7_000)
            .await
            .unwrap(),
        TusClaim::Busy
    );
    assert_eq!(
        node_b
            .claim_tus_upload(id, 6, now + 9_000, now + 8_000)
            .await
            .unwrap(),
        TusClaim::Claimed
    );
    assert_eq!(
        s.attachment(77).await.unwrap().unwrap().state,
        AttachmentState::UploadFromClientToServerInProgress
    );
    assert_eq!(
        s.tus_upload(id).await.unwrap().unwrap().state,
        TusState::Receiving
    );
    // The last chunk: completing, then the attachment gets its bytes and its event.
    s.begin_tus_completion(id).await.unwrap();
    assert_eq!(
        s.attachment(77).await.unwrap().unwrap().state,
        AttachmentState::ChecksumVerificationOnServerSideInProgress
    );
    let sha = "c".repeat(64);
    let pin = "pin-1";
    assert!(s.pin_blob(pin, &sha, now + 60_000).await.unwrap());
    let done = TusAttachmentDone {
        size: 10,
        sha256: sha.clone(),
        state: AttachmentState::ReadyForDownloadFromServerToClient,
        hold: Some(hangar_core::model::BlobHold::Pin(pin.into())),
    };
    let a = s.complete_tus_attachment(id, &done).await.unwrap();
    assert_eq!(a.state, AttachmentState::ReadyForDownloadFromServerToClient);
    assert_eq!((a.size, a.sha256.as_deref()), (10, Some(sha.as_str())));
    assert_eq!(s.blob_record(&sha).await.unwrap().refcount, Some(1));
    let finished = s.tus_upload(id).await.unwrap().unwrap();
    assert_eq!((finished.state, finished.offset), (TusState::Done, 10));
    assert_eq!(
        s.claim_tus_upload(id, 10, now + 5_000, now).await.unwrap(),
        TusClaim::NotReceiving
    );
    assert!(s.complete_tus_attachment(id, &done).await.is_err());
    assert!(!s.renew_tus_lease(id, now + 5_000).await.unwrap());
    let events = s.recent_events(10).await.unwrap();
    assert!(events.iter().any(|e| e.event_type == "Attachment.Created"));
}

async fn tus_uploads_end_by_termination_expiry_and_their_storage_file<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let now = now_ms();
    // Termination takes the unfinished attachment with it; a writer holds it off.
    let gone = "10112233445566778899aabbccddeeff";
    let target = TusTarget::Attachment { attachment_id: 5 };
    s.create_tus_upload(
        &upload(gone, me.id, target, now + 60_000),
        Some(&in_progress(5, me.id)),
        None,
    )
    .await
    .unwrap();
    s.claim_tus_upload(gone, 0, now + 5_000, now).await.unwrap();
    assert_eq!(
        s.end_tus_upload(gone, TusEnd::Terminate, now)
            .await
            .unwrap(),
        TusEnded::Busy(now + 5_000)
    );
    s.release_tus_upload(gone).await.unwrap();
    assert!(matches!(
        s.end_tus_upload(gone, TusEnd::Terminate, now).await.unwrap(),
        TusEnded::Ended(u) if u.id == gone
    ));
    assert!(s.attachment(5).await.unwrap().is_none());
    assert_eq!(
        s.end_tus_upload(gone, TusEnd::Terminate, now)
            .await
            .unwrap(),
        TusEnded::Missing
    );

    // Expiry waits for Upload-Expires, then fails the attachment and keeps it.
    let idle = "20112233445566778899aabbccddeeff";
    let target = TusTarget::Attachment { attachment_id: 6 };
    s.create_tus_upload(
        &upload(idle, me.id, target, now + 1_000),
        Some(&in_progress(6, me.id)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        s.end_tus_upload(idle, TusEnd::Expire, now).await.unwrap(),
        TusEnded::NotYet(now + 1_000)
    );
    // Past it, no request may write any more.
    assert_eq!(
        s.claim_tus_upload(idle, 0, now + 9_000, now + 2_000)
            .await
            .unwrap(),
        TusClaim::NotReceiving
    );
    assert!(matches!(
        s.end_tus_upload(idle, TusEnd::Expire, now + 2_000)
            .await
            .unwrap(),
        TusEnded::Ended(_)
    ));
    assert_eq!(
        s.attachment(6).await.unwrap().unwrap().state,
        AttachmentState::UploadFromClientToServerFailed
    );
    assert!(s.tus_upload(idle).await.unwrap().is_none());

    // A storage target is completed by the file's own record.
    s.create_space("sp", "Space", None).await.unwrap();
    let to_file = "30112233445566778899aabbccddeeff";
    let target = TusTarget::Storage {
        space_id: "sp".into(),
        path: "docs/a.txt".into(),
    };
    s.create_tus_upload(&upload(to_file, me.id, target, now + 60_000), None, None)
        .await
        .unwrap();
    let file = NewStorageFile {
        size: 10,
        content_type: "text/plain".into(),
        sha256: "d".repeat(64),
        meta: None,
        hold: None,
    };
    let path = StoragePath::parse("docs/a.txt").unwrap();
    s.put_file("sp", &path, &file, None, Some(to_file), me.id)
        .await
        .unwrap();
    let done = s.tus_upload(to_file).await.unwrap().unwrap();
    assert_eq!((done.state, done.offset), (TusState::Done, 10));
    // Deleting the space takes its uploads with it.
    s.delete_space("sp").await.unwrap();
    assert!(s.tus_upload(to_file).await.unwrap().is_none());
}
