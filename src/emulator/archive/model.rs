//! One archive as the emulator keeps it, its statuses, its wire JSON (the union of the real
//! fixtures in contract §6) and the fake recording served once it is `available`.

use aws_lc_rs::digest::{SHA256, digest};
use serde_json::{Value, json};

use crate::emulator::auth::CredentialKind;

/// Every status the real API reports (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Started,
    Paused,
    Stopped,
    Uploaded,
    Available,
    Expired,
    Failed,
    Deleted,
}

impl Status {
    /// All statuses, in lifecycle order.
    pub(crate) const ALL: [Self; 8] = [
        Self::Started,
        Self::Paused,
        Self::Stopped,
        Self::Uploaded,
        Self::Available,
        Self::Expired,
        Self::Failed,
        Self::Deleted,
    ];

    /// The wire value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Uploaded => "uploaded",
            Self::Available => "available",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    /// The status with this wire value, if any.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Still recording: `started` or `paused`.
    pub(crate) fn is_active(self) -> bool {
        matches!(self, Self::Started | Self::Paused)
    }
}

/// An archive: what was asked for at start and where its lifecycle stands.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    /// UUID.
    pub(crate) id: String,
    /// API key or application ID that started it.
    pub(crate) owner: String,
    /// Decides `projectId`/`partnerId` (legacy) or `applicationId` (application).
    pub(crate) credential: CredentialKind,
    pub(crate) session_id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: Status,
    /// `""`, `"user initiated"` or `"system failure"` (real reasons, REST reference).
    pub(crate) reason: &'static str,
    /// Epoch milliseconds.
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    /// When it was stopped, epoch milliseconds.
    pub(crate) stopped_at: Option<u64>,
    /// Seconds recorded; set at stop.
    pub(crate) duration: u64,
    /// Bytes; 0 until available.
    pub(crate) size: u64,
    pub(crate) individual: bool,
    pub(crate) manual_streams: bool,
    pub(crate) has_audio: bool,
    pub(crate) has_video: bool,
    /// Composed archives only.
    pub(crate) resolution: Option<String>,
    pub(crate) multi_archive_tag: Option<String>,
    pub(crate) max_bitrate: Option<u64>,
    pub(crate) quantization_parameter: Option<u64>,
}

impl Archive {
    /// The real API's Archive JSON; `base_url` (e.g. `http://127.0.0.1:PORT`) prefixes the
    /// download URL, which only an `available` archive has.
    pub(crate) fn to_wire(&self, base_url: &str) -> Value {
        let available = self.status == Status::Available;
        let mut wire = json!({
            "id": self.id,
            "status": self.status.as_str(),
            "name": self.name,
            "reason": self.reason,
            "sessionId": self.session_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "size": self.size,
            "duration": self.duration,
            "outputMode": if self.individual { "individual" } else { "composed" },
            "streamMode": if self.manual_streams { "manual" } else { "auto" },
            "hasAudio": self.has_audio,
            "hasVideo": self.has_video,
            "hasTranscription": false,
            "resolution": self.resolution,
            "url": available.then(|| format!("{base_url}{}", download_path(&self.id))),
            "event": "archive",
            "multiArchiveTag": self.multi_archive_tag,
            "sha256sum": if available { sha256_hex(&recording(self.size)) } else { String::new() },
            "password": "",
        });
        if let Some(object) = wire.as_object_mut() {
            match self.credential {
                CredentialKind::Legacy => {
                    object.insert("projectId".into(), json!(self.owner));
                    // The REST reference shows a numeric partnerId; SDK fixtures a string.
                    let partner = self
                        .owner
                        .parse::<u64>()
                        .map_or(json!(self.owner), |n| json!(n));
                    object.insert("partnerId".into(), partner);
                }
                CredentialKind::Application => {
                    object.insert("applicationId".into(), json!(self.owner));
                }
            }
            if let Some(bitrate) = self.max_bitrate {
                object.insert("maxBitrate".into(), json!(bitrate));
            }
            if let Some(qp) = self.quantization_parameter {
                object.insert("quantizationParameter".into(), json!(qp));
            }
        }
        wire
    }
}

/// Where an available archive can be downloaded, relative to the emulator's base URL.
pub(crate) fn download_path(id: &str) -> String {
    format!("/_emulator/downloads/{id}.mp4")
}

/// The size of the file a recording of `duration_s` seconds produces: 1 KiB per started
/// second, between 1 and 64 KiB, so that downloads stay small.
pub(crate) fn size_for(duration_s: u64) -> u64 {
    1024 * (1 + duration_s.min(63))
}

/// A tiny but structurally valid MP4 of `size` bytes: an `ftyp` box, then a `free` box.
pub(crate) fn recording(size: u64) -> Vec<u8> {
    const FTYP: [u8; 24] = *b"\0\0\0\x18ftypisom\0\0\x02\0isommp41";
    let size = usize::try_from(size.max(32)).unwrap_or(32);
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&FTYP);
    let free = u32::try_from(size - FTYP.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&free.to_be_bytes());
    bytes.extend_from_slice(b"free");
    bytes.resize(size, 0);
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    let hash = digest(&SHA256, bytes);
    hash.as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
