//! Store tests on a real SQLite file.

use super::SqliteStore;
use hangar_core::model::*;
use hangar_core::store::*;
use hangar_core::AttachmentState;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = SqliteStore::open(&url).await.unwrap();
    (dir, store)
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
    }
}

#[tokio::test]
async fn usernames_are_unique() {
    let (_d, s) = store().await;
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

#[tokio::test]
async fn blob_references_are_counted_and_released() {
    let (_d, s) = store().await;
    let alice = s
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap();
    let sha = "a".repeat(64);
    let a = new_attachment(alice.id, &sha);
    let b = new_attachment(alice.id, &sha);
    s.create_attachments(std::slice::from_ref(&a), None)
        .await
        .unwrap();
    s.create_attachments(std::slice::from_ref(&b), None)
        .await
        .unwrap();
    assert_eq!(s.blob_refcount(&sha).await.unwrap(), Some(2));
    assert_eq!(s.delete_attachment(a.id).await.unwrap(), None);
    assert_eq!(s.blob_refcount(&sha).await.unwrap(), Some(1));
    assert_eq!(s.delete_attachment(b.id).await.unwrap(), Some(sha.clone()));
    assert_eq!(s.blob_refcount(&sha).await.unwrap(), None);
    assert!(matches!(
        s.delete_attachment(b.id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn links_grant_reading_to_channel_and_project_members() {
    let (_d, s) = store().await;
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
    s.create_attachments(std::slice::from_ref(&a), None)
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
        .create_issue(project.id, "t", "Open", &[link])
        .await
        .unwrap();
    assert_eq!(issue.number, 1);
    assert_eq!(issue.key(), "P-T-1");
    assert!(s.readable_through_links(a.id, carol.id).await.unwrap());
    let second = s.create_issue(project.id, "t2", "Open", &[]).await.unwrap();
    assert_eq!(second.number, 2);
}

#[tokio::test]
async fn changes_record_their_events_in_the_same_transaction() {
    let (_d, s) = store().await;
    let alice = s
        .create_member("alice", "h", "A", Role::Member)
        .await
        .unwrap();
    let a = new_attachment(alice.id, &"c".repeat(64));
    s.create_attachments(std::slice::from_ref(&a), None)
        .await
        .unwrap();
    let channel = s.create_channel("c", &[alice.id]).await.unwrap();
    s.create_message(channel.id, alice.id, "hi", &[])
        .await
        .unwrap();
    let project = s.create_project("P", "P", &[alice.id]).await.unwrap();
    let issue = s.create_issue(project.id, "t", "Open", &[]).await.unwrap();
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

#[tokio::test]
async fn reservations_never_exceed_the_quota() {
    let (_d, s) = store().await;
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
