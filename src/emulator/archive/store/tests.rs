use super::*;
use crate::emulator::auth::CredentialKind;
use axum::http::StatusCode;

const OWNER: &str = "123456";
const ROUTED: &str = "1_routed";
const RELAYED: &str = "1_relayed";
const T0: u64 = 1_700_000_000_000;

fn session(session_id: &str, media_mode: &'static str) -> SessionRecord {
    SessionRecord {
        session_id: session_id.into(),
        owner: OWNER.into(),
        credential: CredentialKind::Legacy,
        media_mode,
        archive_mode: "manual",
        location: None,
        e2ee: false,
        archive_name: None,
        archive_resolution: None,
        created_at: T0,
    }
}

/// The total and the IDs of a page.
fn ids(page: (usize, Vec<&Archive>)) -> (usize, Vec<String>) {
    (page.0, page.1.into_iter().map(|a| a.id.clone()).collect())
}

fn sessions() -> Vec<SessionRecord> {
    vec![session(ROUTED, "routed"), session(RELAYED, "relayed")]
}

fn options(session_id: &str, tag: Option<&str>) -> StartOptions {
    StartOptions {
        session_id: session_id.into(),
        name: Some("rec".into()),
        has_audio: true,
        has_video: true,
        individual: false,
        resolution: Some("640x480".into()),
        manual_streams: false,
        multi_archive_tag: tag.map(str::to_owned),
        max_bitrate: None,
        quantization_parameter: None,
    }
}

/// Archives with the routed and relayed sessions connected.
fn connected() -> Archives {
    let mut archives = Archives::default();
    archives.set_connected(ROUTED, true, T0);
    archives.set_connected(RELAYED, true, T0);
    archives
}

fn start(archives: &mut Archives, tag: Option<&str>) -> Result<String, ArchiveError> {
    let started = archives.start(&sessions(), OWNER, options(ROUTED, tag), T0)?;
    Ok(started.id.clone())
}

#[test]
fn the_lifecycle_goes_started_stopped_available_deleted() {
    let mut archives = connected();
    let id = start(&mut archives, None).unwrap();
    let started = archives.get(OWNER, &id).unwrap();
    assert_eq!(started.status, Status::Started);
    assert_eq!(started.credential, CredentialKind::Legacy);

    let stopped = archives.stop(OWNER, &id, T0 + 12_345).unwrap();
    assert_eq!(
        (stopped.status, stopped.duration, stopped.reason),
        (Status::Stopped, 12, "user initiated")
    );
    archives.settle(T0 + 12_346, 1_000);
    assert_eq!(
        archives.get(OWNER, &id).unwrap().status,
        Status::Stopped,
        "delay not over"
    );
    assert_eq!(
        archives.stop(OWNER, &id, T0 + 12_400).unwrap().duration,
        12,
        "stop is idempotent"
    );
    archives.settle(T0 + 13_345, 1_000);
    let available = archives.get(OWNER, &id).unwrap();
    assert_eq!(
        (available.status, available.size),
        (Status::Available, size_for(12))
    );
    assert_eq!(
        archives.stop(OWNER, &id, T0 + 14_000).unwrap_err(),
        ArchiveError::StopState
    );

    archives.delete(OWNER, &id, T0 + 15_000).unwrap();
    assert_eq!(archives.get(OWNER, &id).unwrap().status, Status::Deleted);
    archives.delete(OWNER, &id, T0 + 16_000).unwrap();
    assert_eq!(ids(archives.page(OWNER, None, 0, 50)), (0, vec![]));
}

#[test]
fn starting_requires_an_owned_routed_connected_session() {
    let mut archives = Archives::default();
    let all = sessions();
    let refused = |archives: &mut Archives, owner: &str, session_id: &str| {
        archives
            .start(&all, owner, options(session_id, None), T0)
            .unwrap_err()
    };
    assert_eq!(
        refused(&mut archives, OWNER, "1_unknown"),
        ArchiveError::SessionNotFound
    );
    assert_eq!(
        refused(&mut archives, "654321", ROUTED),
        ArchiveError::SessionNotFound
    );
    assert_eq!(
        refused(&mut archives, OWNER, RELAYED),
        ArchiveError::Relayed
    );
    assert_eq!(
        refused(&mut archives, OWNER, ROUTED),
        ArchiveError::NoClients
    );
    archives.set_connected(ROUTED, true, T0);
    archives.set_connected(ROUTED, false, T0);
    assert_eq!(
        refused(&mut archives, OWNER, ROUTED),
        ArchiveError::NoClients
    );
    archives.set_connected(ROUTED, true, T0);
    assert!(
        archives
            .start(&all, OWNER, options(ROUTED, None), T0)
            .is_ok()
    );
}

