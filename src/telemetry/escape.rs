//! The field formatter of the pretty log format: every field value (the message included) has
//! its line breaks, control characters and bidirectional overrides escaped, so a value a client
//! controls (a JWT header's `alg` in a refusal reason, say) cannot forge a log line or send
//! escape codes to a terminal. The JSON format escapes them already (it is JSON).

use std::fmt;

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// `name=value` pairs separated by spaces, the message bare, every value escaped.
pub(crate) fn fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            write_escaped(writer, &text)
        },
    )
    .delimited(" ")
}

/// True for characters that must not reach a log line raw.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if needs_escape(c) => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_forged_alg_cannot_start_a_log_line_or_reach_the_terminal() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .compact()
            .fmt_fields(fields())
            .finish();
        let forged = "unknown variant `HS256\n2026-01-01T00:00:00Z  INFO request: http.status=200 \x1b[2J\u{202e}`";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(auth.reason = %forged, name = forged, "caller refused {}", forged);
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "one event, one line: {out}");
        assert!(out.ends_with('\n'));
        assert!(
            !out.trim_end().chars().any(needs_escape),
            "no raw control character: {out:?}"
        );
        assert!(
            out.contains("auth.reason=unknown variant `HS256\\n2026"),
            "{out}"
        );
        assert!(out.contains("\\u{1b}[2J"), "{out}");
    }
}
