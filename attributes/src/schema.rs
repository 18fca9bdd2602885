//! The attribute schema: named, typed columns, each optional per record.

use crate::{AttributeError, Result};

/// The type of an attribute column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// An unsigned 64-bit integer.
    U64,
    /// A signed 64-bit integer.
    I64,
    /// A finite 64-bit float (NaN is refused: it has no order).
    F64,
    /// A boolean.
    Bool,
    /// One keyword (an exact-match string: a tag, a language, a tenant name).
    Keyword,
    /// A list of keywords; `=` and `IN` on it ask whether the list contains a value.
    Keywords,
}

impl AttrType {
    /// The stable on-disk code (manifests and segment attribute sections).
    pub const fn code(self) -> u8 {
        match self {
            AttrType::U64 => 1,
            AttrType::I64 => 2,
            AttrType::F64 => 3,
            AttrType::Bool => 4,
            AttrType::Keyword => 5,
            AttrType::Keywords => 6,
        }
    }

    /// The type with on-disk code `code`, if this build knows it.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => AttrType::U64,
            2 => AttrType::I64,
            3 => AttrType::F64,
            4 => AttrType::Bool,
            5 => AttrType::Keyword,
            6 => AttrType::Keywords,
            _ => return None,
        })
    }

    /// The name users write (`u64`, `keyword`, ...), as `--schema` and error messages spell it.
    pub const fn name(self) -> &'static str {
        match self {
            AttrType::U64 => "u64",
            AttrType::I64 => "i64",
            AttrType::F64 => "f64",
            AttrType::Bool => "bool",
            AttrType::Keyword => "keyword",
            AttrType::Keywords => "keywords",
        }
    }

    /// The type named `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::U64, Self::I64, Self::F64, Self::Bool, Self::Keyword, Self::Keywords]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// Whether the column holds keywords (compared by equality only).
    pub const fn is_keyword(self) -> bool {
        matches!(self, AttrType::Keyword | AttrType::Keywords)
    }

    /// Whether values are ordered (`<`, ranges): the numeric types.
    pub const fn is_ordered(self) -> bool {
        matches!(self, AttrType::U64 | AttrType::I64 | AttrType::F64)
    }
}

impl std::fmt::Display for AttrType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    pub name: String,
    pub ty: AttrType,
}

/// Longest column name, in bytes (names are stored with a one-byte length).
pub const MAX_NAME_LEN: usize = 255;
/// Most columns in a schema (column indexes are stored in one byte... and a filter names them).
pub const MAX_COLUMNS: usize = 255;

/// The attribute columns of a database, in declaration order (which is their column index).
/// Every record may carry a value for each column, or none, plus an opaque payload.
///
/// ```
/// use strata_attributes::{AttrType, Schema};
/// let schema = Schema::new().u64("ts").keyword("lang").keywords("tags");
/// assert_eq!(schema.column("lang").map(|(_, c)| c.ty), Some(AttrType::Keyword));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Schema {
    columns: Vec<Column>,
}

impl Schema {
    /// A schema without columns (records may still carry payloads).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds column `name` of type `ty`; a repeated or invalid name is reported by
    /// [`validate`](Self::validate), which the engine calls on open.
    pub fn with(mut self, name: impl Into<String>, ty: AttrType) -> Self {
        self.columns.push(Column { name: name.into(), ty });
        self
    }

