//! The concurrency invariants every metadata store must keep, stated once and checked against each
//! backend. Each check gets two handles on one database, standing for two processes (two nodes), and
//! races them: the invariant must hold whoever wins. SQLite and PostgreSQL run the same checks.

use crate::testdb::{Backend, TestStore};
use hangar_core::jobs::NewJob;
use hangar_core::model::*;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::*;

fn path(p: &str) -> StoragePath {
    StoragePath::parse(p).unwrap()
}

fn file(sha: char, size: i64) -> NewStorageFile {
    NewStorageFile {
        size,
        content_type: "application/octet-stream".into(),
        sha256: sha.to_string().repeat(64),
        meta: None,
        hold: None,
    }
}

/// Concurrent reservations against one quota never promise more than the quota, and the space's
/// usage plus what is reserved never passes it.
pub async fn quota_is_never_exceeded<S: Backend>(a: S, b: S) {
    a.create_space("quota", "Quota", Some(10_000))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { store.reserve("quota", 1_000, None, 0).await.unwrap() });
    }
    let mut granted = Vec::new();
    while let Some(r) = tasks.join_next().await {
        granted.extend(r.unwrap());
    }
    assert_eq!(granted.len(), 10, "exactly what fits: {granted:?}");
    let usage = a.usage("quota").await.unwrap().unwrap();
    assert_eq!(usage.reserved_bytes, 10_000);
    // Growing a reservation is checked the same way.
    assert!(!a.resize_reservation(granted[0], 1_001).await.unwrap());
    a.release_reservation(granted[1]).await.unwrap();
    assert!(b.resize_reservation(granted[0], 2_000).await.unwrap());
    assert_eq!(b.reserve("quota", 1, None, 0).await.unwrap(), None);
}

/// A two-stage upload's URL is claimed by one receiver at a time, however many try at once.
pub async fn a_two_stage_upload_is_claimed_once<S: Backend>(a: S, b: S) {
    let admin = a
        .create_member("claimer", "h", "Claimer", Role::Admin)
        .await
        .unwrap();
    a.create_space("claims", "Claims", None).await.unwrap();
    let reservation = a
        .reserve("claims", 5, Some("up-1"), hangar_core::now_ms() + 60_000)
        .await
        .unwrap()
        .unwrap();
    a.create_upload(&PendingUpload {
        id: "up-1".into(),
        space_id: "claims".into(),
        path: path("x.bin"),
        size: 5,
        content_type: "application/octet-stream".into(),
        meta: serde_json::json!({}),
        uploader_id: admin.id,
        reservation_id: reservation,
        state: UploadState::Pending,
        expires_utc: hangar_core::now_ms() + 60_000,
    })
    .await
    .unwrap();
    // Found by its path (a read of the path finishes it at once on object storage), by either.
    assert_eq!(
        b.uploads_at("claims", &path("x.bin")).await.unwrap(),
        ["up-1"]
    );
    assert!(a
        .uploads_at("claims", &path("y.bin"))
        .await
        .unwrap()
        .is_empty());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { store.claim_upload("up-1").await.unwrap() });
    }
    let mut claims = 0;
    while let Some(r) = tasks.join_next().await {
        claims += r.unwrap() as usize;
    }
    assert_eq!(claims, 1, "one receiver");
    // Given back (its bytes failed), it can be claimed again, once.
    a.unclaim_upload("up-1").await.unwrap();
    assert!(b.claim_upload("up-1").await.unwrap());
    assert!(!a.claim_upload("up-1").await.unwrap());
}

/// A file and a directory never share a path, whoever writes first: of `a` (a file) and `a/b` (a
/// file under it, making `a` a directory) written at once, exactly one lands.
pub async fn parents_come_before_children<S: Backend>(a: S, b: S) {
    let admin = a
        .create_member("writer", "h", "Writer", Role::Admin)
        .await
        .unwrap();
    a.create_space("tree", "Tree", None).await.unwrap();
    for round in 0..10 {
        let parent = format!("r{round}");
        let child = format!("r{round}/child");
        let (x, y) = {
            let (a, b, parent, child) = (a.clone(), b.clone(), path(&parent), path(&child));
            let id = admin.id;
            tokio::join!(
                async move {
                    a.put_file("tree", &parent, &file('a', 1), None, None, id)
                        .await
                },
                async move {
                    b.put_file("tree", &child, &file('b', 1), None, None, id)
                        .await
                },
            )
        };
        assert!(
            x.is_ok() != y.is_ok(),
            "round {round}: exactly one of the file and the file under it lands ({x:?}, {y:?})"
        );
        for refused in [x.err(), y.err()].into_iter().flatten() {
            assert!(
                matches!(
                    refused,
                    StoreError::Refused {
                        code: "is-a-directory" | "under-a-file",
                        ..
                    }
                ),
                "{refused:?}"
            );
        }
        let entry = a.entry("tree", &path(&parent)).await.unwrap().unwrap();
        let child_entry = a.entry("tree", &path(&child)).await.unwrap();
        assert_eq!(
            entry.kind == EntryKind::Dir,
            child_entry.is_some(),
            "the tree is consistent"
        );
    }
}

/// A limit on an application's items (100 parameters) holds under concurrent additions.
pub async fn item_limits_hold<S: Backend>(a: S, b: S) {
    let app = a
        .create_app(
            "limits-client",
            "Limits",
            &hangar_core::app_model::AppDoc::default(),
            None,
        )
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let item = AppItem {
            app_id: app.id,
            kind: hangar_core::app_model::ItemKind::Parameter,
            scope: String::new(),
            key: format!("k{i}"),
            value: serde_json::json!(i),
            created_utc: 0,
            version: 0,
        };
        tasks.spawn(async move { store.put_item(&item, Some(25)).await });
    }
    let mut stored = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => stored += 1,
            Err(StoreError::Refused {
                code: "limits-reached",
                ..
            }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(stored, 25);
    let items = a
        .items(
            Some(app.id),
            hangar_core::app_model::ItemKind::Parameter,
            Some(""),
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(items.len(), 25);
}

/// Jobs claimed by several workers at once go to one worker each.
pub async fn each_job_is_claimed_once<S: Backend>(a: S, b: S) {
    for n in 0..30 {
        let job = NewJob {
            kind: "conformance".into(),
            payload: serde_json::json!({ "n": n }),
            unique_key: None,
            run_after: 0,
            keep_existing: false,
        };
        a.enqueue(&job).await.unwrap();
    }
    let stores = [a.clone(), b.clone(), a.clone(), b.clone()];
    let claims = futures_claims(&stores).await;
    let mut ids: Vec<i64> = claims.iter().flatten().map(|j| j.id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(total, 30, "every job claimed");
    assert_eq!(ids.len(), 30, "no job claimed twice");
}

async fn futures_claims<S: Backend>(stores: &[S]) -> Vec<Vec<hangar_core::jobs::ClaimedJob>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .claim_jobs(&format!("worker-{i}"), 60_000, 10, &[], false)
                .await
                .unwrap()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// Runs every check against a backend, each on a fresh database with two handles (two nodes).
async fn check_all<S: TestStore>() {
    macro_rules! check {
        ($name:ident) => {{
            let db = S::fresh().await;
            $name(S::open(&db).await, S::open(&db).await).await;
        }};
    }
    check!(quota_is_never_exceeded);
    check!(a_two_stage_upload_is_claimed_once);
    check!(parents_come_before_children);
    check!(item_limits_hold);
    check!(each_job_is_claimed_once);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_invariant() {
    check_all::<crate::SqliteStore>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_invariant() {
    check_all::<crate::PgStore>().await;
}
