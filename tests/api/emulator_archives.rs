//! The emulator's archive API over real HTTP, in both credential modes: the lifecycle
//! (started → stopped → available → deleted), every conflict with the real codes, the
//! no-clients 400, 404s, paging with the total, injected failures and the project check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{API_KEY, APPLICATION_ID as APP_ID, FOREIGN_SESSION_ID, Kind, TestEmulator};

const RELAYED: &str = "Only routed sessions are allowed to initiate archives.";
const NO_CLIENTS: &str = "No clients are actively connected to the OpenTok session.";
const STOP_STATE: &str = "You can only stop an archive that has one of the following statuses: started OR paused OR stopped";
const DELETE_STATE: &str = "You can only delete an archive that has one of the following statuses: available OR uploaded OR deleted";

impl Kind {
    fn archives(self) -> String {
        format!("/v2/project/{}/archive", self.owner())
    }
}

impl TestEmulator {
    /// Calls the emulator; returns the status, the content type and the JSON body (or null).
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<Kind>,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(kind) = auth {
            let (name, value) = kind.header();
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the emulator answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// Creates a session with `form` and returns its ID.
    async fn session(&self, kind: Kind, form: &str) -> String {
        let (name, value) = kind.header();
        let request = self.http.post(format!("{}/session/create", self.url));
        let request = request
            .header(name, value)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        let response = request.body(form.to_owned()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body[0]["session_id"].as_str().unwrap().to_owned()
    }

    async fn connect(&self, session_id: &str, connected: bool) {
        let path = format!("/_emulator/sessions/{session_id}/connections");
        let (status, _, body) = self
            .call(
                Method::PUT,
                &path,
                None,
                Some(json!({"connected": connected})),
            )
            .await;
        assert_eq!(
            (status, &body["connected"]),
            (200, &json!(connected)),
            "{body}"
        );
    }

    /// A routed session of `kind` with connected clients.
    async fn live_session(&self, kind: Kind) -> String {
        let session_id = self
            .session(kind, "p2p.preference=disabled&archiveMode=manual")
            .await;
        self.connect(&session_id, true).await;
        session_id
    }

    async fn start(&self, kind: Kind, body: Value) -> (u16, String, Value) {
        self.call(Method::POST, &kind.archives(), Some(kind), Some(body))
            .await
    }

    async fn started(&self, kind: Kind, body: Value) -> String {
        let (status, _, archive) = self.start(kind, body).await;
        assert_eq!(status, 200, "{archive}");
        archive["id"].as_str().unwrap().to_owned()
    }

    async fn stop(&self, kind: Kind, id: &str) -> (u16, String, Value) {
        let path = format!("{}/{id}/stop", kind.archives());
        self.call(Method::POST, &path, Some(kind), Some(json!({})))
            .await
    }

    async fn get(&self, kind: Kind, id: &str) -> (u16, String, Value) {
        let path = format!("{}/{id}", kind.archives());
        self.call(Method::GET, &path, Some(kind), None).await
    }

    async fn list(&self, kind: Kind, query: &str) -> (u16, String, Value) {
        let path = format!("{}?{query}", kind.archives());
        self.call(Method::GET, &path, Some(kind), None).await
    }

    async fn delete(&self, kind: Kind, id: &str) -> (u16, String, Value) {
        let path = format!("{}/{id}", kind.archives());
        self.call(Method::DELETE, &path, Some(kind), None).await
    }
}

/// The real error body: `{"code", "message", "description"}` with description = message.
fn error_body(code: i64, message: &str) -> Value {
    json!({"code": code, "message": message, "description": message})
}

#[tokio::test]
async fn the_full_lifecycle_in_both_credential_modes() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    for kind in [Kind::Legacy, Kind::Application] {
        let session_id = emulator.live_session(kind).await;
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (status, content_type, started) = emulator
            .start(kind, json!({"sessionId": session_id, "name": "Foo"}))
            .await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "{started}"
        );
        let id = started["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{started}");
        let created_at = started["createdAt"].as_u64().unwrap();
        assert!(
            created_at >= before && created_at < before + 10_000,
            "{started}"
        );
        #[rustfmt::skip]
        let mut expected = json!({
            "id": id, "status": "started", "name": "Foo", "reason": "", "sessionId": session_id,
            "createdAt": created_at, "updatedAt": created_at, "size": 0, "duration": 0,
            "outputMode": "composed", "streamMode": "auto", "hasAudio": true, "hasVideo": true,
            "hasTranscription": false, "resolution": "640x480", "url": null, "event": "archive",
            "multiArchiveTag": null, "sha256sum": "", "password": "",
        });
        match kind {
            Kind::Legacy => {
                expected["projectId"] = json!(API_KEY);
                expected["partnerId"] = json!(123_456);
            }
            Kind::Application => expected["applicationId"] = json!(APP_ID),
        }
        assert_eq!(started, expected);

        let (status, _, stopped) = emulator.stop(kind, id).await;
        assert_eq!(status, 200, "{stopped}");
        assert_eq!(
            (&stopped["status"], &stopped["reason"]),
            (&json!("stopped"), &json!("user initiated"))
        );
        assert_eq!(stopped["duration"], 0);
        assert_eq!(stopped["url"], Value::Null);

        let (status, _, available) = emulator.get(kind, id).await;
        assert_eq!(
            (status, &available["status"]),
            (200, &json!("available")),
            "{available}"
        );
        let size = available["size"].as_u64().unwrap();
        assert!(size > 0, "{available}");
        assert_eq!(available["sha256sum"].as_str().unwrap().len(), 64);
        let url = available["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!("{}/_emulator/downloads/{id}.mp4", emulator.url)
        );
        let file = emulator.http.get(url).send().await.unwrap();
        assert_eq!(file.headers()[CONTENT_TYPE], "video/mp4");
        assert_eq!(file.bytes().await.unwrap().len() as u64, size);

        let (status, _, list) = emulator
            .call(Method::GET, &kind.archives(), Some(kind), None)
            .await;
        assert_eq!((status, &list["count"]), (200, &json!(1)), "{list}");
        assert_eq!(list["items"][0], available);

        let (status, content_type, body) = emulator.delete(kind, id).await;
        assert_eq!(
            (status, content_type.as_str(), body),
            (204, "", Value::Null)
        );
        let (status, _, deleted) = emulator.get(kind, id).await;
        assert_eq!(
            (status, &deleted["status"], &deleted["url"]),
            (200, &json!("deleted"), &Value::Null)
        );
        let (_, _, list) = emulator
            .call(Method::GET, &kind.archives(), Some(kind), None)
            .await;
        assert_eq!(list, json!({"count": 0, "items": []}));
    }
    let log = emulator
        .call(Method::GET, "/_emulator/requests", None, None)
        .await
        .2;
    let start = log
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "POST" && r["path"] == Kind::Legacy.archives());
    assert_eq!(
        start.unwrap()["json"]["name"],
        "Foo",
        "the request log keeps JSON bodies"
    );
}

