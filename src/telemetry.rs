//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, else `log.filter`), pretty or JSON lines
//! on stderr (stdout carries only the `listening on` line and the dev banner). Lines go through
//! a bounded buffer written in batches by one thread (`writer`), so a stuck consumer drops lines
//! instead of stalling requests; JSON lines are written by `json` without allocating. See
//! `docs/logging.md`.

mod json;
mod writer;

mod escape;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

pub use self::writer::LogGuard;
use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; keep the guard until the process ends (it flushes the
/// buffered lines). Calling it again (tests) installs nothing.
pub fn init(config: &LogConfig) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let (writer, guard) = writer::LogWriter::stderr(config.buffered_lines);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(FmtSpan::NONE);
    let _ = match config.format {
        LogFormat::Json => builder
            .fmt_fields(json::JsonMembers)
            .event_format(json::JsonLine)
            .try_init(),
        LogFormat::Pretty => builder.compact().fmt_fields(escape::fields()).try_init(),
    };
    guard
}
