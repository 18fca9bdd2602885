//! Record attributes and filters.
//!
//! - [`Schema`]: the named, typed columns a database declares ([`AttrType`]).
//! - [`Attributes`] and [`Value`]: a record's attributes as users write and read them;
//!   [`Record`]: the same bound to a schema, numbers as order-preserving keys, as the tiers
//!   keep it.
//! - [`Filter`]: a filter built in code or parsed from a WHERE clause, bound to a schema as a
//!   [`Predicate`] that the memtable evaluates per record.
//! - [`columns`]: a segment's attribute columns and indexes (the attribute section's codec),
//!   and [`SegmentPredicate`]: a predicate bound to one segment's columns, which counts and
//!   lists its matching rows for the planner and tests single rows for a graph walk.
//!
//! Does no I/O: segments hand it their section bytes.

pub mod columns;
mod error;
mod filter;
mod parse;
mod schema;
mod value;

pub use crate::columns::{ColumnSet, SegmentPredicate};
pub use crate::error::AttributeError;
pub use crate::filter::{CmpOp, Filter, Predicate};
pub use crate::schema::{AttrType, Column, MAX_COLUMNS, MAX_NAME_LEN, Schema, is_identifier};
pub use crate::value::{
    Attributes, Field, MAX_KEYWORD_LEN, MAX_PAYLOAD_LEN, Record, Value, f64_key, i64_key,
    value_of_key,
};

/// This crate's results.
pub type Result<T, E = AttributeError> = std::result::Result<T, E>;
