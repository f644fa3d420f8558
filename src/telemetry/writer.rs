//! Where log lines go: a bounded queue in front of stderr, drained by one thread, so that a
//! slow or stuck log consumer (a full pipe nobody reads) never stalls a worker thread. When the
//! queue is full a line is dropped, not waited for, and counted as `log_lines_dropped_total`.
//! See `docs/logging.md`.

use std::io::{self, BufWriter, Write};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;

/// The writer the subscriber formats into: the non-blocking queue plus the drop counter.
#[derive(Clone)]
pub(super) struct LogWriter {
    queue: NonBlocking,
    errors: ErrorCounter,
    dropped: metrics::Counter,
}

/// Flushes the queued lines when dropped (at the end of `main`): keep it alive while the
/// process logs. A stuck consumer delays the exit by at most about a second.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

/// Bytes the log thread gathers before one `write(2)`; it writes at the latest when the queue
/// is empty, so a quiet service's lines appear at once.
const STDERR_BUFFER_BYTES: usize = 64 * 1024;

impl LogWriter {
    /// A queue of at most `lines` lines in front of stderr.
    pub(super) fn stderr(lines: usize) -> (Self, LogGuard) {
        let (queue, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(lines.max(1))
            .thread_name("log-writer")
            .finish(BufWriter::with_capacity(STDERR_BUFFER_BYTES, io::stderr()));
        // The recorder first, so that the handle is a live one.
        crate::metrics::install();
        let dropped = metrics::counter!("log_lines_dropped_total");
        dropped.absolute(0);
        let errors = queue.error_counter();
        (
            Self {
                queue,
                errors,
                dropped,
            },
            LogGuard { _worker: worker },
        )
    }
}

/// One event's writer: the subscriber writes each formatted line with one `write_all`.
pub(super) struct LineWriter<'a> {
    queue: NonBlocking,
    owner: &'a LogWriter,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.queue.write(buf)?;
        // The queue counts what it drops; the metric follows it (`absolute` keeps the maximum,
        // so concurrent writers cannot move it backwards).
        let dropped = self.owner.errors.dropped_lines();
        if dropped != 0 {
            self.owner.dropped.absolute(dropped as u64);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.queue.flush()
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            queue: self.queue.clone(),
            owner: self,
        }
    }
}