    pub fn u64(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::U64)
    }
    pub fn i64(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::I64)
    }
    pub fn f64(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::F64)
    }
    pub fn bool(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::Bool)
    }
    pub fn keyword(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::Keyword)
    }
    pub fn keywords(self, name: impl Into<String>) -> Self {
        self.with(name, AttrType::Keywords)
    }

    /// The columns, in column-index order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Column `name` and its index.
    pub fn column(&self, name: &str) -> Option<(usize, &Column)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name)
    }

    /// Checks names: non-empty, at most [`MAX_NAME_LEN`] bytes, identifiers the filter grammar
    /// can name (`[A-Za-z_][A-Za-z0-9_.]*`), distinct; at most [`MAX_COLUMNS`] columns.
    pub fn validate(&self) -> Result<()> {
        if self.columns.len() > MAX_COLUMNS {
            return Err(AttributeError::Schema(format!(
                "{} columns; at most {MAX_COLUMNS} are allowed",
                self.columns.len()
            )));
        }
        for (i, column) in self.columns.iter().enumerate() {
            if !is_identifier(&column.name) || column.name.len() > MAX_NAME_LEN {
                return Err(AttributeError::Schema(format!(
                    "column name {:?} is not an identifier of at most {MAX_NAME_LEN} bytes \
                     ([A-Za-z_][A-Za-z0-9_.]*)",
                    column.name
                )));
            }
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                return Err(AttributeError::Schema(format!(
                    "column {:?} is declared twice",
                    column.name
                )));
            }
        }
        Ok(())
    }

    /// `stored` extended by this schema's new columns: a database keeps every column it ever
    /// stored (so a compaction never drops values), and a schema given at open may add columns.
    /// A column declared with another type than it was stored with is an error.
    pub fn merged_onto(&self, stored: &Schema) -> Result<Schema> {
        let mut merged = stored.clone();
        for column in &self.columns {
            match stored.column(&column.name) {
                Some((_, old)) if old.ty != column.ty => {
                    return Err(AttributeError::Schema(format!(
                        "column {:?} is stored as {} but declared as {}",
                        column.name, old.ty, column.ty
                    )));
                }
                Some(_) => {}
                None => merged.columns.push(column.clone()),
            }
        }
        merged.validate()?;
        Ok(merged)
    }

    /// Parses `name:type,name:type` (the `--schema` flag), types as [`AttrType::name`] spells
    /// them.
    pub fn parse(text: &str) -> Result<Schema> {
        let mut schema = Schema::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, ty) = part
                .split_once(':')
                .ok_or_else(|| AttributeError::Schema(format!("{part:?} is not name:type")))?;
            let ty = AttrType::from_name(ty.trim()).ok_or_else(|| {
                AttributeError::Schema(format!(
                    "unknown type {:?} for {:?}; expected u64, i64, f64, bool, keyword or keywords",
                    ty.trim(),
                    name.trim()
                ))
            })?;
            schema = schema.with(name.trim(), ty);
        }
        schema.validate()?;
        Ok(schema)
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", c.name, c.ty)?;
        }
        Ok(())
    }
}

/// Whether `name` can be written bare in a filter: `[A-Za-z_][A-Za-z0-9_.]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for code in 0..=255u8 {
            if let Some(ty) = AttrType::from_code(code) {
                assert_eq!(ty.code(), code);
                assert_eq!(AttrType::from_name(ty.name()), Some(ty));
            }
        }
        assert_eq!(AttrType::from_code(0), None);
        assert_eq!(AttrType::from_code(7), None);
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(
            Schema::new().u64("a").u64("a").validate().unwrap_err().to_string().contains("twice")
        );
        assert!(Schema::new().u64("1a").validate().is_err());
        assert!(Schema::new().u64("").validate().is_err());
        assert!(Schema::new().u64("a.b_2").validate().is_ok());
        let too_many = (0..256).fold(Schema::new(), |s, i| s.u64(format!("c{i}")));
        assert!(too_many.validate().is_err());
    }

    #[test]
    fn merging_keeps_stored_columns_and_refuses_a_new_type() {
        let stored = Schema::new().u64("ts").keyword("lang");
        let declared = Schema::new().keyword("lang").bool("ok");
        let merged = declared.merged_onto(&stored).unwrap();
        assert_eq!(merged, Schema::new().u64("ts").keyword("lang").bool("ok"));
        let err = Schema::new().f64("ts").merged_onto(&stored).unwrap_err();
        assert!(err.to_string().contains("stored as u64 but declared as f64"), "{err}");
    }

    #[test]
    fn parses_the_flag_form() {
        let schema = Schema::parse("ts:u64, lang:keyword,tags:keywords").unwrap();
        assert_eq!(schema.to_string(), "ts:u64,lang:keyword,tags:keywords");
        assert!(Schema::parse("ts").is_err());
        assert!(Schema::parse("ts:int").unwrap_err().to_string().contains("unknown type"));
    }
}
