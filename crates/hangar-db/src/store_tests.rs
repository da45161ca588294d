//! More store tests on every backend: the storage tree (byte order, key-range moves and deletes),
//! and application tokens (the joined lookup, single use, revocation by grant) and listings.

use crate::testdb::{on_every_backend, TestStore};
use hangar_core::app_model::AppDoc;
use hangar_core::model::*;
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::*;
use serde_json::json;

on_every_backend!(
    the_storage_tree_lists_in_byte_order_and_moves_and_deletes_whole_subtrees,
    application_tokens_are_looked_up_used_once_and_revoked_by_grant,
    stored_totals_count_each_blob_once,
    failed_attempts_are_counted_per_key_and_window_by_every_node,
    the_last_administrator_stays_and_a_deleted_member_frees_its_name,
    a_refresh_token_is_used_once_and_tokens_go_with_their_maker,
    a_member_holds_a_bounded_number_of_open_uploads,
);

fn path(p: &str) -> StoragePath {
    StoragePath::parse(p).unwrap()
}

fn file(sha: char, size: i64) -> NewStorageFile {
    NewStorageFile {
        size,
        content_type: "text/plain".into(),
        sha256: sha.to_string().repeat(64),
        meta: Some(json!({"k": "v"})),
        hold: None,
    }
}

async fn stored_totals_count_each_blob_once<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    assert_eq!(s.stored_totals().await.unwrap(), StoredTotals::default());
    let me = s.create_member("m", "h", "M", Role::Admin).await.unwrap();
    s.create_space("sp", "Space", None).await.unwrap();
    // Two files share one content: it is stored, and counted, once.
    for (p, sha, size) in [("a", 'a', 10), ("b", 'a', 10), ("c", 'c', 7)] {
        s.put_file("sp", &path(p), &file(sha, size), None, None, me.id)
            .await
            .unwrap();
    }
    assert_eq!(
        s.stored_totals().await.unwrap(),
        StoredTotals {
            blobs: 2,
            bytes: 17
        }
    );
}

fn names(entries: &[StorageEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

async fn the_storage_tree_lists_in_byte_order_and_moves_and_deletes_whole_subtrees<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let me = s.create_member("m", "h", "M", Role::Admin).await.unwrap();
    s.create_space("sp", "Space", Some(1000)).await.unwrap();
    for (p, sha) in [
        ("a/b.txt", 'a'),
        ("a/c/d.txt", 'b'),
        ("a0", 'c'),
        ("B", 'd'),
        ("a%", 'e'),
    ] {
        s.put_file("sp", &path(p), &file(sha, 10), None, None, me.id)
            .await
            .unwrap();
    }
    let top = s.list_dir("sp", None, None, 100).await.unwrap();
    // Byte order, whatever the database's locale: 'B' < 'a' < 'a%' < 'a0'.
    assert_eq!(names(&top), ["B", "a", "a%", "a0"]);
    let after = s.list_dir("sp", None, Some("a"), 100).await.unwrap();
    assert_eq!(names(&after), ["a%", "a0"]);
    assert_eq!(s.usage("sp").await.unwrap().unwrap().used_bytes, 50);

    // Moving `a` moves exactly its subtree (not `a0` nor `a%`, which share its prefix).
    let moved = s
        .move_entry("sp", &path("a"), &path("z/a"), false, me.id)
        .await
        .unwrap();
    assert_eq!(moved.kind, EntryKind::Dir);
    assert!(s.entry("sp", &path("z/a/c/d.txt")).await.unwrap().is_some());
    assert!(s.entry("sp", &path("a0")).await.unwrap().is_some());
    let top = s.list_dir("sp", None, None, 100).await.unwrap();
    assert_eq!(names(&top), ["B", "a%", "a0", "z"]);
    assert!(matches!(
        s.move_entry("sp", &path("B"), &path("a0"), false, me.id)
            .await,
        Err(StoreError::Refused {
            code: "already-exists",
            ..
        })
    ));
    s.move_entry("sp", &path("B"), &path("a0"), true, me.id)
        .await
        .unwrap();
    assert_eq!(s.usage("sp").await.unwrap().unwrap().used_bytes, 40);

    assert!(matches!(
        s.delete_entry("sp", &path("z"), false, me.id).await,
        Err(StoreError::Refused {
            code: "is-a-directory",
            ..
        })
    ));
    s.delete_entry("sp", &path("z"), true, me.id).await.unwrap();
    assert_eq!(
        names(&s.list_dir("sp", None, None, 100).await.unwrap()),
        ["a%", "a0"]
    );
    assert_eq!(s.usage("sp").await.unwrap().unwrap().used_bytes, 20);
    assert_eq!(
        s.blob_record(&"a".repeat(64)).await.unwrap().refcount,
        Some(0)
    );
    let events: Vec<String> = s
        .recent_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        events.first().map(String::as_str),
        Some("StorageFile.Created")
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("StorageFile.Deleted")
    );

    // Deleting the space releases the references of the files left in it.
    assert!(s.delete_space("sp").await.unwrap());
    assert!(!s.delete_space("sp").await.unwrap());
    assert_eq!(
        s.blob_record(&"e".repeat(64)).await.unwrap().refcount,
        Some(0)
    );
}

