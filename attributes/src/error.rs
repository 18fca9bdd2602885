//! The crate's error type.

use crate::schema::AttrType;

/// Errors of schemas, attribute values, filters and attribute sections.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// A schema that cannot be used (a bad or repeated name, a type change).
    #[error("attribute schema: {0}")]
    Schema(String),
    /// A record or filter names an attribute the schema lacks.
    #[error("unknown attribute {name:?}{}", at_suffix(*at))]
    UnknownAttribute {
        name: String,
        /// Byte offset in the parsed filter text.
        at: Option<usize>,
    },
    /// A value or operator the attribute's type cannot take.
    #[error("attribute {name:?} expected {expected}, found {found}{}", at_suffix(*at))]
    WrongType { name: String, expected: AttrType, found: &'static str, at: Option<usize> },
    /// A value that no column can hold (NaN, an oversized keyword or payload).
    #[error("attribute value: {0}")]
    Value(String),
    /// Filter text that does not parse.
    #[error("filter syntax error at byte {at}: {message}")]
    Syntax { at: usize, message: String },
    /// An attribute section whose bytes are inconsistent.
    #[error("attribute section: {0}")]
    Corrupt(String),
}

fn at_suffix(at: Option<usize>) -> String {
    at.map_or_else(String::new, |at| format!(" at byte {at}"))
}
