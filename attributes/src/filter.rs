//! Filter expressions: built in code ([`Filter::eq`], [`Filter::and`], ...) or parsed from a
//! WHERE clause ([`Filter::parse`]), then bound to a schema ([`Filter::bind`]) as a
//! [`Predicate`] the tiers evaluate.
//!
//! Semantics, two-valued: a comparison, `IN` or list test on a record that lacks the attribute
//! is false, and `!=` is false there too (as in SQL); `NOT` is plain negation, so
//! `NOT (lang = 'de')` matches records without a `lang`, while `lang != 'de'` does not.
//! On a keyword list, `=` and `IN` ask whether the list contains a value (`contains`), and
//! `!=` whether the list is present and lacks it.

use std::ops::{Bound, RangeBounds};

use crate::schema::{AttrType, Schema};
use crate::value::{
    Field, Record, Value, exact_f64_of_i64, exact_f64_of_u64, f64_key, i64_key, numeric_key,
};
use crate::{AttributeError, Result};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// An unbound expression. `at` is the byte offset of the attribute name in the parsed text,
/// for errors (`None` for filters built in code).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Compare { column: String, op: CmpOp, value: Value, at: Option<usize> },
    In { column: String, values: Vec<Value>, at: Option<usize> },
    Exists { column: String, at: Option<usize> },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// A filter over record attributes.
///
/// ```
/// use strata_attributes::{Filter, Schema};
/// let schema = Schema::new().u64("tenant").u64("ts").keyword("lang");
/// let built = Filter::eq("tenant", 7).and(Filter::range("ts", 10..20));
/// let parsed = Filter::parse("tenant = 7 AND ts >= 10 AND ts < 20").unwrap();
/// assert!(built.bind(&schema).is_ok() && parsed.bind(&schema).is_ok());
/// assert!(Filter::parse("lang = 'de' AND").is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub(crate) expr: Expr,
}

impl Filter {
    fn compare(column: impl Into<String>, op: CmpOp, value: impl Into<Value>) -> Self {
        Filter { expr: Expr::Compare { column: column.into(), op, value: value.into(), at: None } }
    }

    /// `column = value` (for a keyword list: the list contains `value`).
    pub fn eq(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Eq, value)
    }
    /// `column != value`: present and different.
    pub fn ne(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Ne, value)
    }
    pub fn lt(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Lt, value)
    }
    pub fn le(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Le, value)
    }
    pub fn gt(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Gt, value)
    }
    pub fn ge(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::compare(column, CmpOp::Ge, value)
    }

    /// `column` within `range` (`a..b`, `a..=b`, `a..`, `..b`).
    pub fn range<T: Into<Value> + Clone>(
        column: impl Into<String>,
        range: impl RangeBounds<T>,
    ) -> Self {
        let column = column.into();
        let mut parts = Vec::with_capacity(2);
        match range.start_bound() {
            Bound::Included(v) => parts.push(Self::ge(column.clone(), v.clone())),
            Bound::Excluded(v) => parts.push(Self::gt(column.clone(), v.clone())),
            Bound::Unbounded => {}
        }
        match range.end_bound() {
            Bound::Included(v) => parts.push(Self::le(column.clone(), v.clone())),
            Bound::Excluded(v) => parts.push(Self::lt(column.clone(), v.clone())),
            Bound::Unbounded => {}
        }
        match parts.len() {
            0 => Self::exists(column),
            1 => parts.pop().expect("one part"),
            _ => Filter { expr: Expr::And(parts.into_iter().map(|f| f.expr).collect()) },
        }
    }

    /// `column IN (values...)` (for a keyword list: it contains any of them).
    pub fn is_in<V: Into<Value>>(
        column: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        Filter { expr: Expr::In { column: column.into(), values, at: None } }
    }

    /// The record has a value for `column` (`column IS NOT NULL`).
    pub fn exists(column: impl Into<String>) -> Self {
        Filter { expr: Expr::Exists { column: column.into(), at: None } }
    }

    /// The keyword list `column` contains `value` (on a single keyword: equals it).
    pub fn contains(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::eq(column, Value::Keyword(value.into()))
    }

    /// Both hold.
    pub fn and(self, other: Filter) -> Self {
        Filter {
            expr: match self.expr {
                Expr::And(mut parts) => {
                    parts.push(other.expr);
                    Expr::And(parts)
                }
                expr => Expr::And(vec![expr, other.expr]),
            },
        }
    }

    /// Either holds.
    pub fn or(self, other: Filter) -> Self {
        Filter {
            expr: match self.expr {
                Expr::Or(mut parts) => {
                    parts.push(other.expr);
                    Expr::Or(parts)
                }
                expr => Expr::Or(vec![expr, other.expr]),
            },
        }
    }

    /// Negation (matches records that lack the attribute, too).
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Filter { expr: Expr::Not(Box::new(self.expr)) }
    }

    /// Parses a WHERE clause: comparisons `= != <> < <= > >=`, `IN (...)`, `NOT IN (...)`,
    /// `IS [NOT] NULL`, `AND`, `OR`, `NOT`, parentheses, single-quoted strings (`''` for a
    /// quote), integer, float and `true`/`false` literals. Keywords are case-insensitive.
    /// A syntax error names its byte offset.
    pub fn parse(text: &str) -> Result<Filter> {
        crate::parse::parse(text).map(|expr| Filter { expr })
    }

    /// Resolves names and literals against `schema`: an unknown attribute, a literal of the
    /// wrong type or an operator the type lacks (`<` on a keyword) is an error naming the
    /// attribute (and, for parsed text, its byte offset).
    pub fn bind(&self, schema: &Schema) -> Result<Predicate> {
        Ok(Predicate { node: bind(&self.expr, schema)?.simplify() })
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter::not(self)
    }
}

