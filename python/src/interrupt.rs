//! Long calls that Ctrl-C can stop. A compaction or GC runs on a thread of its own while the
//! calling thread waits without the GIL and checks Python's signals every 100 ms: a pending
//! KeyboardInterrupt (or whatever a signal handler raised) cancels the work through its
//! `CancelToken`, waits for it to stop (a cancelled compaction publishes nothing and leaves only
//! garbage that GC removes), then raises.

use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use strata::{CancelToken, Control};

use crate::errors::IntoPy;

/// How often a waiting call looks for a signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

pub fn run<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&Control) -> strata::Result<T> + Send,
) -> PyResult<T> {
    let token = CancelToken::new();
    let control = Control::new().cancel_with(token.clone());
    let (done, finished) = mpsc::channel();
    // Waited on from inside `detach`, whose closure must be Send: a shared Receiver is not.
    let finished = Mutex::new(finished);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let result = work(&control);
            // The receiver lives until the scope ends.
            let _ = done.send(());
            result
        });
        loop {
            let ended = py.detach(|| finished.lock().recv_timeout(SIGNAL_CHECK).is_ok());
            if ended {
                break;
            }
            if let Err(signal) = py.check_signals() {
                token.cancel();
                let _ = py.detach(|| worker.join());
                return Err(signal);
            }
        }
        match py.detach(|| worker.join()) {
            Ok(result) => result.py_err(),
            Err(_) => Err(PyRuntimeError::new_err("the engine's worker thread panicked")),
        }
    })
}