#[test]
fn one_active_archive_per_session_and_tag() {
    let mut archives = connected();
    let first = start(&mut archives, None).unwrap();
    assert_eq!(
        start(&mut archives, None),
        Err(ArchiveError::AlreadyRecording)
    );
    let tagged = start(&mut archives, Some("a")).unwrap();
    assert_eq!(
        start(&mut archives, Some("a")),
        Err(ArchiveError::AlreadyRecording)
    );
    assert!(start(&mut archives, Some("b")).is_ok());
    archives.force_status(&first, Status::Paused, T0 + 1);
    assert_eq!(
        start(&mut archives, None),
        Err(ArchiveError::AlreadyRecording),
        "paused is active"
    );
    archives.stop(OWNER, &first, T0 + 2).unwrap();
    archives.stop(OWNER, &tagged, T0 + 2).unwrap();
    assert!(start(&mut archives, None).is_ok());
    assert!(start(&mut archives, Some("a")).is_ok());
}

#[test]
fn reconnecting_resumes_paused_archives() {
    let mut archives = connected();
    let id = start(&mut archives, None).unwrap();
    archives.set_connected(ROUTED, false, T0 + 1);
    assert_eq!(archives.get(OWNER, &id).unwrap().status, Status::Paused);
    archives.set_connected(ROUTED, true, T0 + 2);
    let resumed = archives.get(OWNER, &id).unwrap();
    assert_eq!(
        (resumed.status, resumed.updated_at),
        (Status::Started, T0 + 2)
    );
}

#[test]
fn stop_and_delete_follow_the_state_rules() {
    let mut archives = connected();
    let id = start(&mut archives, None).unwrap();
    assert_eq!(
        archives.delete(OWNER, &id, T0),
        Err(ArchiveError::DeleteState)
    );
    assert_eq!(
        archives.stop("654321", &id, T0).unwrap_err(),
        ArchiveError::ArchiveNotFound
    );
    for status in Status::ALL {
        archives.force_status(&id, status, T0 + 5_000).unwrap();
        let stop = archives.stop(OWNER, &id, T0 + 6_000).map(|_| ());
        let stoppable = matches!(status, Status::Started | Status::Paused | Status::Stopped);
        assert_eq!(stop.is_ok(), stoppable, "stop when {status:?}");
        archives.force_status(&id, status, T0 + 7_000).unwrap();
        let delete = archives.delete(OWNER, &id, T0 + 8_000);
        let deletable = matches!(
            status,
            Status::Available | Status::Uploaded | Status::Deleted
        );
        assert_eq!(delete.is_ok(), deletable, "delete when {status:?}");
    }
    assert_eq!(
        archives.get(OWNER, "nope").unwrap_err(),
        ArchiveError::ArchiveNotFound
    );
}

#[test]
fn forcing_failed_and_available_keeps_the_archive_consistent() {
    let mut archives = connected();
    let id = start(&mut archives, None).unwrap();
    let failed = archives
        .force_status(&id, Status::Failed, T0 + 3_000)
        .unwrap();
    assert_eq!(
        (failed.status, failed.reason),
        (Status::Failed, "system failure")
    );
    let available = archives
        .force_status(&id, Status::Available, T0 + 4_000)
        .unwrap();
    assert_eq!((available.duration, available.size), (3, size_for(3)));
    assert!(archives.force_status("nope", Status::Failed, T0).is_none());
}

#[test]
fn pages_are_newest_first_with_the_total_and_an_optional_session_filter() {
    let mut archives = connected();
    let mut started = Vec::new();
    for tag in ["a", "b", "c", "d", "e"] {
        started.push(start(&mut archives, Some(tag)).unwrap());
    }
    let expected = (5, vec![started[3].clone(), started[2].clone()]);
    assert_eq!(ids(archives.page(OWNER, None, 1, 2)), expected);
    assert_eq!(archives.page(OWNER, None, 10, 50).0, 5);
    assert!(archives.page(OWNER, None, 10, 50).1.is_empty());
    assert_eq!(ids(archives.page(OWNER, Some(ROUTED), 0, 0)), (5, vec![]));
    assert_eq!(
        ids(archives.page(OWNER, Some("1_other"), 0, 50)),
        (0, vec![])
    );
    assert_eq!(ids(archives.page("654321", None, 0, 50)), (0, vec![]));
    assert_eq!(archives.all().len(), 5);
    assert_eq!(
        archives
            .find(&started[0])
            .map(|a| a.multi_archive_tag.as_deref()),
        Some(Some("a"))
    );
}

#[test]
fn error_bodies_use_the_real_codes() {
    let codes: Vec<_> = [
        ArchiveError::Relayed,
        ArchiveError::StopState,
        ArchiveError::DeleteState,
    ]
    .into_iter()
    .map(|error| (error.parts().0.as_u16(), error.parts().1))
    .collect();
    assert_eq!(codes, [(409, 15008), (409, 15002), (409, 15004)]);
    assert_eq!(ArchiveError::NoClients.parts().0, StatusCode::BAD_REQUEST);
    assert_eq!(
        ArchiveError::ArchiveNotFound.parts().0,
        StatusCode::NOT_FOUND
    );
}