/// A filter bound to a schema: columns by index, numbers as inclusive key ranges. Every tier
/// evaluates this one form, on a [`Record`] (the memtable) or on its columns (segments).
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub(crate) node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Const(bool),
    /// A numeric or bool column's key within `low..=high`.
    Range {
        column: usize,
        low: u64,
        high: u64,
    },
    /// A keyword column holds any of `words` (sorted, distinct).
    Keywords {
        column: usize,
        words: Vec<String>,
    },
    Exists {
        column: usize,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Predicate {
    /// Whether the record matches.
    pub fn matches(&self, record: &Record) -> bool {
        self.node.matches(record)
    }

    /// Whether every record matches (no filter, or one that simplified away).
    pub fn is_all(&self) -> bool {
        self.node == Node::Const(true)
    }

    /// Whether no record can match.
    pub fn is_none(&self) -> bool {
        self.node == Node::Const(false)
    }
}

impl Node {
    fn matches(&self, record: &Record) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::Range { column, low, high } => {
                matches!(record.field(*column), Field::Key(k) if (*low..=*high).contains(k))
            }
            Node::Keywords { column, words } => match record.field(*column) {
                Field::Keywords(have) => {
                    have.iter().any(|w| words.binary_search_by(|x| x.as_str().cmp(w)).is_ok())
                }
                _ => false,
            },
            Node::Exists { column } => !matches!(record.field(*column), Field::Absent),
            Node::And(parts) => parts.iter().all(|p| p.matches(record)),
            Node::Or(parts) => parts.iter().any(|p| p.matches(record)),
            Node::Not(inner) => !inner.matches(record),
        }
    }

    /// Folds constants and flattens nested `AND`/`OR`.
    fn simplify(self) -> Node {
        match self {
            Node::Range { low, high, .. } if low > high => Node::Const(false),
            Node::Keywords { words, .. } if words.is_empty() => Node::Const(false),
            Node::And(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for part in parts.into_iter().map(Node::simplify) {
                    match part {
                        Node::Const(true) => {}
                        Node::Const(false) => return Node::Const(false),
                        Node::And(inner) => out.extend(inner),
                        part => out.push(part),
                    }
                }
                // Ranges on one column intersect into one range (`a..b` is `>= a AND < b`),
                // which a segment counts exactly.
                let mut merged: Vec<Node> = Vec::with_capacity(out.len());
                for part in out {
                    if let Node::Range { column, low, high } = part
                        && let Some(Node::Range { low: l, high: h, .. }) = merged
                            .iter_mut()
                            .find(|m| matches!(m, Node::Range { column: c, .. } if *c == column))
                    {
                        *l = (*l).max(low);
                        *h = (*h).min(high);
                        if l > h {
                            return Node::Const(false);
                        }
                        continue;
                    }
                    merged.push(part);
                }
                match merged.len() {
                    0 => Node::Const(true),
                    1 => merged.pop().expect("one part"),
                    _ => Node::And(merged),
                }
            }
            Node::Or(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for part in parts.into_iter().map(Node::simplify) {
                    match part {
                        Node::Const(false) => {}
                        Node::Const(true) => return Node::Const(true),
                        Node::Or(inner) => out.extend(inner),
                        part => out.push(part),
                    }
                }
                match out.len() {
                    0 => Node::Const(false),
                    1 => out.pop().expect("one part"),
                    _ => Node::Or(out),
                }
            }
            Node::Not(inner) => match inner.simplify() {
                Node::Const(b) => Node::Const(!b),
                Node::Not(inner) => *inner,
                inner => Node::Not(Box::new(inner)),
            },
            node => node,
        }
    }
}

