//! Attribute values as users give them ([`Value`], [`Attributes`]) and as the tiers keep them
//! ([`Record`]: one [`Field`] per schema column, numbers as order-preserving keys).

use crate::schema::{AttrType, Schema};
use crate::{AttributeError, Result};

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Keyword(String),
    Keywords(Vec<String>),
}

impl Value {
    /// What kind of value this is, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U64(_) => "an unsigned integer",
            Value::I64(_) => "an integer",
            Value::F64(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::Keyword(_) => "a string",
            Value::Keywords(_) => "a list of strings",
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident as $as:ty),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$v(v as $as)
            }
        }
    )*};
}
value_from!(u64 => U64 as u64, u32 => U64 as u64, usize => U64 as u64, i64 => I64 as i64,
    i32 => I64 as i64, f64 => F64 as f64, f32 => F64 as f64);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Keyword(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Keyword(v)
    }
}
impl<S: Into<String>> From<Vec<S>> for Value {
    fn from(v: Vec<S>) -> Self {
        Value::Keywords(v.into_iter().map(Into::into).collect())
    }
}

/// A record's attributes as a user writes or reads them: named values (any subset of the
/// schema) and an optional opaque payload (the user's own document, JSON, ...).
///
/// ```
/// use strata_attributes::{Attributes, Value};
/// let attrs = Attributes::new().set("lang", "de").set("ts", 500_000u64).payload(b"{}".to_vec());
/// assert_eq!(attrs.get("lang"), Some(&Value::Keyword("de".into())));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    values: Vec<(String, Value)>,
    payload: Option<Vec<u8>>,
}

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets attribute `name` (replacing an earlier value of it).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        let value = value.into();
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
        self
    }

    /// Sets the opaque payload. An empty payload is stored as none.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every set value, in the order set (for a record read back: schema order).
    pub fn values(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The payload, if any.
    pub fn payload_bytes(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.payload.is_none()
    }
}

/// One column's value in a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Absent,
    /// A number or bool as its order-preserving key ([`key_of`]).
    Key(u64),
    /// A keyword column's value (exactly one) or a keyword list (any number, in the order
    /// given; an empty list is kept as present and empty).
    Keywords(Box<[String]>),
}

/// A record's attributes as the tiers keep them: one field per schema column (in column
/// order; a record written under a shorter schema has fewer, the rest absent) and the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Record {
    fields: Box<[Field]>,
    payload: Option<Box<[u8]>>,
}

/// Largest payload, in bytes (payload offsets are u32 within a segment; one record may not
/// take the whole range).
pub const MAX_PAYLOAD_LEN: usize = 16 << 20;
/// Longest keyword, in bytes.
pub const MAX_KEYWORD_LEN: usize = u16::MAX as usize;

impl Record {
    /// The record without attributes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a record from raw fields (the segment columns and tests use it).
    pub fn from_fields(fields: Vec<Field>, payload: Option<Vec<u8>>) -> Self {
        let mut fields = fields;
        while fields.last() == Some(&Field::Absent) {
            fields.pop();
        }
        Record { fields: fields.into(), payload: payload.map(Into::into) }
    }

    /// Checks `attributes` against `schema` and converts them. Integers convert between
    /// `u64`, `i64` and `f64` columns where the value fits; a single keyword fills a keyword
    /// list. Unknown names, wrong types, NaN and oversized keywords or payloads are errors.
    pub fn from_attributes(schema: &Schema, attributes: &Attributes) -> Result<Record> {
        let mut fields = vec![Field::Absent; schema.len()];
        for (name, value) in attributes.values() {
            let (index, column) = schema.column(name).ok_or_else(|| {
                AttributeError::UnknownAttribute { name: name.to_owned(), at: None }
            })?;
            fields[index] = field_of(name, column.ty, value)?;
        }
        if let Some(payload) = attributes.payload_bytes()
            && payload.len() > MAX_PAYLOAD_LEN
        {
            return Err(AttributeError::Value(format!(
                "payload of {} bytes; at most {MAX_PAYLOAD_LEN} are allowed",
                payload.len()
            )));
        }
        // An empty payload is stored as none (segments keep payloads as offsets).
        let payload = attributes.payload_bytes().filter(|p| !p.is_empty()).map(<[u8]>::to_vec);
        Ok(Record::from_fields(fields, payload))
    }

