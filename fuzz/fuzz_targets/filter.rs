//! Filter and schema text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_attributes::{Filter, Schema};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = Filter::parse(&text) {
        let schema =
            Schema::parse("n:u64,i:i64,f:f64,b:bool,tag:keyword,tags:keywords").expect("schema");
        let _ = filter.bind(&schema);
    }
    let _ = Schema::parse(&text);
});