fn token(app_id: i64, kind: &str, grant: Option<i64>) -> AppToken {
    AppToken {
        id: hangar_core::ids::random_id(),
        app_id,
        kind: kind.into(),
        name: kind.into(),
        scope: "**".into(),
        member_id: None,
        expires_utc: Some(now_ms() + 60_000),
        created_utc: now_ms(),
        last_used_utc: None,
        data: json!({ "grant": grant }),
        made_with: None,
        minted_by: None,
    }
}

async fn application_tokens_are_looked_up_used_once_and_revoked_by_grant<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let app = s
        .create_app("client-b", "Beta", &AppDoc::default(), None)
        .await
        .unwrap();
    s.create_app("client-a", "alpha", &AppDoc::default(), None)
        .await
        .unwrap();
    assert!(matches!(
        s.create_app("client-a", "Again", &AppDoc::default(), None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Names ordered without regard to case; a name filter matches parts, `_` literally.
    let page = s.list_apps(&listing(None), false, 0, 10).await.unwrap();
    let listed: Vec<&str> = page.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!((listed, page.total), (vec!["alpha", "Beta"], 2));
    let found = s
        .list_apps(&listing(Some("ET")), false, 0, 10)
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(
        s.list_apps(&listing(Some("_")), false, 0, 10)
            .await
            .unwrap()
            .total,
        0
    );
    // Owners and self-managed (connected) applications.
    s.create_app("client-c", "Gamma", &AppDoc::new(41, true), None)
        .await
        .unwrap();
    s.create_app("client-d", "Delta", &AppDoc::new(42, false), None)
        .await
        .unwrap();
    let names = |p: AppPage| p.apps.into_iter().map(|a| a.name).collect::<Vec<_>>();
    let mut f = listing(None);
    f.owners = Some(vec![41, 42]);
    assert_eq!(
        names(s.list_apps(&f, false, 0, 10).await.unwrap()),
        ["Delta", "Gamma"]
    );
    f.with_managed = false;
    let page = s.list_apps(&f, false, 0, 10).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(names(page), ["Delta"]);
    f.owners = Some(vec![]);
    assert_eq!(s.list_apps(&f, false, 0, 10).await.unwrap().total, 0);

    let access = token(app.id, "access", Some(7));
    s.create_app_token(&access, "hash-access").await.unwrap();
    let (t, a, m) = s.app_token("hash-access", now_ms()).await.unwrap().unwrap();
    assert_eq!((t.id, a.id, m.id), (access.id, app.id, app.bot_member_id));
    assert_eq!(t.data, json!({"grant": 7}));
    assert!(s
        .app_token("hash-access", now_ms() + 120_000)
        .await
        .unwrap()
        .is_none());

    let code = token(app.id, "code", None);
    s.create_app_token(&code, "hash-code").await.unwrap();
    let (first, fresh) = s.use_code("hash-code", now_ms()).await.unwrap().unwrap();
    assert_eq!((first.id, fresh), (code.id, true));
    let (_, replay) = s.use_code("hash-code", now_ms()).await.unwrap().unwrap();
    assert!(!replay, "a code is used once");

    let refresh = token(app.id, "refresh", Some(7));
    s.create_app_token(&refresh, "hash-refresh").await.unwrap();
    s.create_app_token(&token(app.id, "access", Some(8)), "hash-other")
        .await
        .unwrap();
    assert_eq!(s.revoke_grant(app.id, 7).await.unwrap(), 2);
    assert!(s
        .take_app_token("hash-refresh", "refresh", now_ms())
        .await
        .unwrap()
        .is_none());
    assert!(s.app_token("hash-other", now_ms()).await.unwrap().is_some());
    assert_eq!(s.list_app_tokens(app.id, "access").await.unwrap().len(), 1);
}

async fn failed_attempts_are_counted_per_key_and_window_by_every_node<S: TestStore>() {
    let db = S::fresh().await;
    // Two handles on one database: two nodes.
    let a = S::open(&db).await;
    let b = S::open(&db).await;
    let now = 1_000_000;
    let key = "login-user:x";
    assert_eq!(a.failures(key, now).await.unwrap(), None);
    assert_eq!(
        a.record_failure(key, now, 60_000).await.unwrap(),
        (1, now + 60_000)
    );
    assert_eq!(
        b.record_failure(key, now + 10, 60_000).await.unwrap(),
        (2, now + 60_000)
    );
    // Concurrent failures on both nodes are each counted once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.record_failure(key, now + 20, 60_000).await.unwrap()
        }));
    }
    let mut counts: Vec<i64> = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap().0);
    }
    counts.sort();
    assert_eq!(counts, (3..=22).collect::<Vec<_>>());
    assert_eq!(
        a.failures(key, now + 30).await.unwrap(),
        Some((22, now + 60_000))
    );
    assert_eq!(b.failures("login-user:y", now).await.unwrap(), None);
    // The window passes: counting starts again.
    assert_eq!(a.failures(key, now + 60_000).await.unwrap(), None);
    assert_eq!(
        b.record_failure(key, now + 60_001, 60_000).await.unwrap(),
        (1, now + 120_001)
    );
    a.record_failure("login-addr:1.2.3.4", now, 1000)
        .await
        .unwrap();
    assert_eq!(a.prune_attempts(now + 100_000).await.unwrap(), 1);
    assert_eq!(
        a.failures(key, now + 100_000).await.unwrap(),
        Some((1, now + 120_001))
    );
}