    /// The user's view: every present field as a typed value, and the payload.
    pub fn to_attributes(&self, schema: &Schema) -> Attributes {
        let mut out = Attributes::new();
        for (column, field) in schema.columns().iter().zip(self.fields.iter()) {
            let value = match (field, column.ty) {
                (Field::Absent, _) => continue,
                (Field::Key(key), ty) => value_of_key(ty, *key),
                (Field::Keywords(words), AttrType::Keyword) if words.len() == 1 => {
                    Value::Keyword(words[0].clone())
                }
                (Field::Keywords(words), _) => Value::Keywords(words.to_vec()),
            };
            out.values.push((column.name.clone(), value));
        }
        out.payload = self.payload.as_ref().map(|p| p.to_vec());
        out
    }

    /// Field `column` (absent past the record's fields).
    #[inline]
    pub fn field(&self, column: usize) -> &Field {
        self.fields.get(column).unwrap_or(&Field::Absent)
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// Whether it has neither fields nor payload.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.payload.is_none()
    }

    /// Bytes it holds on the heap (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|f| match f {
                Field::Keywords(words) => {
                    words.len() * size_of::<String>() + words.iter().map(String::len).sum::<usize>()
                }
                _ => 0,
            })
            .sum();
        self.fields.len() * size_of::<Field>()
            + fields
            + self.payload.as_ref().map_or(0, |p| p.len())
    }
}

fn field_of(name: &str, ty: AttrType, value: &Value) -> Result<Field> {
    let wrong = || AttributeError::WrongType {
        name: name.to_owned(),
        expected: ty,
        found: value.type_name(),
        at: None,
    };
    let keyword = |word: &String| {
        if word.len() > MAX_KEYWORD_LEN {
            Err(AttributeError::Value(format!(
                "a keyword of {} bytes for {name:?}; at most {MAX_KEYWORD_LEN} are allowed",
                word.len()
            )))
        } else {
            Ok(word.clone())
        }
    };
    Ok(match (ty, value) {
        (AttrType::Keyword | AttrType::Keywords, Value::Keyword(word)) => {
            Field::Keywords(Box::new([keyword(word)?]))
        }
        (AttrType::Keywords, Value::Keywords(words)) => {
            Field::Keywords(words.iter().map(keyword).collect::<Result<_>>()?)
        }
        (AttrType::Bool, Value::Bool(b)) => Field::Key(u64::from(*b)),
        (ty, value) if ty.is_ordered() => Field::Key(
            numeric_key(ty, value)
                .ok_or_else(wrong)?
                .map_err(|problem| AttributeError::Value(format!("{name:?}: {problem}")))?,
        ),
        _ => return Err(wrong()),
    })
}

/// The key of a numeric `value` in a column of type `ty`: `None` for a value of another kind,
/// `Some(Err)` for a number the column cannot hold (a negative u64, a NaN).
pub(crate) fn numeric_key(ty: AttrType, value: &Value) -> Option<std::result::Result<u64, String>> {
    Some(match (ty, value) {
        (AttrType::U64, Value::U64(v)) => Ok(*v),
        (AttrType::U64, Value::I64(v)) => {
            u64::try_from(*v).map_err(|_| format!("{v} is negative; the column is u64"))
        }
        (AttrType::I64, Value::I64(v)) => Ok(i64_key(*v)),
        (AttrType::I64, Value::U64(v)) => i64::try_from(*v)
            .map(i64_key)
            .map_err(|_| format!("{v} is past i64::MAX; the column is i64")),
        (AttrType::F64, Value::F64(v)) => f64_key(*v),
        (AttrType::F64, Value::U64(v)) => match exact_f64_of_u64(*v) {
            Some(f) => f64_key(f),
            None => Err(format!("{v} has no exact f64; the column is f64")),
        },
        (AttrType::F64, Value::I64(v)) => match exact_f64_of_i64(*v) {
            Some(f) => f64_key(f),
            None => Err(format!("{v} has no exact f64; the column is f64")),
        },
        _ => return None,
    })
}

/// `v` as an f64, if that is exact.
pub(crate) fn exact_f64_of_u64(v: u64) -> Option<f64> {
    let f = v as f64;
    (f < 18_446_744_073_709_551_616.0 && f as u64 == v).then_some(f)
}

/// `v` as an f64, if that is exact.
pub(crate) fn exact_f64_of_i64(v: i64) -> Option<f64> {
    let f = v as f64;
    (f < 9_223_372_036_854_775_808.0 && f as i64 == v).then_some(f)
}

