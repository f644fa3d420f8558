//! Where log lines go: a bounded buffer in front of stderr, drained by one thread, so that a
//! slow or stuck log consumer (a full pipe nobody reads) never stalls a worker thread. When the
//! buffer is full a line is dropped, not waited for, and counted as `log_lines_dropped_total`.
//!
//! A worker thread that logs only appends its line to the buffer: no system call, and no
//! wake-up of the writer thread while that thread is busy. The writer thread swaps the buffer
//! out, writes it with one `write(2)`, then waits [`BATCH`] for more lines to gather; it sleeps
//! (parked) only when it found nothing, and the first line after that wakes it. So a busy
//! service pays one wake-up and one write per batch, not per line (a queue whose consumer
//! blocks on "empty" is woken for nearly every line when producers and consumer share a core),
//! and a quiet one's lines still appear at once. See `docs/logging.md`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after a write before it looks again: at most
/// this much delay on a busy service's lines, for one `write(2)` per batch.
const BATCH: Duration = Duration::from_millis(2);

/// How long the guard waits at exit for the last lines to be written to a stuck consumer.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Lines waiting for the writer thread.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
}

struct Inner {
    pending: Mutex<Pending>,
    /// The most lines `pending` holds; more are dropped.
    max_lines: usize,
    /// The writer thread found nothing and is parked: the next line must wake it.
    idle: AtomicBool,
    /// The guard was dropped: write what is left, then stop.
    closed: AtomicBool,
    dropped: metrics::Counter,
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while appending leaves at worst a partial line; the buffer stays usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer the subscriber formats into. Cheap to clone.
#[derive(Clone)]
pub(super) struct LogWriter {
    inner: Arc<Inner>,
    thread: Thread,
}

/// Writes the lines still buffered when dropped (at the end of `main`): keep it alive while
/// the process logs. A stuck consumer delays the exit by at most about a second.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let Some(worker) = self.worker.take() else {
            return;
        };
        worker.thread().unpark();
        let deadline = Instant::now() + EXIT_WAIT;
        while !worker.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        }
    }
}

impl LogWriter {
    /// A buffer of at most `lines` lines in front of stderr.
    pub(super) fn stderr(lines: usize) -> (Self, LogGuard) {
        Self::spawn(lines, io::stderr())
    }

    fn spawn(lines: usize, out: impl Write + Send + 'static) -> (Self, LogGuard) {
        // The recorder first, so that the handle is a live one.
        crate::metrics::install();
        let dropped = metrics::counter!("log_lines_dropped_total");
        dropped.absolute(0);
        let inner = Arc::new(Inner {
            pending: Mutex::default(),
            max_lines: lines.max(1),
            idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dropped,
        });
        let worker = {
            let inner = Arc::clone(&inner);
            thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || drain(&inner, out))
                .expect("spawning the log writer thread")
        };
        let writer = Self {
            inner: Arc::clone(&inner),
            thread: worker.thread().clone(),
        };
        let guard = LogGuard {
            inner,
            worker: Some(worker),
        };
        (writer, guard)
    }

    /// Appends one formatted line, or drops and counts it when the buffer is full.
    fn push(&self, line: &[u8]) {
        {
            let mut pending = self.inner.pending();
            if pending.lines >= self.inner.max_lines {
                drop(pending);
                self.inner.dropped.increment(1);
                return;
            }
            pending.bytes.extend_from_slice(line);
            pending.lines += 1;
        }
        if self.inner.idle.swap(false, Ordering::SeqCst) {
            self.thread.unpark();
        }
    }
}

/// The writer thread: swap the buffer out, write it, let the next batch gather; park when
/// there was nothing to write.
fn drain(inner: &Inner, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut pending = inner.pending();
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.lines = 0;
        }
        if batch.is_empty() {
            if inner.closed.load(Ordering::SeqCst) {
                return;
            }
            inner.idle.store(true, Ordering::SeqCst);
            // A line appended between the swap and `idle` would find `idle` false and not wake
            // us: look once more before sleeping (a wake-up that comes anyway is harmless).
            if inner.pending().lines == 0 && !inner.closed.load(Ordering::SeqCst) {
                thread::park();
            }
            inner.idle.store(false, Ordering::SeqCst);
            continue;
        }
        // Blocks while the consumer is stuck; meanwhile lines gather up to `max_lines`, then
        // are dropped. A write error (the consumer is gone) loses this batch, nothing more.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if !inner.closed.load(Ordering::SeqCst) {
            thread::sleep(BATCH);
        }
    }
}

/// One event's writer: the subscriber writes each formatted line with one `write_all`.
pub(super) struct LineWriter<'a> {
    owner: &'a LogWriter,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.owner.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { owner: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer that keeps what it was given, and can be made to block (a stuck pipe).
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        stuck: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _stuck = self.stuck.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &LogWriter, text: &str) {
        writer.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_by_the_guard() {
        let sink = Sink::default();
        let (writer, guard) = LogWriter::spawn(1000, sink.clone());
        for i in 0..500 {
            line(&writer, &format!("line {i}\n"));
        }
        drop(guard);
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..500).map(|i| format!("line {i}\n")).collect();
        assert_eq!(written, expected);
    }

    #[test]
    fn a_quiet_writers_line_appears_without_waiting_for_a_batch_or_the_guard() {
        let sink = Sink::default();
        let (writer, _guard) = LogWriter::spawn(10, sink.clone());
        // Let the writer thread find nothing and park, then log one line.
        thread::sleep(Duration::from_millis(50));
        line(&writer, "hello\n");
        let deadline = Instant::now() + Duration::from_secs(2);
        while sink.written.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the line was never written");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*sink.written.lock().unwrap(), b"hello\n");
    }

    #[test]
    fn a_stuck_consumer_costs_dropped_lines_never_a_blocked_logger() {
        let sink = Sink::default();
        let stuck = sink.stuck.lock().unwrap();
        let (writer, guard) = LogWriter::spawn(100, sink.clone());
        line(&writer, "first\n");
        // The writer thread takes "first" and blocks in the consumer; 100 more fill the buffer.
        thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        for i in 0..1000 {
            line(&writer, &format!("line {i}\n"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging waited for the stuck consumer"
        );
        let kept = writer.inner.pending().lines;
        assert_eq!(kept, 100, "the buffer holds at most max_lines");
        drop(stuck);
        drop(guard);
        let written = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 101, "{written}");
        assert!(written.ends_with("line 99\n"), "the oldest lines are kept");
    }
}
