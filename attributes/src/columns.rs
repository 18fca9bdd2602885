//! A segment's attribute columns: the attribute section's codec, the in-RAM indexes built from
//! it at open, and [`SegmentPredicate`], a predicate bound to one segment's columns.
//!
//! Byte layout (`docs/format/attributes.md`): a head, then one block per column.
//! - Ordered and bool columns keep a presence bitmap and the keys of the present rows.
//! - Keyword columns keep a sorted dictionary and each row's dictionary ids.
//!
//! At open, numeric columns get the present rows sorted by key (a range is two binary searches
//! and a slice), keyword columns a posting list per dictionary word.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::filter::{Node, Predicate};
use crate::schema::{AttrType, Schema};
use crate::value::{Field, Record};
use crate::{AttributeError, Result};

/// The version of the attribute section's layout.
pub const SECTION_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SectionHead {
    version: U32,
    columns: U32,
    rows: U64,
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ColumnHead {
    ty: u8,
    reserved: u8,
    name_len: U16,
    reserved2: U32,
    /// Bytes of the column's body after the name.
    body_len: U64,
}

/// One column's values and index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnData {
    /// Numbers and bools as keys.
    Keys {
        /// Bit `row` set when the row has a value.
        present: Vec<u64>,
        /// Per row (0 where absent), so a walk tests a row with one load.
        keys: Vec<u64>,
        /// Present rows, by key then row.
        sorted: Vec<u32>,
    },
    /// Keywords and keyword lists.
    Words {
        /// Sorted, distinct.
        dict: Vec<String>,
        /// Row `r`'s dictionary ids are `ids[offsets[r]..offsets[r + 1]]`, in the order given.
        offsets: Vec<u32>,
        ids: Vec<u32>,
        /// Bit `row` set when the row has a value (possibly an empty list).
        present: Vec<u64>,
        /// Word `w`'s rows are `postings[posting_offsets[w]..posting_offsets[w + 1]]`, ascending.
        posting_offsets: Vec<u32>,
        postings: Vec<u32>,
    },
}

impl ColumnData {
    fn present(&self) -> &[u64] {
        match self {
            ColumnData::Keys { present, .. } | ColumnData::Words { present, .. } => present,
        }
    }

    fn memory_bytes(&self) -> usize {
        match self {
            ColumnData::Keys { present, keys, sorted } => {
                (present.capacity() + keys.capacity()) * 8 + sorted.capacity() * 4
            }
            ColumnData::Words { dict, offsets, ids, present, posting_offsets, postings } => {
                dict.iter().map(|w| w.capacity() + size_of::<String>()).sum::<usize>()
                    + (offsets.capacity() + ids.capacity() + posting_offsets.capacity()) * 4
                    + postings.capacity() * 4
                    + present.capacity() * 8
            }
        }
    }
}

#[inline]
fn bit(bits: &[u64], row: u32) -> bool {
    bits[(row / 64) as usize] >> (row % 64) & 1 == 1
}

/// A segment's attribute columns, in schema column order (`None`: the segment has no values
/// for that column, as when it was written before the column was declared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSet {
    rows: u32,
    columns: Vec<Option<ColumnData>>,
}

impl ColumnSet {
    /// A segment without attribute values: every column absent.
    pub fn empty(rows: u32) -> Self {
        ColumnSet { rows, columns: Vec::new() }
    }

