//! The JSON log line: one object per event, written straight into the subscriber's reused line
//! buffer, with no allocation per event and every field once:
//!
//! `{"timestamp":"…","level":"INFO","message":"request","http.method":"POST",…,"target":"…",<span fields>}`
//!
//! The event's fields come first (flattened, as before), then `target`, then the fields of the
//! spans the event is in, innermost first, flattened too; a name already written is skipped, so
//! a field set on the event and on its span appears once (the event's value). Span fields are
//! kept as JSON members when the span is created or recorded, so an event costs no parsing.
//! See `docs/logging.md`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of `log.format = "json"`.
pub(super) struct JsonLine;

/// The span field format that goes with [`JsonLine`]: `"name":value` members, comma-separated,
/// without braces.
pub(super) struct JsonMembers;

/// Most distinct field names one line de-duplicates; more are written without the check.
const MAX_NAMES: usize = 32;

/// The names written so far on this line, as 64-bit FNV-1a hashes (span field names live in
/// the span's extensions, which are borrowed one span at a time).
struct Written {
    names: [u64; MAX_NAMES],
    len: usize,
}

impl Written {
    fn new() -> Self {
        Self {
            names: [0; MAX_NAMES],
            len: 0,
        }
    }

    /// Whether `name` is new; remembers it.
    fn first(&mut self, name: &str) -> bool {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        if self.names[..self.len].contains(&hash) {
            return false;
        }
        if self.len < MAX_NAMES {
            self.names[self.len] = hash;
            self.len += 1;
        }
        true
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;

        let mut written = Written::new();
        written.first("timestamp");
        written.first("level");
        written.first("target");
        let mut visitor = Members {
            out: &mut writer,
            written: &mut written,
            leading_comma: true,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;

        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;

        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    write_span_members(&mut writer, &fields.fields, &mut written)?;
                }
            }
        }
        writer.write_str("}\n")
    }
}

thread_local! {
    /// Where a span's members are formatted before they are stored: the span's string is then
    /// written once, at its final size, instead of growing (and reallocating) member by member.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Formats `fields` as members into this thread's scratch buffer and hands the text to `store`.
fn with_members<R: tracing_subscriber::field::RecordFields>(
    fields: R,
    store: impl FnOnce(&str) -> fmt::Result,
) -> fmt::Result {
    let format = |out: &mut String| {
        let mut written = Written::new();
        let mut writer = Writer::new(out);
        let mut visitor = Members {
            out: &mut writer,
            written: &mut written,
            leading_comma: false,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let stored = format(&mut scratch).and_then(|()| store(&scratch));
            if scratch.capacity() > 16 * 1024 {
                // One huge field must not pin its memory to the thread.
                *scratch = String::new();
            }
            stored
        }
        // A field's `Debug` that formats a span's fields itself: no scratch for the inner one.
        Err(_) => {
            let mut own = String::new();
            format(&mut own)?;
            store(&own)
        }
    })
}

impl<'w> FormatFields<'w> for JsonMembers {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        with_members(fields, |members| writer.write_str(members))
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        with_members(fields, |members| {
            if !members.is_empty() {
                if !current.fields.is_empty() {
                    current.fields.push(',');
                }
                current.fields.push_str(members);
            }
            Ok(())
        })
    }
}

/// Writes fields as `"name":value` members.
struct Members<'a, 'w> {
    out: &'a mut Writer<'w>,
    written: &'a mut Written,
    /// Whether the first member needs a comma before it (the object is already open).
    leading_comma: bool,
    result: fmt::Result,
}

impl Members<'_, '_> {
    /// Writes `,"name":` and returns whether the value should follow.
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() || !self.written.first(field.name()) {
            return false;
        }
        let comma = if self.leading_comma { "," } else { "" };
        self.leading_comma = true;
        self.result = self
            .out
            .write_str(comma)
            .and_then(|()| write_json_str(self.out, field.name()))
            .and_then(|()| self.out.write_char(':'));
        self.result.is_ok()
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            self.result = write!(self.out, "{value}");
        }
    }
}

impl Visit for Members<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            self.result = write_json_str(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.result = self
                .out
                .write_char('"')
                .and_then(|()| write!(Escaped(self.out), "{value:?}"))
                .and_then(|()| self.out.write_char('"'));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            // `Display` of an f64 never uses an exponent: always a valid JSON number.
            self.raw(field, value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Appends the members of one span, skipping names already on the line. `members` is what
/// [`JsonMembers`] wrote: `"name":value` pairs whose values are JSON scalars.
fn write_span_members(out: &mut Writer<'_>, members: &str, written: &mut Written) -> fmt::Result {
    let mut rest = members;
    while !rest.is_empty() {
        let Some(key_end) = json_string_end(rest) else {
            return Ok(());
        };
        let value_start = key_end + 1; // past the ':'
        let value_end = if rest[value_start..].starts_with('"') {
            json_string_end(&rest[value_start..]).map_or(rest.len(), |end| value_start + end)
        } else {
            rest[value_start..]
                .find(',')
                .map_or(rest.len(), |end| value_start + end)
        };
        let name = &rest[1..key_end - 1];
        if written.first(name) {
            out.write_char(',')?;
            out.write_str(&rest[..value_end])?;
        }
        rest = rest[value_end..].strip_prefix(',').unwrap_or("");
    }
    Ok(())
}

/// The end (one past the closing quote) of the JSON string `text` starts with.
fn json_string_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Writes `value` as a JSON string.
fn write_json_str(out: &mut Writer<'_>, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what JSON requires inside a string: quote, backslash and control characters.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// The lines written while `emit` runs, as text and parsed.
    fn lines(emit: impl FnOnce()) -> Vec<(String, serde_json::Value)> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_max_level(tracing::Level::DEBUG)
            .fmt_fields(JsonMembers)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                (line.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn an_event_is_one_json_object_with_flattened_fields_and_escaped_values() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        let got = lines(|| {
            tracing::info!(http.status = 201u16, latency_ms = 0.25, ok = true, n = -3i64, text = nasty, shown = %"a\"b", "request {}", "x\ny");
        });
        assert_eq!(got.len(), 1);
        let line = &got[0].1;
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request x\ny");
        assert_eq!(line["http.status"], 201);
        assert_eq!(line["latency_ms"], 0.25);
        assert_eq!(line["ok"], true);
        assert_eq!(line["n"], -3);
        assert_eq!(line["text"], nasty);
        assert_eq!(line["shown"], "a\"b");
        assert_eq!(line["target"], module_path!());
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() > 20 && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn span_fields_are_flattened_once_and_the_event_wins() {
        let got = lines(|| {
            let outer = tracing::info_span!("request", request_id = "r-1", route = "/outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!(
                "vonage.create_session",
                vonage.session_id = tracing::field::Empty,
                route = "/inner"
            );
            let _inner = inner.enter();
            inner.record("vonage.session_id", "1_MX\"4");
            tracing::info!(request_id = "r-1", status = 200, "request");
        });
        let (text, line) = &got[0];
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["route"], "/inner", "the innermost span wins");
        assert_eq!(line["vonage.session_id"], "1_MX\"4");
        assert_eq!(line["status"], 200);
        for name in [
            "request_id",
            "route",
            "vonage.session_id",
            "status",
            "target",
        ] {
            assert_eq!(
                text.matches(&format!("\"{name}\":")).count(),
                1,
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn non_finite_floats_stay_valid_json() {
        let got = lines(|| tracing::info!(x = f64::NAN, y = f64::INFINITY, "m"));
        assert_eq!(got[0].1["x"], "NaN");
        assert_eq!(got[0].1["y"], "inf");
    }
}
