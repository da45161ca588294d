//! Share links on every backend: lookup by token hash, the download cap counted by one conditional
//! update from two handles (two nodes) at once, links that follow a moved file and go with a deleted
//! one, and links of a disabled member that stop answering.

use crate::testdb::{on_every_backend, TestStore};
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::*;
use hangar_core::AttachmentState;

on_every_backend!(
    a_share_link_is_found_by_its_token_hash_and_goes_with_its_file,
    the_download_cap_holds_across_nodes,
    a_disabled_members_links_stop_answering,
    an_attempt_counted_in_advance_can_be_taken_back,
);

fn path(p: &str) -> StoragePath {
    StoragePath::parse(p).unwrap()
}

fn link(creator: i64, target: ShareTarget) -> ShareLink {
    ShareLink {
        id: hangar_core::ids::random_id(),
        creator_id: creator,
        creator_is_admin: false,
        creator_is_app: false,
        target,
        password_hash: None,
        expires_utc: None,
        max_downloads: None,
        downloads: 0,
        created_utc: now_ms(),
    }
}

async fn attachment<S: TestStore>(s: &S, uploader: i64) -> i64 {
    let new = NewAttachment {
        id: hangar_core::ids::random_id(),
        uploader_id: uploader,
        file_name: "a.txt".into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: "a".repeat(64),
        state: AttachmentState::ReadyForDownloadFromServerToClient,
        media_context: None,
        stores_blob: true,
        hold: None,
    };
    s.create_attachments(&[new], None, None).await.unwrap()[0].id
}

fn file() -> NewStorageFile {
    NewStorageFile {
        size: 3,
        content_type: "text/plain".into(),
        sha256: "b".repeat(64),
        meta: None,
        hold: None,
    }
}