fn bind(expr: &Expr, schema: &Schema) -> Result<Node> {
    let resolve = |name: &str, at: Option<usize>| {
        schema
            .column(name)
            .map(|(i, c)| (i, c.ty))
            .ok_or_else(|| AttributeError::UnknownAttribute { name: name.to_owned(), at })
    };
    Ok(match expr {
        Expr::Exists { column, at } => Node::Exists { column: resolve(column, *at)?.0 },
        Expr::And(parts) => {
            Node::And(parts.iter().map(|p| bind(p, schema)).collect::<Result<_>>()?)
        }
        Expr::Or(parts) => Node::Or(parts.iter().map(|p| bind(p, schema)).collect::<Result<_>>()?),
        Expr::Not(inner) => Node::Not(Box::new(bind(inner, schema)?)),
        Expr::In { column: name, values, at } => {
            let (column, ty) = resolve(name, *at)?;
            if ty.is_keyword() {
                let mut words = values
                    .iter()
                    .map(|v| keyword_literal(name, ty, v, *at))
                    .collect::<Result<Vec<_>>>()?;
                words.sort_unstable();
                words.dedup();
                Node::Keywords { column, words }
            } else {
                let mut parts = Vec::with_capacity(values.len());
                for value in values {
                    let key = exact_key(name, ty, value, *at)?;
                    parts.extend(key.map(|key| Node::Range { column, low: key, high: key }));
                }
                Node::Or(parts)
            }
        }
        Expr::Compare { column: name, op, value, at } => {
            let (column, ty) = resolve(name, *at)?;
            if ty.is_keyword() || ty == AttrType::Bool {
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(AttributeError::WrongType {
                        name: name.clone(),
                        expected: ty,
                        found: "an ordering comparison",
                        at: *at,
                    });
                }
                let matched = if ty.is_keyword() {
                    Node::Keywords { column, words: vec![keyword_literal(name, ty, value, *at)?] }
                } else {
                    let key = exact_key(name, ty, value, *at)?.expect("bools are exact");
                    Node::Range { column, low: key, high: key }
                };
                return Ok(match op {
                    CmpOp::Eq => matched,
                    _ => Node::And(vec![Node::Exists { column }, Node::Not(Box::new(matched))]),
                });
            }
            bind_ordered(name, column, ty, *op, value, *at)?
        }
    })
}

fn keyword_literal(name: &str, ty: AttrType, value: &Value, at: Option<usize>) -> Result<String> {
    match value {
        Value::Keyword(word) => Ok(word.clone()),
        other => Err(AttributeError::WrongType {
            name: name.to_owned(),
            expected: ty,
            found: other.type_name(),
            at,
        }),
    }
}

/// The key `value` has in a column of type `ty` (bool or numeric), or `None` if no stored value
/// can equal it (a fractional float against an integer column, a negative number against u64).
fn exact_key(name: &str, ty: AttrType, value: &Value, at: Option<usize>) -> Result<Option<u64>> {
    if ty == AttrType::Bool {
        return match value {
            Value::Bool(b) => Ok(Some(u64::from(*b))),
            other => Err(wrong(name, ty, other, at)),
        };
    }
    Ok(match place(name, ty, value, at)? {
        Place::Exact(key) => Some(key),
        _ => None,
    })
}

fn wrong(name: &str, ty: AttrType, value: &Value, at: Option<usize>) -> AttributeError {
    AttributeError::WrongType { name: name.to_owned(), expected: ty, found: value.type_name(), at }
}

/// Where a literal falls among the keys of an ordered column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A value the column can hold.
    Exact(u64),
    /// Strictly between two adjacent keys (1.5 in an integer column).
    Between(u64, u64),
    /// Below every key (-1 in a u64 column).
    BelowAll,
    /// Above every key.
    AboveAll,
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

