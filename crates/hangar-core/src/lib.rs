//! Hangar's domain: identifiers, attachment states, file-name and checksum rules, principals, and the
//! traits the metadata store implements. No HTTP and no SQL live here.

pub mod access;
pub mod app_model;
pub mod app_ops;
pub mod apps;
pub mod attachment;
pub mod checksum;
pub mod content_type;
pub mod data_url;
pub mod disposition;
pub mod filename;
pub mod forwarded;
pub mod ids;
pub mod jobs;
pub mod model;
pub mod net;
pub mod preview;
pub mod range;
pub mod read_cache;
pub mod scan;
pub mod secrets;
pub mod storage_path;
pub mod store;
pub mod tus;
pub mod volume;

pub use attachment::AttachmentState;
pub use store::StoreError;

/// Milliseconds since the Unix epoch, the unit of every `…Utc` field on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
