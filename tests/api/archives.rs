//! Archives through our API against the emulator: the lifecycle, every conflict mapped to our
//! codes, permissions (moderators start and stop; readers, `video:archives:read`, read), and refusals before Vonage.

use serde_json::{Value, json};

use crate::helpers::{FOREIGN_SESSION_ID, Kind, TestApp, assert_problem, client, spawn_emulator};

const MODERATORS: &str =
    "[auth]\nanonymous_scopes = [\"video:create\", \"video:join\", \"video:moderate\"]\n";

async fn app(kind: Kind) -> TestApp {
    let upstream = spawn_emulator().await;
    TestApp::spawn_against(kind, &upstream, MODERATORS).await
}

/// A session of ours with someone connected (so it can be recorded).
/// `POST /sessions/{sid}/archives` with `body` on `app`.
async fn start_archive(app: &TestApp, sid: &str, body: &Value) -> reqwest::Response {
    app.post_json(&format!("/sessions/{sid}/archives"), body)
        .await
}

/// An archive started on `sid` with Vonage's defaults: our answer.
async fn started_archive(app: &TestApp, sid: &str) -> Value {
    start_archive(app, sid, &json!({}))
        .await
        .json()
        .await
        .unwrap()
}

async fn connected_session(app: &TestApp, body: Value) -> String {
    let (status, created) = app.create_session(&body).await;
    assert_eq!(status, 201, "{created}");
    let sid = created["sessionId"].as_str().unwrap().to_owned();
    let url = format!("{}/_emulator/sessions/{sid}/connections", app.upstream);
    let marked = client()
        .put(url)
        .json(&json!({"connected": true}))
        .send()
        .await
        .unwrap();
    assert!(marked.status().is_success());
    sid
}

