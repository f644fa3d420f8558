//! Every archive and which sessions have connected clients, with the real API's rules for
//! start, stop, delete and listing (contract §6, §8). Pure: the caller passes the clock.

use std::collections::BTreeSet;

use super::error::ArchiveError;
use super::model::{Archive, Status, size_for};
use super::options::StartOptions;
use crate::emulator::state::SessionRecord;

/// The archives (oldest first) and the sessions marked as having connected clients.
#[derive(Debug, Default)]
pub(crate) struct Archives {
    items: Vec<Archive>,
    connected: BTreeSet<String>,
}

impl Archives {
    /// Makes archives stopped at least `delay_ms` ago `available`, with a file.
    pub(crate) fn settle(&mut self, now_ms: u64, delay_ms: u64) {
        for archive in &mut self.items {
            let Some(stopped_at) = archive.stopped_at else {
                continue;
            };
            let ready_at = stopped_at.saturating_add(delay_ms);
            if archive.status == Status::Stopped && ready_at <= now_ms {
                archive.status = Status::Available;
                archive.size = size_for(archive.duration);
                archive.updated_at = ready_at;
            }
        }
    }

    /// Starts an archive of one of `owner`'s sessions.
    pub(crate) fn start(
        &mut self,
        sessions: &[SessionRecord],
        owner: &str,
        options: StartOptions,
        now_ms: u64,
    ) -> Result<&Archive, ArchiveError> {
        let session = sessions
            .iter()
            .find(|s| s.session_id == options.session_id && s.owner == owner)
            .ok_or(ArchiveError::SessionNotFound)?;
        if session.media_mode == "relayed" {
            return Err(ArchiveError::Relayed);
        }
        if !self.connected.contains(&session.session_id) {
            return Err(ArchiveError::NoClients);
        }
        let busy = self.items.iter().any(|a| {
            a.session_id == session.session_id
                && a.status.is_active()
                && a.multi_archive_tag == options.multi_archive_tag
        });
        if busy {
            return Err(ArchiveError::AlreadyRecording);
        }
        self.items.push(Archive {
            id: uuid::Uuid::new_v4().to_string(),
            owner: owner.to_owned(),
            credential: session.credential,
            session_id: options.session_id,
            name: options.name,
            status: Status::Started,
            reason: "",
            created_at: now_ms,
            updated_at: now_ms,
            stopped_at: None,
            duration: 0,
            size: 0,
            individual: options.individual,
            manual_streams: options.manual_streams,
            has_audio: options.has_audio,
            has_video: options.has_video,
            resolution: options.resolution,
            multi_archive_tag: options.multi_archive_tag,
            max_bitrate: options.max_bitrate,
            quantization_parameter: options.quantization_parameter,
        });
        self.items.last().ok_or(ArchiveError::ArchiveNotFound)
    }

    /// Stops a started or paused archive; stopping a stopped one changes nothing.
    pub(crate) fn stop(
        &mut self,
        owner: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<&Archive, ArchiveError> {
        let archive = self.owned_mut(owner, id)?;
        match archive.status {
            Status::Started | Status::Paused => {
                archive.status = Status::Stopped;
                archive.reason = "user initiated";
                archive.duration = now_ms.saturating_sub(archive.created_at) / 1000;
                archive.stopped_at = Some(now_ms);
                archive.updated_at = now_ms;
            }
            Status::Stopped => {}
            _ => return Err(ArchiveError::StopState),
        }
        Ok(archive)
    }

    /// One of `owner`'s archives.
    pub(crate) fn get(&self, owner: &str, id: &str) -> Result<&Archive, ArchiveError> {
        self.items
            .iter()
            .find(|a| a.id == id && a.owner == owner)
            .ok_or(ArchiveError::ArchiveNotFound)
    }

    /// Deletes an available, uploaded or already deleted archive.
    pub(crate) fn delete(
        &mut self,
        owner: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<(), ArchiveError> {
        let archive = self.owned_mut(owner, id)?;
        match archive.status {
            Status::Available | Status::Uploaded => {
                archive.status = Status::Deleted;
                archive.updated_at = now_ms;
                Ok(())
            }
            Status::Deleted => Ok(()),
            _ => Err(ArchiveError::DeleteState),
        }
    }

    /// `owner`'s archives that are not deleted, newest first, optionally of one session:
    /// the total and the page `offset..offset + count`.
    pub(crate) fn page(
        &self,
        owner: &str,
        session_id: Option<&str>,
        offset: usize,
        count: usize,
    ) -> (usize, Vec<&Archive>) {
        let matching = || {
            self.items.iter().rev().filter(move |a| {
                a.owner == owner
                    && a.status != Status::Deleted
                    && session_id.is_none_or(|id| a.session_id == id)
            })
        };
        let page = matching().skip(offset).take(count).collect();
        (matching().count(), page)
    }

    /// Marks a session as having connected clients or not. Disconnecting pauses its started
    /// archives and reconnecting resumes them, as the real service does with publishers.
    pub(crate) fn set_connected(&mut self, session_id: &str, connected: bool, now_ms: u64) {
        if connected {
            self.connected.insert(session_id.to_owned());
        } else {
            self.connected.remove(session_id);
        }
        let (from, to) = if connected {
            (Status::Paused, Status::Started)
        } else {
            (Status::Started, Status::Paused)
        };
        for archive in &mut self.items {
            if archive.session_id == session_id && archive.status == from {
                archive.status = to;
                archive.updated_at = now_ms;
            }
        }
    }

    /// Forces an archive's status (control endpoint), keeping the archive consistent: a
    /// `failed` one gets the real reason, an `available` one a file.
    pub(crate) fn force_status(
        &mut self,
        id: &str,
        status: Status,
        now_ms: u64,
    ) -> Option<&Archive> {
        let archive = self.items.iter_mut().find(|a| a.id == id)?;
        // Leaving started/paused ends the recording; forcing `stopped` restarts processing.
        if status == Status::Stopped || (!status.is_active() && archive.stopped_at.is_none()) {
            archive.duration = now_ms.saturating_sub(archive.created_at) / 1000;
            archive.stopped_at = Some(now_ms);
        }
        match status {
            Status::Available => archive.size = size_for(archive.duration),
            Status::Failed => archive.reason = "system failure",
            _ => {}
        }
        archive.status = status;
        archive.updated_at = now_ms;
        Some(archive)
    }

    /// Any archive by ID, whoever owns it.
    pub(crate) fn find(&self, id: &str) -> Option<&Archive> {
        self.items.iter().find(|a| a.id == id)
    }

    /// Every archive, oldest first.
    pub(crate) fn all(&self) -> &[Archive] {
        &self.items
    }

    fn owned_mut(&mut self, owner: &str, id: &str) -> Result<&mut Archive, ArchiveError> {
        self.items
            .iter_mut()
            .find(|a| a.id == id && a.owner == owner)
            .ok_or(ArchiveError::ArchiveNotFound)
    }
}

#[cfg(test)]
mod tests;