#[tokio::test]
async fn start_options_are_echoed_and_python_nulls_are_absent() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let session_id = emulator.live_session(Kind::Application).await;
    #[rustfmt::skip]
    let python = json!({"sessionId": session_id, "name": null, "hasAudio": true, "hasVideo": false,
        "outputMode": "individual", "resolution": null, "streamMode": "manual", "layout": null,
        "multiArchiveTag": "t1", "maxBitrate": null, "quantizationParameter": null});
    let (status, _, archive) = emulator.start(Kind::Application, python).await;
    assert_eq!(status, 200, "{archive}");
    assert_eq!(archive["outputMode"], "individual");
    assert_eq!(archive["resolution"], Value::Null);
    assert_eq!(archive["streamMode"], "manual");
    assert_eq!(
        (&archive["hasAudio"], &archive["hasVideo"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        (&archive["name"], &archive["multiArchiveTag"]),
        (&Value::Null, &json!("t1"))
    );

    // @vonage/video stops with a JSON content type and no body at all.
    let path = format!(
        "{}/{}/stop",
        Kind::Application.archives(),
        archive["id"].as_str().unwrap()
    );
    let (name, value) = Kind::Application.header();
    let request = emulator
        .http
        .post(format!("{}{path}", emulator.url))
        .header(name, value);
    let response = request
        .header(CONTENT_TYPE, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn relayed_sessions_sessions_without_clients_and_bad_bodies_are_refused() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let kind = Kind::Legacy;
    let relayed = emulator.session(kind, "p2p.preference=enabled").await;
    emulator.connect(&relayed, true).await;
    let (status, content_type, body) = emulator.start(kind, json!({"sessionId": relayed})).await;
    assert_eq!(
        (status, content_type.as_str(), body),
        (409, "application/json", error_body(15008, RELAYED))
    );

    let idle = emulator.session(kind, "p2p.preference=disabled").await;
    let (status, _, body) = emulator.start(kind, json!({"sessionId": idle})).await;
    assert_eq!((status, body), (400, error_body(-1, NO_CLIENTS)));
    emulator.connect(&idle, true).await;
    emulator.connect(&idle, false).await;
    assert_eq!(
        emulator.start(kind, json!({"sessionId": idle})).await.0,
        400
    );

    let routed = emulator.live_session(kind).await;
    #[rustfmt::skip]
    let bad = [
        json!({}),
        json!({"sessionId": "not-a-session"}),
        json!({"sessionId": routed, "outputMode": "individual", "resolution": "1280x720"}),
        json!({"sessionId": routed, "resolution": "800x600"}),
        json!({"sessionId": routed, "layout": {"type": "pip", "stylesheet": "x"}}),
        json!({"sessionId": routed, "hasAudio": false, "hasVideo": false}),
        json!([routed]),
    ];
    for body in bad {
        let (status, _, error) = emulator.start(kind, body.clone()).await;
        assert_eq!(
            (status, &error["code"]),
            (400, &json!(-1)),
            "{body}: {error}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid request"),
            "{error}"
        );
    }
    let url = format!("{}{}", emulator.url, kind.archives());
    let (name, value) = kind.header();
    let garbage = emulator
        .http
        .post(url)
        .header(name, value)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}

#[tokio::test]
async fn unknown_and_foreign_sessions_and_archives_are_404() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let not_found = |message: &str| error_body(-1, message);
    let session_404 = not_found("Not found. You passed in an invalid session ID.");
    let archive_404 = not_found("Not found. You passed in an invalid archive ID.");
    let (status, _, body) = emulator
        .start(Kind::Legacy, json!({"sessionId": FOREIGN_SESSION_ID}))
        .await;
    assert_eq!((status, body), (404, session_404.clone()));
    // The application's session is not the legacy project's.
    let app_session = emulator.live_session(Kind::Application).await;
    let (status, _, body) = emulator
        .start(Kind::Legacy, json!({"sessionId": app_session}))
        .await;
    assert_eq!((status, body), (404, session_404));

    let app_archive = emulator
        .started(Kind::Application, json!({"sessionId": app_session}))
        .await;
    let unknown = "4d1bbca4-0f1c-4c4e-9c55-b6e9f1b0f3a1";
    for id in [unknown, app_archive.as_str()] {
        assert_eq!(
            emulator.get(Kind::Legacy, id).await.2,
            archive_404,
            "get {id}"
        );
        assert_eq!(
            emulator.stop(Kind::Legacy, id).await.2,
            archive_404,
            "stop {id}"
        );
        assert_eq!(
            emulator.delete(Kind::Legacy, id).await.0,
            404,
            "delete {id}"
        );
    }
    let (_, _, list) = emulator.list(Kind::Legacy, "").await;
    assert_eq!(list["count"], 0, "another owner's archives are not listed");
}