#[tokio::test]
async fn the_full_lifecycle_through_our_api_in_both_credential_modes() {
    for kind in [Kind::Application, Kind::Legacy] {
        let app = app(kind).await;
        let sid = connected_session(&app, json!({})).await;

        let started = start_archive(
            &app,
            &sid,
            &json!({"name": "standup", "resolution": "1280x720"}),
        )
        .await;
        assert_eq!(started.status(), 201);
        let archive: Value = started.json().await.unwrap();
        assert_eq!(archive["status"], "started");
        assert_eq!(archive["sessionId"], sid);
        assert_eq!(archive["name"], "standup");
        assert_eq!(archive["resolution"], "1280x720");
        assert_eq!(archive["outputMode"], "composed");
        assert_eq!(archive["hasAudio"], true);
        assert!(archive["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(
            archive.get("url").is_none(),
            "no url until available: {archive}"
        );
        let id = archive["id"].as_str().unwrap().to_owned();

        let stopped = app
            .post_json(&format!("/archives/{id}/stop"), &json!({}))
            .await;
        assert_eq!(stopped.status(), 200);
        let fetched: Value = app.get_json(&format!("/archives/{id}")).await;
        assert_eq!(fetched["status"], "available", "{fetched}");
        assert!(
            fetched["url"].as_str().unwrap().starts_with("http"),
            "{fetched}"
        );
        assert!(fetched["sizeBytes"].as_u64().unwrap() > 0);

        let page: Value = app
            .get_json(&format!("/sessions/{sid}/archives?offset=0&count=10"))
            .await;
        assert_eq!(page["count"], 1);
        assert_eq!(page["items"][0]["id"], id.as_str());

        let request = app
            .upstream_requests()
            .await
            .into_iter()
            .find(|r| r["path"].as_str().unwrap().ends_with("/archive"));
        let request = request.expect("the start reached Vonage");
        assert_eq!(
            request["path"],
            format!("/v2/project/{}/archive", kind.owner())
        );
        assert_eq!(request["json"]["sessionId"], sid.as_str());
    }
}

#[tokio::test]
async fn vonage_conflicts_map_to_our_codes() {
    let app = app(Kind::Legacy).await;
    let relayed = connected_session(&app, json!({"mediaMode": "relayed"})).await;
    let response = start_archive(&app, &relayed, &json!({})).await;
    let problem = assert_problem(response, 409, "archive_conflict").await;
    assert!(
        !problem.to_string().contains("15008"),
        "Vonage's body is not echoed"
    );

    let sid = connected_session(&app, json!({})).await;
    let archive = started_archive(&app, &sid).await;
    let again = start_archive(&app, &sid, &json!({})).await;
    assert_problem(again, 409, "archive_conflict").await;
    let tagged = start_archive(&app, &sid, &json!({"multiArchiveTag": "second"})).await;
    assert_eq!(
        tagged.status(),
        201,
        "a distinct multiArchiveTag may record at once"
    );

    let id = archive["id"].as_str().unwrap();
    assert_eq!(
        app.post_json(&format!("/archives/{id}/stop"), &json!({}))
            .await
            .status(),
        200
    );
    let failed_url = format!("{}/_emulator/archives/{id}/status", app.upstream);
    client()
        .put(failed_url)
        .json(&json!({"status": "failed"}))
        .send()
        .await
        .unwrap();
    let stop_failed = app
        .post_json(&format!("/archives/{id}/stop"), &json!({}))
        .await;
    assert_problem(stop_failed, 409, "archive_conflict").await;

    let (_, lonely) = app.create_session(&json!({})).await;
    let lonely = lonely["sessionId"].as_str().unwrap();
    let nobody = start_archive(&app, lonely, &json!({})).await;
    assert_problem(nobody, 409, "session_not_active").await;

    let unknown = "0b6c6a4e-0a5c-4a58-9d2f-1e0f3f3d7c11";
    assert_problem(
        app.get(&format!("/archives/{unknown}")).await,
        404,
        "archive_not_found",
    )
    .await;
    let stop_unknown = app
        .post_json(&format!("/archives/{unknown}/stop"), &json!({}))
        .await;
    assert_problem(stop_unknown, 404, "archive_not_found").await;
}

#[tokio::test]
async fn refusals_happen_before_anything_is_sent_to_vonage() {
    let app = app(Kind::Application).await;
    let sid = connected_session(&app, json!({})).await;
    let before = app.upstream_requests().await.len();
    let foreign = start_archive(&app, FOREIGN_SESSION_ID, &json!({})).await;
    assert_problem(foreign, 404, "session_not_found").await;
    assert_problem(
        app.get(&format!("/sessions/{FOREIGN_SESSION_ID}/archives"))
            .await,
        404,
        "session_not_found",
    )
    .await;
    assert_problem(
        app.get("/archives/not-a-uuid").await,
        404,
        "archive_not_found",
    )
    .await;
    let cases = [
        (
            json!({"outputMode": "individual", "resolution": "1280x720"}),
            "resolution",
        ),
        (
            json!({"outputMode": "individual", "layout": {"type": "pip"}}),
            "layout",
        ),
        (
            json!({"layout": {"type": "bestFit", "stylesheet": "x"}}),
            "layout.stylesheet",
        ),
        (json!({"layout": {"type": "custom"}}), "layout.stylesheet"),
        (
            json!({"layout": {"type": "pip", "screenshareType": "pip"}}),
            "layout.screenshareType",
        ),
        (json!({"hasAudio": false, "hasVideo": false}), "hasVideo"),
        (json!({"resolution": "800x600"}), "resolution"),
        (json!({"name": ""}), "name"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(
            start_archive(&app, &sid, &body).await,
            400,
            "invalid_request",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with(field),
            "{body}: {problem}"
        );
    }
    for query in ["count=0", "count=1001", "offset=-1", "page=2"] {
        assert_problem(
            app.get(&format!("/sessions/{sid}/archives?{query}")).await,
            400,
            "invalid_request",
        )
        .await;
    }
    assert_eq!(
        app.upstream_requests().await.len(),
        before,
        "nothing reached Vonage"
    );
    let layout = json!({"layout": {"type": "custom", "stylesheet": "stream { width: 100% }"}, "streamMode": "manual"});
    assert_eq!(start_archive(&app, &sid, &layout).await.status(), 201);
}

#[tokio::test]
async fn only_moderators_start_and_stop_while_only_readers_read() {
    let upstream = spawn_emulator().await;
    let moderator = TestApp::spawn_against(Kind::Legacy, &upstream, MODERATORS).await;
    let anonymous = TestApp::spawn_against(Kind::Legacy, &upstream, "").await;
    let sid = connected_session(&moderator, json!({})).await;
    let archive = started_archive(&moderator, &sid).await;
    let id = archive["id"].as_str().unwrap();

    let start = start_archive(&anonymous, &sid, &json!({"multiArchiveTag": "x"})).await;
    assert_problem(start, 403, "forbidden").await;
    assert_problem(
        anonymous
            .post_json(&format!("/archives/{id}/stop"), &json!({}))
            .await,
        403,
        "forbidden",
    )
    .await;
    // Recordings are private by default: the default anonymous grant cannot read them.
    assert_problem(
        anonymous.get(&format!("/archives/{id}")).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        anonymous.get(&format!("/sessions/{sid}/archives")).await,
        403,
        "forbidden",
    )
    .await;
    let readers = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[auth]\nanonymous_scopes = [\"video:join\", \"video:archives:read\"]\n",
    )
    .await;
    assert_eq!(
        readers.get(&format!("/archives/{id}")).await.status(),
        200,
        "video:archives:read may read"
    );
    assert_eq!(
        readers
            .get(&format!("/sessions/{sid}/archives"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn archive_ids_are_sent_upstream_in_canonical_form_whatever_the_callers_spelling() {
    let app = app(Kind::Legacy).await;
    let sid = connected_session(&app, json!({})).await;
    let archive = started_archive(&app, &sid).await;
    let id = archive["id"].as_str().unwrap().to_owned();
    let simple = id.replace('-', "").to_uppercase();
    for spelling in [
        simple.clone(),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.to_uppercase(),
    ] {
        let fetched = app.get(&format!("/archives/{spelling}")).await;
        assert_eq!(fetched.status(), 200, "{spelling}");
        let fetched: Value = fetched.json().await.unwrap();
        assert_eq!(fetched["id"], id.as_str());
    }
    let stopped = app
        .post_json(&format!("/archives/{simple}/stop"), &json!({}))
        .await;
    assert_eq!(stopped.status(), 200);
    let paths: Vec<String> = app
        .upstream_requests()
        .await
        .iter()
        .filter_map(|r| r["path"].as_str().map(str::to_owned))
        .filter(|path| path.contains("/archive/"))
        .collect();
    assert_eq!(paths.len(), 5, "{paths:?}");
    for path in paths {
        assert!(path.contains(&format!("/archive/{id}")), "{path}");
    }
}
