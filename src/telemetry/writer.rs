//! Where log lines go: a bounded in-memory queue in front of stderr, drained by one thread, so
//! that a slow or stuck log consumer (a full pipe nobody reads) never stalls a worker thread.
//! When the queue is full a line is dropped, not waited for, and counted as
//! `log_lines_dropped_total`. See `docs/logging.md`.
//!
//! The queue is one byte buffer, not a channel of lines: a line is copied into it under a short
//! lock (no allocation per line), and the log thread swaps the whole buffer for its spare one and
//! writes it with one `write(2)`. A worker wakes the thread only when it waits for lines, so a
//! busy service's lines go out in batches of whatever gathered while the thread was not running.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the guard waits, at exit, for the queue to be written (a stuck consumer must not
/// hold the process).
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// The writer the subscriber formats into.
#[derive(Clone)]
pub(super) struct LogWriter {
    queue: Arc<Queue>,
}

/// Writes what is queued when dropped (at the end of `main`): keep it alive while the process
/// logs. A stuck consumer delays the exit by at most about a second.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

struct Queue {
    pending: Mutex<Pending>,
    /// Signalled when lines arrive for an idle thread, or at shutdown.
    wake: Condvar,
    /// Signalled when the thread has written everything after shutdown.
    done: Condvar,
    /// Most lines held at once.
    limit: usize,
    dropped: metrics::Counter,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    /// The thread waits for `wake`.
    idle: bool,
    closing: bool,
    finished: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one line, or drops and counts it when the queue is full.
    fn push(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.lines >= self.limit {
            drop(pending);
            self.dropped.increment(1);
            return;
        }
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The log thread: takes everything queued, writes it, and again; waits while nothing is
    /// queued.
    fn drain(&self, out: &mut impl Write) {
        let mut batch = Vec::new();
        loop {
            let closing = {
                let mut pending = self.lock();
                while pending.lines == 0 && !pending.closing {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                pending.idle = false;
                std::mem::swap(&mut pending.bytes, &mut batch);
                pending.lines = 0;
                pending.closing
            };
            if !batch.is_empty() {
                // Nothing to do about a failed write to stderr; the lines are lost.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
            }
            if closing {
                let mut pending = self.lock();
                if pending.lines == 0 {
                    pending.finished = true;
                    self.done.notify_all();
                    return;
                }
            }
        }
    }
}

impl LogWriter {
    /// A queue of at most `lines` lines in front of stderr.
    pub(super) fn stderr(lines: usize) -> (Self, LogGuard) {
        Self::spawn(lines, io::stderr())
    }

    fn spawn(lines: usize, mut out: impl Write + Send + 'static) -> (Self, LogGuard) {
        // The recorder first, so that the handle is a live one.
        crate::metrics::install();
        let dropped = metrics::counter!("log_lines_dropped_total");
        dropped.absolute(0);
        let queue = Arc::new(Queue {
            pending: Mutex::default(),
            wake: Condvar::new(),
            done: Condvar::new(),
            limit: lines.max(1),
            dropped,
        });
        let drained = queue.clone();
        let spawned = thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || drained.drain(&mut out));
        if spawned.is_err() {
            // Without the thread nothing would ever be written: say so once, where it can be seen.
            let _ = writeln!(io::stderr(), "cannot start the log-writer thread; no logs");
        }
        (
            Self {
                queue: queue.clone(),
            },
            LogGuard { queue },
        )
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let mut pending = self.queue.lock();
        pending.closing = true;
        self.queue.wake.notify_one();
        let _ = self
            .queue
            .done
            .wait_timeout_while(pending, FLUSH_AT_EXIT, |pending| !pending.finished);
    }
}

/// One event's writer: the subscriber writes each formatted line with one `write_all`.
pub(super) struct LineWriter<'a>(&'a Queue);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output whose first write blocks until released, recording what it is given.
    struct Stuck {
        started: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.started.send(()).is_ok() {
                let _ = self.release.recv();
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_drops_what_the_queue_cannot_hold_and_the_guard_writes_the_rest() {
        let (started, started_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let out = Stuck {
            started,
            release,
            written: written.clone(),
        };
        let (writer, guard) = LogWriter::spawn(4, out);
        let line = |text: &str| writer.make_writer().write_all(text.as_bytes()).unwrap();
        line("0\n");
        // The thread took line 0 and is stuck writing it: 4 more fit, the other 6 are dropped,
        // and none of the 10 writes waits for the output.
        started_rx.recv().unwrap();
        drop(started_rx);
        for i in 1..=10 {
            line(&format!("{i}\n"));
        }
        assert_eq!(writer.queue.lock().lines, 4);
        release_tx.send(()).unwrap();
        drop(guard);
        assert_eq!(
            String::from_utf8(written.lock().unwrap().clone()).unwrap(),
            "0\n1\n2\n3\n4\n"
        );
    }
}
