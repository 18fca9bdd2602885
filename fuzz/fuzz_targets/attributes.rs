//! A segment's attribute section, decoded against a schema with a column of every type:
//! 8 bytes of row count (capped), then the section.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_attributes::{ColumnSet, Filter, Schema};

fuzz_target!(|data: &[u8]| {
    let Some((rows, bytes)) = data.split_first_chunk::<8>() else { return };
    let rows = u64::from_le_bytes(*rows) % (1 << 20);
    let schema =
        Schema::parse("n:u64,i:i64,f:f64,b:bool,tag:keyword,tags:keywords").expect("schema");
    let Ok(columns) = ColumnSet::decode(bytes, rows, &schema) else { return };
    for row in 0..columns.rows().min(64) {
        let _ = columns.record(row);
    }
    let filter = Filter::parse("n > 3 AND tag = 'a' OR f < 0.5").expect("filter");
    let predicate = filter.bind(&schema).expect("bound");
    let bound = columns.bind(&predicate);
    for row in 0..columns.rows().min(64) {
        let _ = bound.matches(row);
    }
    let _ = bound.estimate();
});
