//! Workspace storage (SPEC §6): path-addressed files in each space, uploaded five ways (raw body,
//! multipart `file` part, remote URL, data URL, two-stage signed PUT), read, listed, moved and deleted,
//! within the space's quota.

mod access;
mod manage;
mod store;
mod two_stage;
pub use two_stage::DirectFinisher;
mod upload;

pub(crate) use access::{member_space, parse_path_id, precheck, LARGE_JSON_AT_ONCE};
pub(crate) use manage::file_entry;
pub(crate) use two_stage::finish_direct_at;

use crate::AppState;
use axum::routing::{get, post, put};
use axum::Router;

/// The storage routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/limits", get(manage::limits))
        .route("/api/v1/space/{space}/storage", get(manage::list))
        .route(
            "/api/v1/space/{space}/storage/{path}",
            get(manage::download).delete(manage::remove),
        )
        .route(
            "/api/v1/space/{space}/storage/{path}/meta",
            get(manage::meta),
        )
        .route(
            "/api/v1/space/{space}/storage/{path}/upload",
            post(upload::upload),
        )
        .route(
            "/api/v1/space/{space}/storage/{path}/move",
            post(manage::move_entry),
        )
        .route(
            "/api/v1/storage-uploads/{id}",
            put(two_stage::receive_two_stage),
        )
}