    /// The columns of `records` (one per row, in row order) under `schema`.
    pub fn build<'r>(
        schema: &Schema,
        records: impl ExactSizeIterator<Item = &'r Record> + Clone,
    ) -> Self {
        let rows = records.len();
        assert!(rows <= u32::MAX as usize, "a segment holds at most u32::MAX rows");
        let words = rows.div_ceil(64);
        let columns = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let fields = records.clone().map(|r| r.field(index));
                if fields.clone().all(|f| matches!(f, Field::Absent)) {
                    return None;
                }
                let mut present = vec![0u64; words];
                if column.ty.is_keyword() {
                    let mut dict: Vec<&str> = fields
                        .clone()
                        .flat_map(|f| match f {
                            Field::Keywords(w) => w.iter().map(String::as_str).collect(),
                            _ => Vec::new(),
                        })
                        .collect();
                    dict.sort_unstable();
                    dict.dedup();
                    let mut offsets = Vec::with_capacity(rows + 1);
                    let mut ids = Vec::new();
                    offsets.push(0);
                    for (row, field) in fields.enumerate() {
                        if let Field::Keywords(list) = field {
                            present[row / 64] |= 1 << (row % 64);
                            ids.extend(list.iter().map(|w| {
                                dict.binary_search(&w.as_str()).expect("word is in the dictionary")
                                    as u32
                            }));
                        }
                        offsets.push(u32::try_from(ids.len()).expect("at most u32::MAX words"));
                    }
                    let dict = dict.into_iter().map(str::to_owned).collect();
                    Some(words_column(dict, offsets, ids, present))
                } else {
                    let mut keys = vec![0u64; rows];
                    for (row, field) in fields.enumerate() {
                        if let Field::Key(key) = field {
                            present[row / 64] |= 1 << (row % 64);
                            keys[row] = *key;
                        }
                    }
                    Some(keys_column(present, keys))
                }
            })
            .collect();
        ColumnSet { rows: rows as u32, columns }
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Bytes of RAM its values and indexes take.
    pub fn memory_bytes(&self) -> usize {
        self.columns.iter().flatten().map(ColumnData::memory_bytes).sum::<usize>()
            + self.columns.capacity() * size_of::<Option<ColumnData>>()
    }

    /// Whether no column has a value in any row.
    pub fn is_empty(&self) -> bool {
        self.columns.iter().all(Option::is_none)
    }

    /// Row `row`'s fields (the payload is not kept here).
    pub fn record(&self, row: u32) -> Record {
        let fields = self
            .columns
            .iter()
            .map(|column| match column {
                None => Field::Absent,
                Some(data) if !bit(data.present(), row) => Field::Absent,
                Some(ColumnData::Keys { keys, .. }) => Field::Key(keys[row as usize]),
                Some(ColumnData::Words { dict, offsets, ids, .. }) => {
                    let span = offsets[row as usize] as usize..offsets[row as usize + 1] as usize;
                    Field::Keywords(ids[span].iter().map(|&id| dict[id as usize].clone()).collect())
                }
            })
            .collect();
        Record::from_fields(fields, None)
    }

    /// The attribute section's bytes under `schema` (the schema the set was built with).
    pub fn encode(&self, schema: &Schema) -> Vec<u8> {
        let mut out = Vec::new();
        let present_columns = self.columns.iter().filter(|c| c.is_some()).count();
        let head = SectionHead {
            version: SECTION_VERSION.into(),
            columns: (present_columns as u32).into(),
            rows: u64::from(self.rows).into(),
        };
        out.extend_from_slice(head.as_bytes());
        for (column, data) in schema.columns().iter().zip(&self.columns) {
            let Some(data) = data else { continue };
            let mut body = Vec::new();
            match data {
                ColumnData::Keys { present, keys, .. } => {
                    put_u64s(&mut body, present);
                    let present_keys =
                        (0..self.rows).filter(|&r| bit(present, r)).map(|r| keys[r as usize]);
                    for key in present_keys {
                        body.extend_from_slice(&key.to_le_bytes());
                    }
                }
                ColumnData::Words { dict, offsets, ids, present, .. } => {
                    put_u64s(&mut body, present);
                    body.extend_from_slice(&(dict.len() as u32).to_le_bytes());
                    let mut at = 0u32;
                    body.extend_from_slice(&at.to_le_bytes());
                    for word in dict {
                        at += word.len() as u32;
                        body.extend_from_slice(&at.to_le_bytes());
                    }
                    for word in dict {
                        body.extend_from_slice(word.as_bytes());
                    }
                    while body.len() % 4 != 0 {
                        body.push(0);
                    }
                    put_u32s(&mut body, offsets);
                    put_u32s(&mut body, ids);
                }
            }
            let head = ColumnHead {
                ty: column.ty.code(),
                reserved: 0,
                name_len: (column.name.len() as u16).into(),
                reserved2: 0.into(),
                body_len: (body.len() as u64).into(),
            };
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(column.name.as_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    /// Decodes an attribute section of a segment with `rows` rows, mapping its columns onto
    /// `schema` by name. Every length, offset, id and key count is checked: a corrupt section
    /// is an error, never a panic or an out-of-bounds read later.
    pub fn decode(bytes: &[u8], rows: u64, schema: &Schema) -> Result<Self> {
        let corrupt = |what: String| AttributeError::Corrupt(what);
        let (head, mut rest) = SectionHead::read_from_prefix(bytes)
            .map_err(|_| corrupt(format!("{} bytes, shorter than its head", bytes.len())))?;
        if head.version.get() != SECTION_VERSION {
            return Err(corrupt(format!(
                "version {} (this build reads {SECTION_VERSION})",
                head.version.get()
            )));
        }
        if head.rows.get() != rows || rows > u64::from(u32::MAX) {
            return Err(corrupt(format!("{} rows in a segment of {rows}", head.rows.get())));
        }
        let rows = rows as u32;
        let words = (rows as usize).div_ceil(64);
        let mut columns: Vec<Option<ColumnData>> = vec![None; schema.len()];
        for _ in 0..head.columns.get() {
            let (column, after) = ColumnHead::read_from_prefix(rest)
                .map_err(|_| corrupt("a column head past the end".into()))?;
            let name_len = column.name_len.get() as usize;
            let body_len = usize::try_from(column.body_len.get()).unwrap_or(usize::MAX);
            if after.len() < name_len || after.len() - name_len < body_len {
                return Err(corrupt("a column past the end".into()));
            }
            let name = std::str::from_utf8(&after[..name_len])
                .map_err(|_| corrupt("a column name that is not UTF-8".into()))?;
            let body = &after[name_len..name_len + body_len];
            rest = &after[name_len + body_len..];
            let ty = AttrType::from_code(column.ty).ok_or_else(|| {
                corrupt(format!("column {name:?} has unknown type {}", column.ty))
            })?;
            let Some((index, declared)) = schema.column(name) else {
                return Err(corrupt(format!("column {name:?} is not in the schema")));
            };
            if declared.ty != ty {
                return Err(corrupt(format!(
                    "column {name:?} is {ty} here but {} in the schema",
                    declared.ty
                )));
            }
            if columns[index].is_some() {
                return Err(corrupt(format!("column {name:?} appears twice")));
            }
            columns[index] = Some(decode_column(name, ty, body, rows, words)?);
        }
        if !rest.is_empty() {
            return Err(corrupt(format!("{} bytes after the last column", rest.len())));
        }
        Ok(ColumnSet { rows, columns })
    }

    /// `predicate` bound to these columns.
    pub fn bind<'a>(&'a self, predicate: &Predicate) -> SegmentPredicate<'a> {
        SegmentPredicate { set: self, node: self.bind_node(&predicate.node) }
    }

    fn bind_node<'a>(&'a self, node: &Node) -> SNode<'a> {
        let column = |c: usize| self.columns.get(c).and_then(Option::as_ref);
        match node {
            Node::Const(b) => SNode::Const(*b),
            Node::Range { column: c, low, high } => match column(*c) {
                Some(ColumnData::Keys { present, keys, sorted }) => {
                    SNode::Range { present, keys, sorted, low: *low, high: *high }
                }
                _ => SNode::Const(false),
            },
            Node::Keywords { column: c, words } => match column(*c) {
                Some(ColumnData::Words {
                    dict, offsets, ids, posting_offsets, postings, ..
                }) => {
                    let mut wanted: Vec<u32> = words
                        .iter()
                        .filter_map(|w| dict.binary_search(w).ok().map(|i| i as u32))
                        .collect();
                    wanted.sort_unstable();
                    if wanted.is_empty() {
                        SNode::Const(false)
                    } else {
                        SNode::Words { offsets, ids, posting_offsets, postings, wanted }
                    }
                }
                _ => SNode::Const(false),
            },
            Node::Exists { column: c } => match column(*c) {
                Some(data) => SNode::Exists { present: data.present() },
                None => SNode::Const(false),
            },
            Node::And(parts) => SNode::And(parts.iter().map(|p| self.bind_node(p)).collect()),
            Node::Or(parts) => SNode::Or(parts.iter().map(|p| self.bind_node(p)).collect()),
            Node::Not(inner) => SNode::Not(Box::new(self.bind_node(inner))),
        }
    }
}

fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn keys_column(present: Vec<u64>, keys: Vec<u64>) -> ColumnData {
    let rows = keys.len() as u32;
    let mut sorted: Vec<u32> = (0..rows).filter(|&r| bit(&present, r)).collect();
    sorted.sort_unstable_by_key(|&r| (keys[r as usize], r));
    ColumnData::Keys { present, keys, sorted }
}

fn words_column(
    dict: Vec<String>,
    offsets: Vec<u32>,
    ids: Vec<u32>,
    present: Vec<u64>,
) -> ColumnData {
    let mut counts = vec![0u32; dict.len() + 1];
    for &id in &ids {
        counts[id as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let posting_offsets = counts.clone();
    let mut postings = vec![0u32; ids.len()];
    let mut next = counts;
    for row in 0..offsets.len().saturating_sub(1) {
        let span = offsets[row] as usize..offsets[row + 1] as usize;
        for &id in &ids[span] {
            // A row that lists a word twice is posted once.
            let slot = &mut next[id as usize];
            if *slot > posting_offsets[id as usize] && postings[*slot as usize - 1] == row as u32 {
                continue;
            }
            postings[*slot as usize] = row as u32;
            *slot += 1;
        }
    }
    // Compact the gaps left by duplicate words.
    let mut compact = Vec::with_capacity(postings.len());
    let mut compact_offsets = Vec::with_capacity(posting_offsets.len());
    compact_offsets.push(0u32);
    for w in 0..dict.len() {
        compact.extend_from_slice(&postings[posting_offsets[w] as usize..next[w] as usize]);
        compact_offsets.push(compact.len() as u32);
    }
    ColumnData::Words {
        dict,
        offsets,
        ids,
        present,
        posting_offsets: compact_offsets,
        postings: compact,
    }
}

fn decode_column(
    name: &str,
    ty: AttrType,
    body: &[u8],
    rows: u32,
    words: usize,
) -> Result<ColumnData> {
    let corrupt = |what: &str| AttributeError::Corrupt(format!("column {name:?}: {what}"));
    let (present, rest) = <[U64]>::ref_from_prefix_with_elems(body, words)
        .map_err(|_| corrupt("presence bitmap past the end"))?;
    let present: Vec<u64> = present.iter().map(|w| w.get()).collect();
    if !rows.is_multiple_of(64) && present.last().is_some_and(|w| w >> (rows % 64) != 0) {
        return Err(corrupt("presence bits past the last row"));
    }
    let count = present.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    if !ty.is_keyword() {
        let stored =
            <[U64]>::ref_from_bytes(rest).map_err(|_| corrupt("keys of a partial length"))?;
        if stored.len() != count {
            return Err(corrupt("key count differs from the present rows"));
        }
        let mut keys = vec![0u64; rows as usize];
        let mut stored = stored.iter();
        for row in (0..rows).filter(|&r| bit(&present, r)) {
            let key = stored.next().expect("counted").get();
            if ty == AttrType::Bool && key > 1 {
                return Err(corrupt("a bool key above 1"));
            }
            keys[row as usize] = key;
        }
        return Ok(keys_column(present, keys));
    }
    let (dict_len, rest) =
        U32::read_from_prefix(rest).map_err(|_| corrupt("dictionary past the end"))?;
    let dict_len = dict_len.get() as usize;
    let (ends, rest) = <[U32]>::ref_from_prefix_with_elems(rest, dict_len.saturating_add(1))
        .map_err(|_| corrupt("dictionary offsets past the end"))?;
    let text_len = ends.last().map_or(0, |e| e.get() as usize);
    let padded = text_len.div_ceil(4) * 4;
    if ends[0].get() != 0 || ends.windows(2).any(|w| w[0].get() > w[1].get()) || rest.len() < padded
    {
        return Err(corrupt("dictionary offsets out of order or past the end"));
    }
    let text =
        std::str::from_utf8(&rest[..text_len]).map_err(|_| corrupt("a word that is not UTF-8"))?;
    let mut dict = Vec::with_capacity(dict_len);
    for w in ends.windows(2) {
        let word = text
            .get(w[0].get() as usize..w[1].get() as usize)
            .ok_or_else(|| corrupt("a word split inside a character"))?;
        if dict.last().is_some_and(|last: &String| last.as_str() >= word) {
            return Err(corrupt("dictionary not sorted and distinct"));
        }
        dict.push(word.to_owned());
    }
    let rest = &rest[padded..];
    let (offsets, rest) = <[U32]>::ref_from_prefix_with_elems(rest, rows as usize + 1)
        .map_err(|_| corrupt("row offsets past the end"))?;
    let offsets: Vec<u32> = offsets.iter().map(|o| o.get()).collect();
    let ids = <[U32]>::ref_from_bytes(rest).map_err(|_| corrupt("ids of a partial length"))?;
    let ids: Vec<u32> = ids.iter().map(|i| i.get()).collect();
    if offsets[0] != 0
        || offsets.windows(2).any(|w| w[0] > w[1])
        || offsets[rows as usize] as usize != ids.len()
    {
        return Err(corrupt("row offsets out of order or not covering the ids"));
    }
    if ids.iter().any(|&id| id as usize >= dict.len()) {
        return Err(corrupt("a word id past the dictionary"));
    }
    if (0..rows).any(|r| !bit(&present, r) && offsets[r as usize] != offsets[r as usize + 1]) {
        return Err(corrupt("words on a row without a value"));
    }
    Ok(words_column(dict, offsets, ids, present))
}

/// A [`Predicate`] bound to one segment's columns: tests single rows (a graph walk's
/// admission), estimates how many rows match (the planner), and lists them (an exact scan of
/// the matching rows).
#[derive(Debug)]
pub struct SegmentPredicate<'a> {
    set: &'a ColumnSet,
    node: SNode<'a>,
}

#[derive(Debug)]
enum SNode<'a> {
    Const(bool),
    Range {
        present: &'a [u64],
        keys: &'a [u64],
        sorted: &'a [u32],
        low: u64,
        high: u64,
    },
    Words {
        offsets: &'a [u32],
        ids: &'a [u32],
        posting_offsets: &'a [u32],
        postings: &'a [u32],
        /// Sorted dictionary ids.
        wanted: Vec<u32>,
    },
    Exists {
        present: &'a [u64],
    },
    And(Vec<SNode<'a>>),
    Or(Vec<SNode<'a>>),
    Not(Box<SNode<'a>>),
}

impl SNode<'_> {
    #[inline]
    fn matches(&self, row: u32) -> bool {
        match self {
            SNode::Const(b) => *b,
            SNode::Range { present, keys, low, high, .. } => {
                bit(present, row) && (*low..=*high).contains(&keys[row as usize])
            }
            SNode::Words { offsets, ids, wanted, .. } => {
                let span = offsets[row as usize] as usize..offsets[row as usize + 1] as usize;
                ids[span].iter().any(|id| wanted.binary_search(id).is_ok())
            }
            SNode::Exists { present } => bit(present, row),
            SNode::And(parts) => parts.iter().all(|p| p.matches(row)),
            SNode::Or(parts) => parts.iter().any(|p| p.matches(row)),
            SNode::Not(inner) => !inner.matches(row),
        }
    }

    /// The fraction of rows expected to match: exact for one range, word or presence test;
    /// for compounds, as if their parts were independent.
    fn selectivity(&self, rows: u32) -> f64 {
        let rows = f64::from(rows.max(1));
        match self {
            SNode::Const(b) => f64::from(u8::from(*b)),
            SNode::Range { sorted, low, high, keys, .. } => {
                let (from, to) = range_span(sorted, keys, *low, *high);
                (to - from) as f64 / rows
            }
            SNode::Words { posting_offsets, wanted, .. } => {
                let hits: u64 = wanted
                    .iter()
                    .map(|&w| {
                        u64::from(posting_offsets[w as usize + 1] - posting_offsets[w as usize])
                    })
                    .sum();
                (hits as f64 / rows).min(1.0)
            }
            SNode::Exists { present } => {
                present.iter().map(|w| w.count_ones() as f64).sum::<f64>() / rows
            }
            SNode::And(parts) => parts.iter().map(|p| p.selectivity(rows as u32)).product(),
            SNode::Or(parts) => {
                1.0 - parts.iter().map(|p| 1.0 - p.selectivity(rows as u32)).product::<f64>()
            }
            SNode::Not(inner) => 1.0 - inner.selectivity(rows as u32),
        }
    }
}

/// The slice of `sorted` whose keys lie in `low..=high`.
fn range_span(sorted: &[u32], keys: &[u64], low: u64, high: u64) -> (usize, usize) {
    let from = sorted.partition_point(|&r| keys[r as usize] < low);
    let to = sorted.partition_point(|&r| keys[r as usize] <= high);
    (from, to.max(from))
}

impl SegmentPredicate<'_> {
    /// Whether row `row` matches.
    #[inline]
    pub fn matches(&self, row: u32) -> bool {
        self.node.matches(row)
    }

    /// How many rows are expected to match (see the module docs); exact for a single range,
    /// keyword or presence test on a single-valued column.
    pub fn estimate(&self) -> u64 {
        (self.node.selectivity(self.set.rows) * f64::from(self.set.rows)).round() as u64
    }

    /// Whether every row matches.
    pub fn is_all(&self) -> bool {
        matches!(self.node, SNode::Const(true))
    }

    /// The matching rows, each once, in no particular order (ascending, but for a range:
    /// key order). Costs about the matching rows of its cheapest conjunct, or one test per
    /// row under a `NOT` or a constant `true`.
    pub fn rows(&self) -> Vec<u32> {
        self.collect(&self.node)
    }

    fn collect(&self, node: &SNode<'_>) -> Vec<u32> {
        let rows = self.set.rows;
        let every = || (0..rows).filter(|&r| node.matches(r)).collect();
        match node {
            SNode::Const(false) => Vec::new(),
            SNode::Range { sorted, keys, low, high, .. } => {
                // In key order: a scan needs no row order, and sorting cost as much as the copy
                // ten times over.
                let (from, to) = range_span(sorted, keys, *low, *high);
                sorted[from..to].to_vec()
            }
            SNode::Words { posting_offsets, postings, wanted, .. } => {
                let mut out = Vec::new();
                for &w in wanted {
                    let span = posting_offsets[w as usize] as usize
                        ..posting_offsets[w as usize + 1] as usize;
                    out.extend_from_slice(&postings[span]);
                }
                if wanted.len() > 1 {
                    out.sort_unstable();
                    out.dedup();
                }
                out
            }
            SNode::And(parts) => {
                let cheapest = parts
                    .iter()
                    .filter(|p| !matches!(p, SNode::Not(_) | SNode::Const(true)))
                    .min_by(|a, b| a.selectivity(rows).total_cmp(&b.selectivity(rows)));
                match cheapest {
                    Some(part) => {
                        let mut out = self.collect(part);
                        out.retain(|&row| node.matches(row));
                        out
                    }
                    None => every(),
                }
            }
            SNode::Or(parts) => {
                let mut out: Vec<u32> = parts.iter().flat_map(|p| self.collect(p)).collect();
                out.sort_unstable();
                out.dedup();
                out
            }
            SNode::Const(true) | SNode::Exists { .. } | SNode::Not(_) => every(),
        }
    }
}

#[cfg(test)]
mod tests;
