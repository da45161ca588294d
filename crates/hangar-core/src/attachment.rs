//! The attachment state machine of the Attachments API (reference 004).

use serde::{Deserialize, Serialize};

/// Where an attachment is in its life. The server sets the upload-side states; the client-side states
/// exist in the reference and are accepted in the type so that every documented value round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentState {
    Initial,
    ChecksumCalculationOnClientSideInProgress,
    ChecksumCalculationOnClientSideFailed,
    UploadFromClientToServerInProgress,
    UploadFromClientToServerFailed,
    ChecksumVerificationOnServerSideInProgress,
    ChecksumVerificationOnServerSideMismatch,
    ChecksumVerificationOnServerSideFailed,
    ReadyForDownloadFromServerToClient,
}

impl AttachmentState {
    pub const ALL: [AttachmentState; 9] = [
        Self::Initial,
        Self::ChecksumCalculationOnClientSideInProgress,
        Self::ChecksumCalculationOnClientSideFailed,
        Self::UploadFromClientToServerInProgress,
        Self::UploadFromClientToServerFailed,
        Self::ChecksumVerificationOnServerSideInProgress,
        Self::ChecksumVerificationOnServerSideMismatch,
        Self::ChecksumVerificationOnServerSideFailed,
        Self::ReadyForDownloadFromServerToClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "Initial",
            Self::ChecksumCalculationOnClientSideInProgress => {
                "ChecksumCalculationOnClientSideInProgress"
            }
            Self::ChecksumCalculationOnClientSideFailed => "ChecksumCalculationOnClientSideFailed",
            Self::UploadFromClientToServerInProgress => "UploadFromClientToServerInProgress",
            Self::UploadFromClientToServerFailed => "UploadFromClientToServerFailed",
            Self::ChecksumVerificationOnServerSideInProgress => {
                "ChecksumVerificationOnServerSideInProgress"
            }
            Self::ChecksumVerificationOnServerSideMismatch => {
                "ChecksumVerificationOnServerSideMismatch"
            }
            Self::ChecksumVerificationOnServerSideFailed => {
                "ChecksumVerificationOnServerSideFailed"
            }
            Self::ReadyForDownloadFromServerToClient => "ReadyForDownloadFromServerToClient",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Only a verified, complete attachment may be served.
    pub fn is_downloadable(self) -> bool {
        self == Self::ReadyForDownloadFromServerToClient
    }

    /// Whether the server may move an attachment from `self` to `next`. Bytes arrive, are verified,
    /// and end ready, mismatched or failed; a finished attachment never goes back.
    pub fn can_become(self, next: Self) -> bool {
        use AttachmentState::*;
        matches!(
            (self, next),
            (Initial, UploadFromClientToServerInProgress)
                | (Initial, ChecksumCalculationOnClientSideInProgress)
                | (
                    ChecksumCalculationOnClientSideInProgress,
                    ChecksumCalculationOnClientSideFailed
                )
                | (
                    ChecksumCalculationOnClientSideInProgress,
                    UploadFromClientToServerInProgress
                )
                | (
                    UploadFromClientToServerInProgress,
                    UploadFromClientToServerFailed
                )
                | (
                    UploadFromClientToServerInProgress,
                    ChecksumVerificationOnServerSideInProgress
                )
                | (
                    UploadFromClientToServerInProgress,
                    ReadyForDownloadFromServerToClient
                )
                | (
                    ChecksumVerificationOnServerSideInProgress,
                    ChecksumVerificationOnServerSideMismatch
                )
                | (
                    ChecksumVerificationOnServerSideInProgress,
                    ChecksumVerificationOnServerSideFailed
                )
                | (
                    ChecksumVerificationOnServerSideInProgress,
                    ReadyForDownloadFromServerToClient
                )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for st in AttachmentState::ALL {
            assert_eq!(AttachmentState::parse(st.as_str()), Some(st));
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
        assert_eq!(AttachmentState::parse("Ready"), None);
    }

    #[test]
    fn finished_states_are_final_and_only_ready_is_served() {
        use AttachmentState::*;
        for next in AttachmentState::ALL {
            assert!(!ReadyForDownloadFromServerToClient.can_become(next));
            assert!(!ChecksumVerificationOnServerSideMismatch.can_become(next));
        }
        assert!(ChecksumVerificationOnServerSideInProgress
            .can_become(ChecksumVerificationOnServerSideMismatch));
        let served: Vec<_> = AttachmentState::ALL
            .into_iter()
            .filter(|s| s.is_downloadable())
            .collect();
        assert_eq!(served, vec![ReadyForDownloadFromServerToClient]);
    }
}
