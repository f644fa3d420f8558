use super::*;

fn sample(credential: CredentialKind, owner: &str) -> Archive {
    Archive {
        id: "5b1521e6-115f-4efd-bed9-e527b87f0699".into(),
        owner: owner.into(),
        credential,
        session_id: "1_abc".into(),
        name: None,
        status: Status::Started,
        reason: "",
        created_at: 1_727_870_434_974,
        updated_at: 1_727_870_434_974,
        stopped_at: None,
        duration: 0,
        size: 0,
        individual: false,
        manual_streams: false,
        has_audio: true,
        has_video: true,
        resolution: Some("640x480".into()),
        multi_archive_tag: None,
        max_bitrate: None,
        quantization_parameter: None,
    }
}

#[test]
fn statuses_round_trip_and_only_started_and_paused_are_active() {
    for status in Status::ALL {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("STARTED"), None);
    let active: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_active()).collect();
    assert_eq!(active, [Status::Started, Status::Paused]);
}

#[test]
fn legacy_and_application_archives_name_their_owner_differently() {
    let legacy = sample(CredentialKind::Legacy, "123456").to_wire("http://e");
    assert_eq!(legacy["projectId"], "123456");
    assert_eq!(legacy["partnerId"], 123_456);
    assert!(legacy.get("applicationId").is_none());
    assert_eq!(legacy["url"], Value::Null);
    assert_eq!(legacy["sha256sum"], "");
    assert_eq!(legacy["event"], "archive");
    let app = sample(CredentialKind::Application, "app-id").to_wire("http://e");
    assert_eq!(app["applicationId"], "app-id");
    assert!(app.get("projectId").is_none() && app.get("partnerId").is_none());
}

#[test]
fn an_available_archive_has_a_download_url_and_the_checksum_of_its_file() {
    let mut archive = sample(CredentialKind::Legacy, "key");
    archive.status = Status::Available;
    archive.size = size_for(3);
    let wire = archive.to_wire("http://127.0.0.1:9");
    let url = format!("http://127.0.0.1:9/_emulator/downloads/{}.mp4", archive.id);
    assert_eq!(wire["url"], url);
    assert_eq!(wire["partnerId"], "key");
    assert_eq!(wire["sha256sum"].as_str().map(str::len), Some(64));
}

#[test]
fn recordings_have_the_announced_size_and_start_with_an_ftyp_box() {
    for duration in [0, 1, 63, 64, u64::MAX] {
        let size = size_for(duration);
        assert!((1024..=65_536).contains(&size));
        let file = recording(size);
        assert_eq!(file.len() as u64, size);
        assert_eq!(&file[4..8], b"ftyp");
        assert_eq!(&file[28..32], b"free");
    }
}