#[tokio::test]
async fn one_recording_per_session_unless_tags_differ() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let kind = Kind::Application;
    let session_id = emulator.live_session(kind).await;
    let first = emulator
        .started(kind, json!({"sessionId": session_id}))
        .await;
    let (status, _, body) = emulator.start(kind, json!({"sessionId": session_id})).await;
    assert_eq!(
        (status, body),
        (409, error_body(15001, "Session is already being recorded."))
    );
    emulator
        .started(
            kind,
            json!({"sessionId": session_id, "multiArchiveTag": "a"}),
        )
        .await;
    let again = emulator.start(
        kind,
        json!({"sessionId": session_id, "multiArchiveTag": "a"}),
    );
    assert_eq!(again.await.0, 409);

    // Disconnecting pauses; a paused archive still counts and can be stopped.
    emulator.connect(&session_id, false).await;
    assert_eq!(emulator.get(kind, &first).await.2["status"], "paused");
    assert_eq!(emulator.stop(kind, &first).await.2["status"], "stopped");
    emulator.connect(&session_id, true).await;
    emulator
        .started(kind, json!({"sessionId": session_id}))
        .await;
}

#[tokio::test]
async fn stop_and_delete_in_the_wrong_state_are_409_with_the_real_codes() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let kind = Kind::Legacy;
    let session_id = emulator.live_session(kind).await;
    let id = emulator
        .started(kind, json!({"sessionId": session_id}))
        .await;
    let (status, _, body) = emulator.delete(kind, &id).await;
    assert_eq!((status, body), (409, error_body(15004, DELETE_STATE)));
    assert_eq!(emulator.stop(kind, &id).await.0, 200);
    // Available on the next read (no processing delay): no longer stoppable.
    let (status, _, body) = emulator.stop(kind, &id).await;
    assert_eq!((status, body), (409, error_body(15002, STOP_STATE)));

    let failed = emulator
        .started(kind, json!({"sessionId": session_id}))
        .await;
    let path = format!("/_emulator/archives/{failed}/status");
    let (status, _, forced) = emulator
        .call(Method::PUT, &path, None, Some(json!({"status": "failed"})))
        .await;
    assert_eq!(
        (status, &forced["status"], &forced["reason"]),
        (200, &json!("failed"), &json!("system failure"))
    );
    let (status, _, body) = emulator.get(kind, &failed).await;
    assert_eq!(
        (status, &body["status"], &body["url"]),
        (200, &json!("failed"), &Value::Null)
    );
    assert_eq!(
        emulator.stop(kind, &failed).await.2,
        error_body(15002, STOP_STATE)
    );
    assert_eq!(
        emulator.delete(kind, &failed).await.2,
        error_body(15004, DELETE_STATE)
    );
    let bad = emulator.call(Method::PUT, &path, None, Some(json!({"status": "broken"})));
    assert_eq!(bad.await.0, 400);
}

