//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, else `log.filter`), pretty or JSON lines
//! on stderr (stdout carries only the `listening on` line and the dev banner).

mod escape;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it again (tests) is a no-op.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(FmtSpan::NONE);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // The request span (`front`) and any inside it, outermost first:
            // `"spans":[{"name":"request","request_id":…,"route":…,"sub":…},…]`.
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().fmt_fields(escape::fields()).try_init(),
    };
}
