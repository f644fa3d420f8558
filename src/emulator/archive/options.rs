//! The start-archive JSON body (contract §6): tolerant parsing (unknown keys ignored, explicit
//! `null`s as absent, as Python's opentok sends them) and the documented validation rules.
//! The 400 messages are the emulator's own wording; the real ones are not published.

use serde_json::{Map, Value};

use crate::emulator::form::RESOLUTIONS;
use crate::video::session_id;

/// Layout types of composed archives.
const LAYOUTS: [&str; 5] = [
    "bestFit",
    "pip",
    "verticalPresentation",
    "horizontalPresentation",
    "custom",
];

/// What a start call asked for, validated, with the defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartOptions {
    pub(crate) session_id: String,
    pub(crate) name: Option<String>,
    pub(crate) has_audio: bool,
    pub(crate) has_video: bool,
    /// `outputMode: individual`; composed otherwise.
    pub(crate) individual: bool,
    /// Composed: the given resolution or `640x480`; individual: none.
    pub(crate) resolution: Option<String>,
    /// `streamMode: manual`; auto otherwise.
    pub(crate) manual_streams: bool,
    pub(crate) multi_archive_tag: Option<String>,
    pub(crate) max_bitrate: Option<u64>,
    pub(crate) quantization_parameter: Option<u64>,
}

/// Parses and validates a start body; the error is the 400 message.
pub(crate) fn parse(body: &[u8]) -> Result<StartOptions, String> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice::<Value>(body)
            .map_err(|_| invalid("the body must be a JSON object"))?
    };
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))?;
    let session_id = string(object, "sessionId")?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("sessionId is required"))?;
    if session_id::decode(session_id).is_err() {
        return Err(invalid("sessionId is not a valid session ID"));
    }
    let individual = match string(object, "outputMode")? {
        None | Some("composed") => false,
        Some("individual") => true,
        Some(_) => return Err(invalid("outputMode must be composed or individual")),
    };
    let manual_streams = match string(object, "streamMode")? {
        None | Some("auto") => false,
        Some("manual") => true,
        Some(_) => return Err(invalid("streamMode must be auto or manual")),
    };
    let has_audio = boolean(object, "hasAudio")?.unwrap_or(true);
    let has_video = boolean(object, "hasVideo")?.unwrap_or(true);
    if !has_audio && !has_video {
        return Err(invalid("hasAudio and hasVideo cannot both be false"));
    }
    let resolution = match (string(object, "resolution")?, individual) {
        (Some(_), true) => {
            return Err(invalid("resolution cannot be set for individual archives"));
        }
        (Some(given), false) if !RESOLUTIONS.contains(&given) => {
            let allowed = RESOLUTIONS.join(", ");
            return Err(invalid(&format!("resolution must be one of {allowed}")));
        }
        (given, false) => Some(given.unwrap_or("640x480").to_owned()),
        (None, true) => None,
    };
    if let Some(layout) = present(object, "layout") {
        check_layout(layout)?;
    }
    let max_bitrate = integer(object, "maxBitrate", 100_000..=6_000_000)?;
    let quantization_parameter = integer(object, "quantizationParameter", 15..=40)?;
    if max_bitrate.is_some() && quantization_parameter.is_some() {
        return Err(invalid(
            "maxBitrate and quantizationParameter are mutually exclusive",
        ));
    }
    Ok(StartOptions {
        session_id: session_id.to_owned(),
        name: string(object, "name")?.map(str::to_owned),
        has_audio,
        has_video,
        individual,
        resolution,
        manual_streams,
        multi_archive_tag: string(object, "multiArchiveTag")?.map(str::to_owned),
        max_bitrate,
        quantization_parameter,
    })
}

/// `{type, stylesheet, screenshareType}`: stylesheet only (and always) with `custom`,
/// screenshareType only with `bestFit` (opentok-node's documented rules).
fn check_layout(layout: &Value) -> Result<(), String> {
    let layout = layout
        .as_object()
        .ok_or_else(|| invalid("layout must be an object"))?;
    let kind = string(layout, "type")?.unwrap_or("bestFit");
    if !LAYOUTS.contains(&kind) {
        let allowed = LAYOUTS.join(", ");
        return Err(invalid(&format!("layout.type must be one of {allowed}")));
    }
    let stylesheet = string(layout, "stylesheet")?;
    match (kind, stylesheet) {
        ("custom", None) => return Err(invalid("layout.stylesheet is required for custom")),
        ("custom", Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(invalid("layout.stylesheet is only allowed for custom")),
    }
    if let Some(screenshare) = string(layout, "screenshareType")? {
        if kind != "bestFit" {
            return Err(invalid(
                "layout.screenshareType requires layout.type bestFit",
            ));
        }
        if screenshare == "custom" || !LAYOUTS.contains(&screenshare) {
            return Err(invalid("layout.screenshareType is not a layout type"));
        }
    }
    Ok(())
}

/// A field that is present and not `null`.
fn present<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

fn string<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    present(object, name)
        .map(|value| {
            value
                .as_str()
                .ok_or_else(|| invalid(&format!("{name} must be a string")))
        })
        .transpose()
}

fn boolean(object: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    present(object, name)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| invalid(&format!("{name} must be a boolean")))
        })
        .transpose()
}

/// A whole number in `range`; `2000000.0` counts as whole.
fn integer(
    object: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, String> {
    let Some(value) = present(object, name) else {
        return Ok(None);
    };
    let whole = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|float| float.fract() == 0.0 && range.contains(&(*float as u64)))
            .map(|float| float as u64)
    });
    match whole {
        Some(number) if range.contains(&number) => Ok(Some(number)),
        _ => Err(invalid(&format!(
            "{name} must be a whole number between {} and {}",
            range.start(),
            range.end()
        ))),
    }
}

fn invalid(message: &str) -> String {
    format!("Invalid request: {message}")
}

#[cfg(test)]
mod tests;
