//! The archive routes of the emulated Vonage API, `/v2/project/{id}/archive…` (contract §6):
//! path and method, then the same auth as `/session/create`, then the project check, then
//! the call itself.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, Response, StatusCode};
use serde_json::json;

use super::error::ArchiveError;
use super::{base_url, now_ms, options};
use crate::emulator::auth::Presented;
use crate::emulator::connections::admit_project_call;
use crate::emulator::reply;
use crate::emulator::state::Shared;

/// The default and the largest page of `GET …/archive` (REST reference).
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;

/// What an archive path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    /// `…/archive`: list (GET) or start (POST).
    Collection,
    /// `…/archive/{archiveId}`: get (GET) or delete (DELETE).
    One(&'a str),
    /// `…/archive/{archiveId}/stop`: stop (POST).
    Stop(&'a str),
}

/// Answers an archive call, or `None` if the path is not an archive path.
pub(crate) fn route(
    shared: &Shared,
    parts: &Parts,
    presented: Option<&Presented>,
    body: &[u8],
) -> Option<Response<Body>> {
    let (project, target) = parse_path(parts.uri.path())?;
    let allowed: &[Method] = match target {
        Target::Collection => &[Method::GET, Method::POST],
        Target::One(_) => &[Method::GET, Method::DELETE],
        Target::Stop(_) => &[Method::POST],
    };
    let now = now_ms();
    let owner = match admit_project_call(shared, parts, allowed, presented, project, now) {
        Ok(owner) => owner,
        Err(refused) => return Some(*refused),
    };
    let base = base_url(&parts.headers, &parts.uri);
    let response = match (target, &parts.method) {
        (Target::Collection, &Method::POST) => match options::parse(body) {
            Ok(options) => archive_reply(shared.archives(|archives, sessions| {
                let started = archives.start(sessions, &owner, options, now);
                started.map(|archive| archive.to_wire(&base))
            })),
            Err(message) => reply::error(StatusCode::BAD_REQUEST, &message),
        },
        (Target::Collection, _) => list(shared, &owner, parts.uri.query(), &base),
        (Target::Stop(id), _) => archive_reply(shared.archives(|archives, _| {
            let stopped = archives.stop(&owner, id, now);
            stopped.map(|archive| archive.to_wire(&base))
        })),
        (Target::One(id), &Method::DELETE) => {
            match shared.archives(|archives, _| archives.delete(&owner, id, now)) {
                Ok(()) => reply::no_content(),
                Err(error) => archive_error(error),
            }
        }
        (Target::One(id), _) => archive_reply(shared.archives(|archives, _| {
            archives
                .get(&owner, id)
                .map(|archive| archive.to_wire(&base))
        })),
    };
    Some(response)
}

/// `/v2/project/{id}/archive[/{archiveId}[/stop]]`, tolerating one trailing slash.
fn parse_path(path: &str) -> Option<(&str, Target<'_>)> {
    let rest = path.strip_prefix("/v2/project/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = rest.split('/');
    let project = segments.next().filter(|project| !project.is_empty())?;
    if segments.next()? != "archive" {
        return None;
    }
    let target = match (segments.next(), segments.next(), segments.next()) {
        (None, _, _) => Target::Collection,
        (Some(id), None, _) if !id.is_empty() => Target::One(id),
        (Some(id), Some("stop"), None) if !id.is_empty() => Target::Stop(id),
        _ => return None,
    };
    Some((project, target))
}

/// `GET …/archive?offset=&count=&sessionId=`: `{"count": total, "items": […]}`.
fn list(shared: &Shared, owner: &str, query: Option<&str>, base: &str) -> Response<Body> {
    let (offset, count, session_id) = match list_query(query.unwrap_or("")) {
        Ok(parsed) => parsed,
        Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
    };
    let body = shared.archives(|archives, _| {
        let (total, page) = archives.page(owner, session_id.as_deref(), offset, count);
        let items: Vec<_> = page.iter().map(|archive| archive.to_wire(base)).collect();
        json!({"count": total, "items": items})
    });
    reply::json(StatusCode::OK, &body)
}

/// Offset (default 0), count (default 50, at most 1000) and the session filter; empty
/// values count as absent and the first of repeated keys wins.
fn list_query(query: &str) -> Result<(usize, usize, Option<String>), String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    };
    let number = |name: &str, default: usize| match field(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| format!("Invalid request: {name} must be a non-negative integer")),
    };
    let offset = number("offset", 0)?;
    let count = number("count", DEFAULT_COUNT)?;
    if count > MAX_COUNT {
        return Err(format!(
            "Invalid request: count must be at most {MAX_COUNT}"
        ));
    }
    Ok((offset, count, field("sessionId").map(str::to_owned)))
}

fn archive_reply(result: Result<serde_json::Value, ArchiveError>) -> Response<Body> {
    match result {
        Ok(archive) => reply::json(StatusCode::OK, &archive),
        Err(error) => archive_error(error),
    }
}

fn archive_error(error: ArchiveError) -> Response<Body> {
    let (status, code, message) = error.parts();
    reply::coded(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_recognised_and_others_are_not() {
        let cases = [
            ("/v2/project/k/archive", Some(("k", Target::Collection))),
            ("/v2/project/k/archive/", Some(("k", Target::Collection))),
            ("/v2/project/k/archive/a1", Some(("k", Target::One("a1")))),
            (
                "/v2/project/k/archive/a1/stop",
                Some(("k", Target::Stop("a1"))),
            ),
            (
                "/v2/project/k/archive/a1/stop/",
                Some(("k", Target::Stop("a1"))),
            ),
            ("/v2/project/k/archive/a1/layout", None),
            ("/v2/project/k/archive/a1/stop/x", None),
            ("/v2/project/k/archive//stop", None),
            ("/v2/project//archive", None),
            ("/v2/project/k/broadcast", None),
            ("/v2/project/k", None),
            ("/session/create", None),
        ];
        for (path, expected) in cases {
            assert_eq!(parse_path(path), expected, "{path}");
        }
    }

    #[test]
    fn list_queries_default_validate_and_filter() {
        assert_eq!(list_query(""), Ok((0, 50, None)));
        assert_eq!(list_query("offset=&count="), Ok((0, 50, None)));
        let full = list_query("offset=5&count=1000&sessionId=1_x&count=7");
        assert_eq!(full, Ok((5, 1000, Some("1_x".into()))));
        for bad in [
            "count=1001",
            "count=-1",
            "offset=abc",
            "offset=1.5",
            "count=99999999999999999999999",
        ] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
    }
}
