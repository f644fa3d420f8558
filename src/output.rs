//! What the commands print, without `println!`, which panics when stdout is closed
//! (`vonage-sessions check-config | head -1`). A closed stdout or stderr is not an error of the
//! command: the rest of its output is dropped and the command carries on (a server keeps
//! serving), exiting as it would have.

use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write(closed: &AtomicBool, mut sink: impl std::io::Write, text: &str) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let result = sink
        .write_all(text.as_bytes())
        .and_then(|()| sink.write_all(b"\n"))
        .and_then(|()| sink.flush());
    // A broken pipe means the reader is gone; any other failure (a full disk) is no reason to
    // stop a server either. Either way, later lines are not attempted.
    if result.is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Prints one line (or several) on stdout.
pub(crate) fn out(text: impl AsRef<str>) {
    write(&STDOUT_CLOSED, std::io::stdout().lock(), text.as_ref());
}

/// Prints one line (or several) on stderr.
pub(crate) fn err(text: impl AsRef<str>) {
    write(&STDERR_CLOSED, std::io::stderr().lock(), text.as_ref());
}