async fn a_share_link_is_found_by_its_token_hash_and_goes_with_its_file<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let a = attachment(&s, me.id).await;
    let to_attachment = link(me.id, ShareTarget::Attachment(a));
    s.create_share_link(&to_attachment, "hash-a").await.unwrap();
    // The same token hash twice is refused.
    assert!(matches!(
        s.create_share_link(&link(me.id, ShareTarget::Attachment(a)), "hash-a")
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = s.share_link_by_token("hash-a").await.unwrap().unwrap();
    assert_eq!(found.id, to_attachment.id);
    assert_eq!(found.target, ShareTarget::Attachment(a));
    assert!(s.share_link_by_token("hash-x").await.unwrap().is_none());

    s.create_space("sp", "Space", None).await.unwrap();
    s.put_file("sp", &path("d/f.txt"), &file(), None, None, me.id)
        .await
        .unwrap();
    let to_file = link(
        me.id,
        ShareTarget::StorageFile {
            space_id: "sp".into(),
            path: path("d/f.txt"),
        },
    );
    s.create_share_link(&to_file, "hash-f").await.unwrap();
    // A link to a file that does not exist is refused.
    let missing = link(
        me.id,
        ShareTarget::StorageFile {
            space_id: "sp".into(),
            path: path("nothing.txt"),
        },
    );
    assert!(matches!(
        s.create_share_link(&missing, "hash-m").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.list_share_links(Some(me.id)).await.unwrap().len(), 2);
    assert_eq!(s.list_share_links(None).await.unwrap().len(), 2);
    assert!(s
        .list_share_links(Some(me.id + 1))
        .await
        .unwrap()
        .is_empty());

    // Moving the directory takes the link along; deleting the file deletes it.
    s.move_entry("sp", &path("d"), &path("e"), false, me.id)
        .await
        .unwrap();
    let moved = s.share_link(to_file.id).await.unwrap().unwrap();
    assert_eq!(
        moved.target,
        ShareTarget::StorageFile {
            space_id: "sp".into(),
            path: path("e/f.txt")
        }
    );
    s.delete_entry("sp", &path("e/f.txt"), false, me.id)
        .await
        .unwrap();
    assert!(s.share_link_by_token("hash-f").await.unwrap().is_none());
    s.delete_attachment(a).await.unwrap();
    assert!(s.share_link_by_token("hash-a").await.unwrap().is_none());
    assert!(s.list_share_links(None).await.unwrap().is_empty());

    // Revocation.
    let b = attachment(&s, me.id).await;
    let l = link(me.id, ShareTarget::Attachment(b));
    s.create_share_link(&l, "hash-b").await.unwrap();
    assert!(s.delete_share_link(l.id).await.unwrap());
    assert!(!s.delete_share_link(l.id).await.unwrap());
    assert!(s.share_link_by_token("hash-b").await.unwrap().is_none());
}

async fn the_download_cap_holds_across_nodes<S: TestStore>() {
    let db = S::fresh().await;
    let (a, b) = (S::open(&db).await, S::open(&db).await);
    let me = a.create_member("m", "h", "M", Role::Member).await.unwrap();
    let id = attachment(&a, me.id).await;
    let mut capped = link(me.id, ShareTarget::Attachment(id));
    capped.max_downloads = Some(7);
    a.create_share_link(&capped, "hash-c").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let link_id = capped.id;
        tasks.spawn(async move { store.count_share_download(link_id, now_ms()).await.unwrap() });
    }
    let mut counted = 0;
    while let Some(r) = tasks.join_next().await {
        counted += usize::from(r.unwrap());
    }
    assert_eq!(counted, 7, "exactly the cap is counted");
    let after = b.share_link(capped.id).await.unwrap().unwrap();
    assert_eq!(after.downloads, 7);
    assert!(after.used_up());
    // A download that failed before sending anything is taken back, and can be made again.
    b.uncount_share_download(capped.id).await.unwrap();
    assert!(a.count_share_download(capped.id, now_ms()).await.unwrap());
    assert!(!a.count_share_download(capped.id, now_ms()).await.unwrap());

    // An expired link counts nothing.
    let mut expiring = link(me.id, ShareTarget::Attachment(id));
    expiring.expires_utc = Some(now_ms() + 60_000);
    a.create_share_link(&expiring, "hash-e").await.unwrap();
    assert!(a.count_share_download(expiring.id, now_ms()).await.unwrap());
    assert!(!a
        .count_share_download(expiring.id, now_ms() + 120_000)
        .await
        .unwrap());
    // An unknown link neither.
    assert!(!a.count_share_download(1, now_ms()).await.unwrap());
}

async fn a_disabled_members_links_stop_answering<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Member).await.unwrap();
    let id = attachment(&s, me.id).await;
    s.create_share_link(&link(me.id, ShareTarget::Attachment(id)), "hash-d")
        .await
        .unwrap();
    assert!(s.share_link_by_token("hash-d").await.unwrap().is_some());
    s.disable_member(me.id).await.unwrap();
    assert!(s.share_link_by_token("hash-d").await.unwrap().is_none());
}

async fn an_attempt_counted_in_advance_can_be_taken_back<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let now = now_ms();
    for _ in 0..3 {
        s.record_failure("share-link:1", now, 60_000).await.unwrap();
    }
    s.forgive_failure("share-link:1", now).await.unwrap();
    assert_eq!(
        s.failures("share-link:1", now).await.unwrap(),
        Some((2, now + 60_000))
    );
    // Never below zero, and nothing for an unknown key or a closed window.
    for _ in 0..3 {
        s.forgive_failure("share-link:1", now).await.unwrap();
    }
    assert_eq!(s.failures("share-link:1", now).await.unwrap().unwrap().0, 0);
    s.forgive_failure("share-link:2", now).await.unwrap();
    assert!(s.failures("share-link:2", now).await.unwrap().is_none());
    s.record_failure("share-link:3", now, 10).await.unwrap();
    s.forgive_failure("share-link:3", now + 20).await.unwrap();
    assert_eq!(
        s.failures("share-link:3", now).await.unwrap(),
        Some((1, now + 10))
    );
}
