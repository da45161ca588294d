//! Malware scanning at the HTTP edge (SPEC §9.6): with `--clamd`, only clean bytes are served
//! (`pending` and `failed` answer 409 `scan-pending`, `infected` 403 `quarantined`), and metadata says
//! where a file stands (`scanState`). Without it nothing here shows or blocks anything.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::StatusCode;
use hangar_core::scan::ScanState;
use serde_json::Value;

/// The scan state of the bytes `sha256`; None when scanning is off. Bytes the database holds no
/// state for (no bytes yet, bytes not stored, or stored while scanning was off and not scanned
/// since) count as pending: unscanned bytes are never served.
pub(crate) async fn scan_state(
    state: &AppState,
    sha256: Option<&str>,
) -> ApiResult<Option<ScanState>> {
    if !state.settings.scanning {
        return Ok(None);
    }
    let Some(sha256) = sha256 else {
        return Ok(Some(ScanState::Pending));
    };
    let known = state.scans.blob_scan(sha256).await?.and_then(|b| b.state);
    Ok(Some(known.unwrap_or(ScanState::Pending)))
}

/// Refuses to serve bytes that are not known to be clean.
pub(crate) async fn require_clean(state: &AppState, sha256: &str) -> ApiResult<()> {
    match scan_state(state, Some(sha256)).await? {
        None | Some(ScanState::Clean) => Ok(()),
        Some(ScanState::Infected) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "quarantined",
            "malware was found in this file: it is quarantined and never served",
        )),
        Some(ScanState::Pending) => Err(ApiError::conflict(
            "scan-pending",
            "this file has not been scanned for malware yet: try again in a moment",
        )
        .with("scanState", "pending")),
        Some(ScanState::Failed) => Err(ApiError::conflict(
            "scan-pending",
            "this file could not be scanned for malware (larger than the scanner accepts?), so it is \
             not served: the operator can raise the scanner's limit and run `hangar admin rescan`",
        )
        .with("scanState", "failed")),
    }
}

/// Adds `scanState` to a file's JSON when scanning is on.
pub(crate) async fn annotate(
    state: &AppState,
    body: &mut Value,
    sha256: Option<&str>,
) -> ApiResult<()> {
    if let (Some(scan), Value::Object(fields)) = (scan_state(state, sha256).await?, body) {
        fields.insert("scanState".into(), Value::from(scan.as_str()));
    }
    Ok(())
}