async fn the_last_administrator_stays_and_a_deleted_member_frees_its_name<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let root = s
        .create_member("root", "h", "Root", Role::Admin)
        .await
        .unwrap();
    let bob = s
        .create_member("bob", "h", "Bob", Role::Member)
        .await
        .unwrap();
    let refused = |r: StoreResult<()>| {
        matches!(
            r,
            Err(StoreError::Refused {
                code: "last-admin",
                ..
            })
        )
    };
    let demote = MemberUpdate {
        role: Some(Role::Member),
        ..MemberUpdate::default()
    };
    let disable = MemberUpdate {
        disabled: Some(true),
        ..MemberUpdate::default()
    };
    assert!(refused(s.change_member(root.id, &demote).await));
    assert!(refused(s.change_member(root.id, &disable).await));
    assert!(refused(s.delete_member(root.id).await));
    let promote = MemberUpdate {
        role: Some(Role::Admin),
        display_name: Some("Robert".into()),
        ..MemberUpdate::default()
    };
    s.change_member(bob.id, &promote).await.unwrap();
    s.change_member(root.id, &demote).await.unwrap();
    assert!(refused(s.change_member(bob.id, &disable).await));
    let bob_now = s.member_by_username("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob_now.role, bob_now.display_name.as_str()),
        (Role::Admin, "Robert")
    );

    // Deleting root: its sessions end, its name is free, the row stays (files refer to it).
    let far = now_ms() + 3_600_000;
    s.create_session("root-session", root.id, far)
        .await
        .unwrap();
    s.delete_member(root.id).await.unwrap();
    assert!(s
        .session_member("root-session", now_ms(), 0)
        .await
        .unwrap()
        .is_none());
    assert!(s.member_by_username("root").await.unwrap().is_none());
    assert!(s.is_disabled(root.id).await.unwrap());
    let names: Vec<String> = s
        .list_members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.username)
        .collect();
    assert_eq!(names, vec!["bob"]);
    let again = s
        .create_member("root", "h", "Root", Role::Member)
        .await
        .unwrap();
    assert_ne!(again.id, root.id);
    assert!(matches!(
        s.delete_member(root.id).await,
        Err(StoreError::NotFound(_))
    ));

    // A password change keeps the calling session only.
    s.create_session("here", bob.id, far).await.unwrap();
    s.create_session("there", bob.id, far).await.unwrap();
    s.change_own_password(bob.id, "h2", Some("here"))
        .await
        .unwrap();
    assert!(s
        .session_member("here", now_ms(), 0)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .session_member("there", now_ms(), 0)
        .await
        .unwrap()
        .is_none());
    // An idle session ends.
    assert!(s
        .session_member("here", now_ms(), now_ms() + 1)
        .await
        .unwrap()
        .is_none());
}