/// The order-preserving key of an i64.
#[inline]
pub fn i64_key(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// The order-preserving key of a finite f64 (-0.0 and 0.0 share one key); NaN is refused.
pub fn f64_key(v: f64) -> std::result::Result<u64, String> {
    if v.is_nan() {
        return Err("NaN has no order and cannot be stored or compared".to_owned());
    }
    let bits = if v == 0.0 { 0 } else { v.to_bits() };
    Ok(if bits >> 63 == 1 { !bits } else { bits | (1 << 63) })
}

/// The value behind `key` in a column of type `ty`.
pub fn value_of_key(ty: AttrType, key: u64) -> Value {
    match ty {
        AttrType::U64 => Value::U64(key),
        AttrType::I64 => Value::I64((key ^ (1 << 63)) as i64),
        AttrType::F64 => {
            let bits = if key >> 63 == 1 { key & !(1 << 63) } else { !key };
            Value::F64(f64::from_bits(bits))
        }
        AttrType::Bool => Value::Bool(key != 0),
        // Keywords are never keys.
        AttrType::Keyword | AttrType::Keywords => Value::U64(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn i64_keys_keep_order(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), i64_key(a).cmp(&i64_key(b)));
            prop_assert_eq!(value_of_key(AttrType::I64, i64_key(a)), Value::I64(a));
        }

        #[test]
        fn f64_keys_keep_order(a in proptest::num::f64::ANY, b in proptest::num::f64::ANY) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            let (ka, kb) = (f64_key(a).unwrap(), f64_key(b).unwrap());
            prop_assert_eq!(a.partial_cmp(&b).unwrap(), ka.cmp(&kb));
            let Value::F64(back) = value_of_key(AttrType::F64, ka) else { unreachable!() };
            prop_assert!(back == a);
        }
    }

    #[test]
    fn f64_key_limits() {
        assert!(f64_key(f64::NAN).is_err());
        assert_eq!(f64_key(-0.0), f64_key(0.0));
        assert!(f64_key(f64::NEG_INFINITY).unwrap() < f64_key(f64::MIN).unwrap());
        assert!(f64_key(f64::MAX).unwrap() < f64_key(f64::INFINITY).unwrap());
        assert_eq!(i64_key(i64::MIN), 0);
        assert_eq!(i64_key(i64::MAX), u64::MAX);
    }

    #[test]
    fn records_convert_and_refuse_bad_values() {
        let schema = Schema::new()
            .u64("ts")
            .i64("delta")
            .f64("score")
            .bool("ok")
            .keyword("lang")
            .keywords("tags");
        let attrs = Attributes::new()
            .set("ts", 5)
            .set("delta", -3)
            .set("score", 2)
            .set("ok", true)
            .set("lang", "de")
            .set("tags", "solo")
            .payload(b"doc".to_vec());
        let record = Record::from_attributes(&schema, &attrs).unwrap();
        let back = record.to_attributes(&schema);
        assert_eq!(back.get("ts"), Some(&Value::U64(5)));
        assert_eq!(back.get("delta"), Some(&Value::I64(-3)));
        assert_eq!(back.get("score"), Some(&Value::F64(2.0)));
        assert_eq!(back.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(back.get("lang"), Some(&Value::Keyword("de".into())));
        assert_eq!(back.get("tags"), Some(&Value::Keywords(vec!["solo".into()])));
        assert_eq!(back.payload_bytes(), Some(&b"doc"[..]));

        let err =
            |attrs: Attributes| Record::from_attributes(&schema, &attrs).unwrap_err().to_string();
        assert!(err(Attributes::new().set("nope", 1)).contains("unknown attribute \"nope\""));
        assert!(err(Attributes::new().set("ts", -1)).contains("negative"));
        assert!(err(Attributes::new().set("ts", "x")).contains("expected u64"));
        assert!(err(Attributes::new().set("score", f64::NAN)).contains("NaN"));
        assert!(err(Attributes::new().set("lang", vec!["a", "b"])).contains("expected keyword"));
        assert!(
            err(Attributes::new().set("lang", "x".repeat(MAX_KEYWORD_LEN + 1)))
                .contains("keyword of")
        );
        // Trailing absent fields are not stored.
        let short = Record::from_attributes(&schema, &Attributes::new().set("ts", 1)).unwrap();
        assert_eq!(short.fields().len(), 1);
        assert_eq!(short.field(5), &Field::Absent);
    }
}
