//! The backend's private tokio runtime, and waiting on it from synchronous code.
//!
//! Every request runs as a task on the runtime's own worker threads; the calling thread only
//! parks until the task's result is ready. Unlike `Runtime::block_on`, this never panics when the
//! caller is itself inside some async runtime (it blocks that thread, which the engine's docs
//! warn about), and I/O keeps being driven by the workers whichever thread waits.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use tokio::task::JoinHandle;

/// Worker threads: requests are I/O-bound, and the machine's cores belong to searches and builds.
const WORKER_THREADS: usize = 2;

/// A multi-thread tokio runtime owned by one backend, shut down without blocking when dropped.
pub(crate) struct Runtime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    pub(crate) fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("strata-object-store")
            .enable_all()
            .build()?;
        Ok(Runtime { runtime: Some(runtime) })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until dropped")
    }

    /// Starts `future` on the runtime; see [`wait`] and [`Runtime::run`].
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    /// Runs `future` on the runtime and blocks until it is done. `Err` carries the message of a
    /// panic inside the task (a bug in a dependency), which callers turn into an error rather
    /// than a panic of their own.
    pub(crate) fn run<F>(&self, future: F) -> Result<F::Output, String>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        join(self.spawn(future))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which panics inside an async context;
        // nothing the backend spawned outlives its own requests, so there is nothing to wait for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits for a spawned task; `Err` describes a panic (or cancellation) of the task.
pub(crate) fn join<T>(handle: JoinHandle<T>) -> Result<T, String> {
    wait(handle).map_err(|e| format!("object-store task failed: {e}"))
}

/// Polls `future` on the current thread, parking between polls: a minimal executor for futures
/// that are driven elsewhere (a task's `JoinHandle`), usable from any thread.
pub(crate) fn wait<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake before this park leaves the token set, so the park returns at once.
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_from_plain_threads_and_from_inside_a_runtime() {
        let runtime = Arc::new(Runtime::new().unwrap());
        assert_eq!(runtime.run(async { 6 * 7 }).unwrap(), 42);
        // Called from a task of another runtime (a user's async code), `block_on` would panic.
        let outer = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let inner = Arc::clone(&runtime);
        assert_eq!(outer.block_on(async move { inner.run(async { 1 }).unwrap() }), 1);
        let panicked = runtime.run(async { panic!("boom") });
        assert!(panicked.unwrap_err().contains("panic"), "a panicking task is an error");
    }

    #[test]
    fn dropping_inside_an_async_context_does_not_panic() {
        let runtime = Runtime::new().unwrap();
        let outer = tokio::runtime::Builder::new_current_thread().build().unwrap();
        outer.block_on(async move { drop(runtime) });
    }
}
