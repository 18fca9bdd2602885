//! [`FailingStorage`]: fails chosen operations with an injected I/O error.

use std::io;
use std::ops::Range;

use parking_lot::Mutex;

use super::Op;
use crate::{Error, ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage};

/// Which operations fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Fail the operation with this 0-based index among the matching ones, counted from when the
    /// plan was set.
    pub nth: u64,
    /// Count (and fail) only operations that change the store.
    pub writes_only: bool,
    /// Once one operation failed, fail every later matching one too (a dead disk), instead of
    /// only the `nth` (a transient error).
    pub sticky: bool,
    /// Carry the failed operation out on the wrapped store before reporting the error: a write
    /// that took effect but was reported as failed (an fsync error after the rename, a request
    /// that timed out after it was applied). See the failure rules on [`crate::Storage`].
    pub after_apply: bool,
    /// The error an injected failure carries.
    pub error: FaultError,
}

/// The I/O error an injected failure carries, as the operating system would report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultError {
    /// A generic I/O error.
    #[default]
    Other,
    /// `ENOSPC`: the file system is full.
    NoSpace,
    /// `EROFS`: the file system is read-only.
    ReadOnly,
}

impl FaultError {
    fn to_io(self, message: String) -> io::Error {
        match self {
            FaultError::Other => io::Error::other(message),
            // The raw codes give the operating system's own kind and message ("No space left
            // on device"), as a real full disk would.
            FaultError::NoSpace => io::Error::from_raw_os_error(28),
            FaultError::ReadOnly => io::Error::from_raw_os_error(30),
        }
    }
}

impl FaultPlan {
    /// Fails the `nth` matching write, once.
    pub fn nth_write(nth: u64) -> Self {
        FaultPlan {
            nth,
            writes_only: true,
            sticky: false,
            after_apply: false,
            error: FaultError::Other,
        }
    }

    /// Fails the `nth` operation of any kind, once.
    pub fn nth_op(nth: u64) -> Self {
        FaultPlan {
            nth,
            writes_only: false,
            sticky: false,
            after_apply: false,
            error: FaultError::Other,
        }
    }

    /// A disk that fills up at the `nth` write: that write and every later one fail with
    /// `ENOSPC` until the plan is cleared (space freed).
    pub fn full_disk(nth: u64) -> Self {
        FaultPlan { error: FaultError::NoSpace, ..FaultPlan::nth_write(nth).sticky() }
    }

    /// The same failures with another error.
    pub fn with_error(self, error: FaultError) -> Self {
        FaultPlan { error, ..self }
    }

    /// Makes the failure permanent from the `nth` matching operation on.
    pub fn sticky(self) -> Self {
        FaultPlan { sticky: true, ..self }
    }

    /// Applies each failed operation before reporting its error.
    pub fn after_apply(self) -> Self {
        FaultPlan { after_apply: true, ..self }
    }
}

#[derive(Debug, Default)]
struct FaultState {
    plan: Option<FaultPlan>,
    /// Matching operations seen since the plan was set.
    seen: u64,
    injected: u64,
}

/// Wraps a store and fails operations according to a [`FaultPlan`]. A failed operation does not
/// reach the wrapped store (a failed `finish` drops its writer, abandoning the object), unless
/// the plan says [`after_apply`](FaultPlan::after_apply).
#[derive(Debug)]
pub struct FailingStorage<S> {
    inner: S,
    state: Mutex<FaultState>,
}

impl<S: Storage> FailingStorage<S> {
    /// Wraps `inner`; nothing fails until [`set_plan`](Self::set_plan).
    pub fn new(inner: S) -> Self {
        FailingStorage { inner, state: Mutex::new(FaultState::default()) }
    }

    /// Sets (or with `None` clears) the plan and restarts the count.
    pub fn set_plan(&self, plan: Option<FaultPlan>) {
        *self.state.lock() = FaultState { plan, seen: 0, injected: 0 };
    }

    /// How many operations have been failed since the plan was set.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// How many matching operations have been seen since the plan was set.
    pub fn seen(&self) -> u64 {
        self.state.lock().seen
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn run<T>(&self, op: Op, key: &str, apply: impl FnOnce() -> Result<T>) -> Result<T> {
        run(&self.state, op, key, apply)
    }
}

/// Runs `apply` unless the plan fails this operation; with `after_apply`, runs it and fails.
fn run<T>(
    state: &Mutex<FaultState>,
    op: Op,
    key: &str,
    apply: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let (index, plan) = {
        let mut state = state.lock();
        let Some(plan) = state.plan else { return apply() };
        if plan.writes_only && !op.is_write() {
            drop(state);
            return apply();
        }
        let index = state.seen;
        state.seen += 1;
        let fails = if plan.sticky { index >= plan.nth } else { index == plan.nth };
        if !fails {
            drop(state);
            return apply();
        }
        state.injected += 1;
        (index, plan)
    };
    if plan.after_apply {
        let _ = apply();
    }
    Err(Error::Io {
        op: "injected fault",
        key: key.to_owned(),
        source: plan.error.to_io(format!("injected fault at {op:?} #{index}")),
    })
}

impl<S: Storage> Storage for FailingStorage<S> {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.run(Op::Put, key, || self.inner.put(key, data))
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        self.run(Op::PutIfAbsent, key, || self.inner.put_if_absent(key, data))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        let inner = self.run(Op::CreateWriter, key, || self.inner.writer(key))?;
        Ok(Box::new(FailingWriter { state: &self.state, key: key.to_owned(), inner }))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        self.run(Op::Get, key, || self.inner.get(key))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        self.run(Op::GetRange, key, || self.inner.get_range(key, range))
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        self.run(Op::Map, key, || self.inner.map(key))
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.run(Op::Size, key, || self.inner.size(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.run(Op::List, prefix, || self.inner.list(prefix))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.run(Op::Delete, key, || self.inner.delete(key))
    }
}

struct FailingWriter<'a> {
    state: &'a Mutex<FaultState>,
    key: String,
    inner: Box<dyn ObjectWriter + 'a>,
}

impl ObjectWriter for FailingWriter<'_> {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        run(self.state, Op::Write, &self.key, || self.inner.write_all(data))
    }

    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        let FailingWriter { state, key, inner } = *self;
        run(state, Op::Finish, &key, || inner.finish())
    }
}
