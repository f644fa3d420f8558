//! Why an archive call was refused, and the error body the real API answers with.
//! Which wordings are real and which inferred is listed in the `archive` module docs.

use axum::http::StatusCode;

/// Why an archive call was refused: status, `code` and message of the error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveError {
    /// No such session, or one owned by someone else.
    SessionNotFound,
    /// No such archive, or one owned by someone else.
    ArchiveNotFound,
    /// Relayed sessions cannot be archived.
    Relayed,
    /// Nobody is connected to the session.
    NoClients,
    /// An active archive with the same `multiArchiveTag` (or none) exists.
    AlreadyRecording,
    /// Stop outside started/paused/stopped.
    StopState,
    /// Delete outside available/uploaded/deleted.
    DeleteState,
}

impl ArchiveError {
    /// The status, `code` and message the real API answers (see the module docs for which
    /// wording is real and which inferred).
    pub(crate) fn parts(self) -> (StatusCode, i32, &'static str) {
        match self {
            Self::SessionNotFound => (
                StatusCode::NOT_FOUND,
                -1,
                "Not found. You passed in an invalid session ID.",
            ),
            Self::ArchiveNotFound => (
                StatusCode::NOT_FOUND,
                -1,
                "Not found. You passed in an invalid archive ID.",
            ),
            Self::Relayed => (
                StatusCode::CONFLICT,
                15008,
                "Only routed sessions are allowed to initiate archives.",
            ),
            Self::NoClients => (
                StatusCode::BAD_REQUEST,
                -1,
                "No clients are actively connected to the OpenTok session.",
            ),
            Self::AlreadyRecording => (
                StatusCode::CONFLICT,
                15001,
                "Session is already being recorded.",
            ),
            Self::StopState => (
                StatusCode::CONFLICT,
                15002,
                "You can only stop an archive that has one of the following statuses: started OR paused OR stopped",
            ),
            Self::DeleteState => (
                StatusCode::CONFLICT,
                15004,
                "You can only delete an archive that has one of the following statuses: available OR uploaded OR deleted",
            ),
        }
    }
}