#[tokio::test]
async fn a_processing_delay_keeps_stopped_archives_stopped_and_stop_idempotent() {
    let emulator = TestEmulator::with_archive_delay(Duration::from_secs(60)).await;
    let kind = Kind::Legacy;
    let session_id = emulator.live_session(kind).await;
    let id = emulator
        .started(kind, json!({"sessionId": session_id}))
        .await;
    assert_eq!(emulator.stop(kind, &id).await.2["status"], "stopped");
    assert_eq!(emulator.get(kind, &id).await.2["status"], "stopped");
    assert_eq!(
        emulator.stop(kind, &id).await.0,
        200,
        "stopped is in the stoppable list"
    );
    let settings = json!({"delayMs": 0});
    let (status, _, _) = emulator
        .call(
            Method::PUT,
            "/_emulator/archive-processing",
            None,
            Some(settings),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(emulator.get(kind, &id).await.2["status"], "available");
}

#[tokio::test]
async fn listing_pages_newest_first_with_the_total() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let kind = Kind::Legacy;
    let session_id = emulator.live_session(kind).await;
    let other = emulator.live_session(kind).await;
    let mut ids = Vec::new();
    for tag in ["a", "b", "c", "d", "e"] {
        ids.push(
            emulator
                .started(
                    kind,
                    json!({"sessionId": session_id, "multiArchiveTag": tag}),
                )
                .await,
        );
    }
    let elsewhere = emulator.started(kind, json!({"sessionId": other})).await;
    let item_ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, _, all) = emulator.list(kind, "").await;
    assert_eq!((status, &all["count"]), (200, &json!(6)));
    assert_eq!(item_ids(&all)[0], elsewhere, "newest first");
    let (_, _, page) = emulator
        .list(kind, &format!("sessionId={session_id}&offset=1&count=2"))
        .await;
    assert_eq!(
        page["count"], 5,
        "count is the total matching, not the page size"
    );
    assert_eq!(item_ids(&page), [ids[3].clone(), ids[2].clone()]);
    let (_, _, beyond) = emulator.list(kind, "offset=10").await;
    assert_eq!(beyond, json!({"count": 6, "items": []}));
    for bad in ["count=1001", "offset=-1", "count=ten"] {
        let (status, _, error) = emulator.list(kind, bad).await;
        assert_eq!((status, &error["code"]), (400, &json!(-1)), "{bad}");
    }
    assert_eq!(emulator.list(kind, "count=1000").await.0, 200);

    let control = emulator
        .call(Method::GET, "/_emulator/archives", None, None)
        .await
        .2;
    assert_eq!(control.as_array().unwrap().len(), 6);
    emulator
        .call(Method::POST, "/_emulator/reset", None, None)
        .await;
    let control = emulator
        .call(Method::GET, "/_emulator/archives", None, None)
        .await
        .2;
    assert_eq!(control, json!([]));
}

#[tokio::test]
async fn the_path_must_name_the_authenticated_project() {
    let emulator = TestEmulator::with_archive_delay(Duration::ZERO).await;
    let expected_message = "Invalid project ID: it is not the authenticated API key or application";
    for (kind, other) in [
        (Kind::Legacy, Kind::Application),
        (Kind::Application, Kind::Legacy),
    ] {
        let (status, content_type, body) = emulator
            .call(Method::GET, &other.archives(), Some(kind), None)
            .await;
        assert_eq!((status, content_type.as_str()), (403, "application/json"));
        assert_eq!(body, error_body(-1, expected_message));
    }
    let (status, _, body) = emulator
        .call(Method::GET, &Kind::Legacy.archives(), None, None)
        .await;
    assert_eq!(
        (status, body),
        (403, error_body(-1, "No suitable authentication found"))
    );
    let unknown = emulator.call(
        Method::GET,
        "/v2/project/654321/archive",
        Some(Kind::Legacy),
        None,
    );
    assert_eq!(unknown.await.0, 404, "a project the emulator does not know");
    let path = format!("{}/some-id/stop", Kind::Legacy.archives());
    let wrong_method = emulator.call(Method::GET, &path, Some(Kind::Legacy), None);
    assert_eq!(wrong_method.await.0, 405);
    let path = format!("/_emulator/sessions/{FOREIGN_SESSION_ID}/connections");
    let missing = emulator.call(Method::PUT, &path, None, Some(json!({"connected": true})));
    assert_eq!(
        missing.await.0,
        404,
        "only sessions the emulator created can be connected"
    );
}
