//! Preview records on every backend (SPEC §9.3): the job queued with a new image, the previews'
//! blob references, the metadata they give an attachment, and their release with the source.

use crate::testdb::{on_every_backend, TestStore};
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::preview::{NewPreview, PreviewRecord, PreviewRecorded, PreviewSource};
use hangar_core::AttachmentState;

on_every_backend!(
    previews_hold_their_blobs_until_the_source_goes,
    a_source_that_went_or_was_done_records_nothing,
);

fn image(uploader: i64, sha: &str) -> NewAttachment {
    NewAttachment {
        id: hangar_core::ids::random_id(),
        uploader_id: uploader,
        file_name: "a.png".into(),
        content_type: "image/png".into(),
        size: 30,
        sha256: sha.into(),
        state: AttachmentState::ReadyForDownloadFromServerToClient,
        media_context: None,
        stores_blob: true,
        hold: None,
    }
}

fn preview(size: i64, sha: &str) -> NewPreview {
    NewPreview {
        record: PreviewRecord {
            size,
            sha256: sha.into(),
            bytes: 5,
            content_type: "image/jpeg".into(),
            width: size,
            height: size / 2,
        },
        hold: None,
    }
}

async fn previews_hold_their_blobs_until_the_source_goes<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let (src, small, big) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    let a = image(me.id, &src);
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    // A new image queues its preview job, in the transaction that records it.
    assert_eq!(s.due_jobs("make-previews", now_ms()).await.unwrap(), 1);
    let text = NewAttachment {
        content_type: "text/plain".into(),
        ..image(me.id, &"d".repeat(64))
    };
    s.create_attachments(std::slice::from_ref(&text), None, None)
        .await
        .unwrap();
    assert_eq!(s.due_jobs("make-previews", now_ms()).await.unwrap(), 1);

    assert_eq!(s.preview_source(&src).await.unwrap(), None);
    let shown = s.attachment(a.id).await.unwrap().unwrap();
    assert!(!shown.has_thumbnail && shown.width.is_none());
    // 64 and 256 are one blob (a small original), 1024 another; one preview is the source itself.
    let set = [
        preview(64, &small),
        preview(256, &small),
        preview(1024, &big),
    ];
    assert_eq!(
        s.record_previews(&src, 40, 20, &set).await.unwrap(),
        PreviewRecorded::Recorded
    );
    assert_eq!(
        s.preview_source(&src).await.unwrap(),
        Some(PreviewSource::Ready {
            width: 40,
            height: 20
        })
    );
    assert_eq!(s.preview(&src, 256).await.unwrap().unwrap().sha256, small);
    assert_eq!(s.blob_record(&small).await.unwrap().refcount, Some(2));
    assert_eq!(s.blob_record(&big).await.unwrap().refcount, Some(1));
    let shown = s.attachment(a.id).await.unwrap().unwrap();
    assert!(shown.has_thumbnail);
    assert_eq!((shown.width, shown.height), (Some(40), Some(20)));
    assert!(s
        .blob_users(&small)
        .await
        .unwrap()
        .iter()
        .any(|u| u.contains("preview 64")));

    // The source's last reference goes: its previews go with it, and their blobs are released.
    s.delete_attachment(a.id).await.unwrap();
    assert_eq!(s.preview_source(&src).await.unwrap(), None);
    assert_eq!(s.preview(&src, 64).await.unwrap(), None);
    for sha in [&src, &small, &big] {
        assert_eq!(s.blob_record(sha).await.unwrap().refcount, Some(0), "{sha}");
    }
}

async fn a_source_that_went_or_was_done_records_nothing<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let src = "a".repeat(64);
    // Nothing refers to it: nothing is recorded, not even "no preview".
    assert_eq!(
        s.record_previews(&src, 1, 1, &[preview(64, &"b".repeat(64))])
            .await
            .unwrap(),
        PreviewRecorded::SourceGone
    );
    s.record_no_preview(&src).await.unwrap();
    assert_eq!(s.preview_source(&src).await.unwrap(), None);
    assert_eq!(s.blob_record(&"b".repeat(64)).await.unwrap().refcount, None);

    let a = image(me.id, &src);
    s.create_attachments(std::slice::from_ref(&a), None, None)
        .await
        .unwrap();
    s.record_no_preview(&src).await.unwrap();
    assert_eq!(
        s.preview_source(&src).await.unwrap(),
        Some(PreviewSource::Unavailable)
    );
    // Another worker's later set is refused, and takes no reference.
    assert_eq!(
        s.record_previews(&src, 1, 1, &[preview(64, &"b".repeat(64))])
            .await
            .unwrap(),
        PreviewRecorded::AlreadyThere
    );
    assert_eq!(s.blob_record(&"b".repeat(64)).await.unwrap().refcount, None);
    assert!(!s.attachment(a.id).await.unwrap().unwrap().has_thumbnail);
    // A preview that is the source's own bytes holds no reference on them.
    let b = image(me.id, &"e".repeat(64));
    s.create_attachments(std::slice::from_ref(&b), None, None)
        .await
        .unwrap();
    s.record_previews(&b.sha256, 8, 8, &[preview(64, &b.sha256)])
        .await
        .unwrap();
    assert_eq!(s.blob_record(&b.sha256).await.unwrap().refcount, Some(1));
    s.delete_attachment(b.id).await.unwrap();
    assert_eq!(s.blob_record(&b.sha256).await.unwrap().refcount, Some(0));
}