async fn a_refresh_token_is_used_once_and_tokens_go_with_their_maker<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let app = s
        .create_app("client-r", "R", &AppDoc::default(), None)
        .await
        .unwrap();
    let refresh = token(app.id, "refresh", Some(9));
    s.create_app_token(&refresh, "hash-r").await.unwrap();
    let (_, first) = s.use_refresh("hash-r", now_ms()).await.unwrap().unwrap();
    assert!(first);
    let (again, first) = s.use_refresh("hash-r", now_ms()).await.unwrap().unwrap();
    assert!(!first, "a replay");
    assert_eq!(again.data["grant"], 9);

    let access = token(app.id, "access", Some(9));
    s.create_app_token(&access, "hash-a").await.unwrap();
    let minted = AppToken {
        made_with: Some(access.id),
        ..token(app.id, "permanent", None)
    };
    s.create_app_token(&minted, "hash-p").await.unwrap();
    assert!(s.app_token("hash-p", now_ms()).await.unwrap().is_some());
    s.revoke_grant(app.id, 9).await.unwrap();
    assert!(s.app_token("hash-p", now_ms()).await.unwrap().is_none());
    assert!(s.use_refresh("hash-r", now_ms()).await.unwrap().is_none());

    // A permanent token a member minted goes with the member's tokens.
    let m = s
        .create_member("minter", "h", "M", Role::Admin)
        .await
        .unwrap();
    let vouched = AppToken {
        minted_by: Some(m.id),
        ..token(app.id, "permanent", None)
    };
    s.create_app_token(&vouched, "hash-v").await.unwrap();
    s.reset_password(m.id, "h2").await.unwrap();
    assert!(s.app_token("hash-v", now_ms()).await.unwrap().is_none());
}

async fn a_member_holds_a_bounded_number_of_open_uploads<S: TestStore>() {
    let db = S::fresh().await;
    let s = S::open(&db).await;
    let m = s.create_member("up", "h", "U", Role::Member).await.unwrap();
    let other = s
        .create_member("other", "h", "O", Role::Member)
        .await
        .unwrap();
    s.create_space("sp", "Space", None).await.unwrap();
    let upload = |n: i64, who: i64| PendingUpload {
        id: format!("u{who}-{n}"),
        space_id: "sp".into(),
        path: path(&format!("f{who}-{n}")),
        size: 1,
        content_type: "text/plain".into(),
        meta: json!({}),
        uploader_id: who,
        reservation_id: n,
        state: UploadState::Pending,
        expires_utc: now_ms() + 60_000,
    };
    let cap = crate::rules::MAX_OPEN_UPLOADS_PER_MEMBER;
    for n in 0..cap {
        s.create_upload(&upload(n, m.id)).await.unwrap();
    }
    assert!(matches!(
        s.create_upload(&upload(cap, m.id)).await,
        Err(StoreError::Refused {
            code: "too-many-uploads",
            ..
        })
    ));
    s.create_upload(&upload(0, other.id)).await.unwrap();
}

/// A listing of applications by name, unarchived, managed ones included, anyone's.
fn listing(name: Option<&str>) -> AppFilter {
    AppFilter {
        name: name.map(str::to_string),
        with_managed: true,
        ..AppFilter::default()
    }
}
