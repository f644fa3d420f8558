use super::*;

/// A routed session ID owned by API key 123456 (the SDK test suites' fixture).
const SESSION: &str = "1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4";

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn only_the_session_id_is_required_and_defaults_are_applied() {
    let options = parse(&body(serde_json::json!({"sessionId": SESSION}))).unwrap();
    let expected = StartOptions {
        session_id: SESSION.into(),
        name: None,
        has_audio: true,
        has_video: true,
        individual: false,
        resolution: Some("640x480".into()),
        manual_streams: false,
        multi_archive_tag: None,
        max_bitrate: None,
        quantization_parameter: None,
    };
    assert_eq!(options, expected);
}

#[test]
fn explicit_nulls_and_unknown_keys_are_ignored() {
    // Python opentok sends every option, unset ones as null.
    let python = serde_json::json!({
        "sessionId": SESSION, "name": null, "hasAudio": true, "hasVideo": true,
        "outputMode": "composed", "resolution": null, "streamMode": "auto", "layout": null,
        "multiArchiveTag": null, "maxBitrate": null, "quantizationParameter": null,
        "hasTranscription": false, "somethingNew": {"nested": [1, 2]},
    });
    let options = parse(&body(python)).unwrap();
    assert_eq!(options.resolution.as_deref(), Some("640x480"));
    assert_eq!(options.name, None);
}

#[test]
fn every_option_is_read() {
    let full = serde_json::json!({
        "sessionId": SESSION, "name": "Foo", "hasAudio": false, "hasVideo": true,
        "outputMode": "composed", "resolution": "1080x1920", "streamMode": "manual",
        "layout": {"type": "bestFit", "screenshareType": "pip"},
        "multiArchiveTag": "tag-1", "maxBitrate": 2_000_000.0,
    });
    let options = parse(&body(full)).unwrap();
    assert_eq!(options.name.as_deref(), Some("Foo"));
    assert!(!options.has_audio && options.has_video && options.manual_streams);
    assert_eq!(options.resolution.as_deref(), Some("1080x1920"));
    assert_eq!(options.multi_archive_tag.as_deref(), Some("tag-1"));
    assert_eq!(options.max_bitrate, Some(2_000_000));
    let individual = serde_json::json!({"sessionId": SESSION, "outputMode": "individual"});
    let individual = parse(&body(individual)).unwrap();
    assert!(individual.individual);
    assert_eq!(individual.resolution, None);
    let custom = serde_json::json!({"sessionId": SESSION,
        "layout": {"type": "custom", "stylesheet": "stream.instructor {width: 100%}"}});
    assert!(parse(&body(custom)).is_ok());
}

#[test]
fn invalid_bodies_are_refused_naming_the_field() {
    let with = |patch: Value| {
        let mut value = serde_json::json!({"sessionId": SESSION});
        for (key, field) in patch.as_object().unwrap() {
            value[key] = field.clone();
        }
        body(value)
    };
    #[rustfmt::skip]
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "sessionId"),
        (b"not json".to_vec(), "JSON object"),
        (b"[1]".to_vec(), "JSON object"),
        (body(serde_json::json!({"sessionId": ""})), "sessionId"),
        (body(serde_json::json!({"sessionId": 12})), "sessionId"),
        (body(serde_json::json!({"sessionId": "garbage"})), "sessionId"),
        (with(serde_json::json!({"outputMode": "mixed"})), "outputMode"),
        (with(serde_json::json!({"streamMode": "Auto"})), "streamMode"),
        (with(serde_json::json!({"hasAudio": "yes"})), "hasAudio"),
        (with(serde_json::json!({"hasAudio": false, "hasVideo": false})), "hasVideo"),
        (with(serde_json::json!({"resolution": "800x600"})), "resolution"),
        (with(serde_json::json!({"outputMode": "individual", "resolution": "640x480"})), "resolution"),
        (with(serde_json::json!({"layout": "pip"})), "layout"),
        (with(serde_json::json!({"layout": {"type": "grid"}})), "layout.type"),
        (with(serde_json::json!({"layout": {"type": "custom"}})), "layout.stylesheet"),
        (with(serde_json::json!({"layout": {"type": "pip", "stylesheet": "x"}})), "layout.stylesheet"),
        (with(serde_json::json!({"layout": {"type": "pip", "screenshareType": "pip"}})), "screenshareType"),
        (with(serde_json::json!({"layout": {"screenshareType": "custom"}})), "screenshareType"),
        (with(serde_json::json!({"name": 5})), "name"),
        (with(serde_json::json!({"multiArchiveTag": true})), "multiArchiveTag"),
        (with(serde_json::json!({"maxBitrate": 99})), "maxBitrate"),
        (with(serde_json::json!({"maxBitrate": 150_000.5})), "maxBitrate"),
        (with(serde_json::json!({"maxBitrate": -1})), "maxBitrate"),
        (with(serde_json::json!({"quantizationParameter": 41})), "quantizationParameter"),
        (with(serde_json::json!({"maxBitrate": 200000, "quantizationParameter": 20})), "mutually exclusive"),
    ];
    for (input, needle) in cases {
        let text = String::from_utf8_lossy(&input).into_owned();
        let error = parse(&input).expect_err(&text);
        assert!(error.starts_with("Invalid request: "), "{text}: {error}");
        assert!(error.contains(needle), "{text}: {error}");
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = parse(&input);
    }

    #[test]
    fn arbitrary_json_values_never_panic(text in "\\{\"sessionId\":\"1_MX4xMjM0NTZ-\",\"[a-zA-Z]{1,20}\":[0-9a-z\"{}\\[\\],.:-]{0,30}\\}") {
        let _ = parse(text.as_bytes());
    }
}