fn place(name: &str, ty: AttrType, value: &Value, at: Option<usize>) -> Result<Place> {
    let nan = || AttributeError::Value(format!("{name:?} compared with NaN"));
    match (ty, value) {
        (_, Value::F64(v)) if v.is_nan() => Err(nan()),
        (AttrType::F64, Value::U64(_) | Value::I64(_)) => {
            // An integer with no exact f64 lies strictly between two adjacent floats.
            let (exact, rounded) = match value {
                Value::U64(v) => (exact_f64_of_u64(*v), *v as f64),
                Value::I64(v) => (exact_f64_of_i64(*v), *v as f64),
                _ => unreachable!("matched integers"),
            };
            let key = |f: f64| f64_key(f).expect("integers are not NaN");
            Ok(match exact {
                Some(f) => Place::Exact(key(f)),
                None => {
                    let above = match value {
                        Value::U64(v) => rounded >= TWO_POW_64 || rounded as u64 > *v,
                        Value::I64(v) => rounded >= TWO_POW_63 || rounded as i64 > *v,
                        _ => unreachable!("matched integers"),
                    };
                    if above {
                        Place::Between(key(rounded.next_down()), key(rounded))
                    } else {
                        Place::Between(key(rounded), key(rounded.next_up()))
                    }
                }
            })
        }
        (AttrType::U64, Value::I64(v)) if *v < 0 => Ok(Place::BelowAll),
        (AttrType::I64, Value::U64(v)) if *v > i64::MAX as u64 => Ok(Place::AboveAll),
        (AttrType::U64 | AttrType::I64, Value::F64(v)) => {
            let (low, high) =
                if ty == AttrType::U64 { (0.0, TWO_POW_64) } else { (-TWO_POW_63, TWO_POW_63) };
            let key = |x: f64| if ty == AttrType::U64 { x as u64 } else { i64_key(x as i64) };
            Ok(if *v < low {
                Place::BelowAll
            } else if *v >= high {
                Place::AboveAll
            } else if v.fract() == 0.0 {
                Place::Exact(key(*v))
            } else {
                // floor >= low and ceil < high here, since v is not integral.
                Place::Between(key(v.floor()), key(v.ceil()))
            })
        }
        _ => match numeric_key(ty, value) {
            Some(Ok(key)) => Ok(Place::Exact(key)),
            Some(Err(problem)) => Err(AttributeError::Value(format!("{name:?}: {problem}"))),
            None => Err(wrong(name, ty, value, at)),
        },
    }
}

fn bind_ordered(
    name: &str,
    column: usize,
    ty: AttrType,
    op: CmpOp,
    value: &Value,
    at: Option<usize>,
) -> Result<Node> {
    let range = |low: u64, high: u64| Node::Range { column, low, high };
    let all = || range(0, u64::MAX);
    let none = || Node::Const(false);
    Ok(match (op, place(name, ty, value, at)?) {
        (CmpOp::Eq, Place::Exact(k)) => range(k, k),
        (CmpOp::Eq, _) => none(),
        (CmpOp::Ne, Place::Exact(k)) => Node::Or(vec![
            k.checked_sub(1).map_or_else(none, |high| range(0, high)),
            k.checked_add(1).map_or_else(none, |low| range(low, u64::MAX)),
        ]),
        (CmpOp::Ne, _) => Node::Exists { column },
        (CmpOp::Ge, Place::Exact(k)) => range(k, u64::MAX),
        (CmpOp::Gt, Place::Exact(k)) => {
            k.checked_add(1).map_or_else(none, |low| range(low, u64::MAX))
        }
        (CmpOp::Ge | CmpOp::Gt, Place::Between(_, ceil)) => range(ceil, u64::MAX),
        (CmpOp::Ge | CmpOp::Gt, Place::BelowAll) => all(),
        (CmpOp::Ge | CmpOp::Gt, Place::AboveAll) => none(),
        (CmpOp::Le, Place::Exact(k)) => range(0, k),
        (CmpOp::Lt, Place::Exact(k)) => k.checked_sub(1).map_or_else(none, |high| range(0, high)),
        (CmpOp::Le | CmpOp::Lt, Place::Between(floor, _)) => range(0, floor),
        (CmpOp::Le | CmpOp::Lt, Place::BelowAll) => none(),
        (CmpOp::Le | CmpOp::Lt, Place::AboveAll) => all(),
    })
}
