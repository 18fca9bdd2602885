//! Test tools for the storage seam and for every crate above it (feature `testing`):
//!
//! - [`CountingStorage`]: counts operations and bytes, so tests can assert what a commit or an
//!   open costs in requests.
//! - [`FailingStorage`]: fails chosen operations with an I/O error (fault injection).
//! - [`SimFs`]: a simulated POSIX file system that crashes at a chosen operation and reopens as
//!   the durable image only, with unsynced data lost or torn. Run a [`crate::LocalDir`] on it to
//!   test crash consistency at every write, fsync and rename.
//! - [`conformance`]: the contract of [`crate::Storage`] as checks every implementation runs.
//! - [`RemoteTarget`]: the S3 or GCS bucket integration tests use, from the environment.

pub mod conformance;
mod counting;
mod failing;
mod remote;
mod sim_fs;

pub use counting::{CountingStorage, IoStats};
pub use failing::{FailingStorage, FaultError, FaultPlan};
pub use remote::RemoteTarget;
pub use sim_fs::{SimFile, SimFs, for_each_crash_point};

/// A kind of storage operation, as counted by [`CountingStorage`] and targeted by
/// [`FailingStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// [`crate::Storage::put`].
    Put,
    /// [`crate::Storage::put_if_absent`].
    PutIfAbsent,
    /// [`crate::Storage::writer`]: starting a streamed object.
    CreateWriter,
    /// [`crate::ObjectWriter::write_all`].
    Write,
    /// [`crate::ObjectWriter::finish`].
    Finish,
    /// [`crate::Storage::get`].
    Get,
    /// [`crate::Storage::get_range`].
    GetRange,
    /// [`crate::Storage::map`].
    Map,
    /// [`crate::Storage::size`].
    Size,
    /// [`crate::Storage::list`].
    List,
    /// [`crate::Storage::delete`].
    Delete,
}

impl Op {
    /// Every operation kind.
    pub const ALL: [Op; 11] = [
        Op::Put,
        Op::PutIfAbsent,
        Op::CreateWriter,
        Op::Write,
        Op::Finish,
        Op::Get,
        Op::GetRange,
        Op::Map,
        Op::Size,
        Op::List,
        Op::Delete,
    ];

    /// True for operations that change the store.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Put | Op::PutIfAbsent | Op::CreateWriter | Op::Write | Op::Finish | Op::Delete
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}
