//! The framing footer every object ends with, and the body checksum it carries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_storage::framing::{FOOTER_LEN, Footer, unframe};

fuzz_target!(|data: &[u8]| {
    let format = strata_manifest::DELETES_FORMAT;
    let tail = &data[data.len().saturating_sub(FOOTER_LEN)..];
    if let Ok(footer) = Footer::decode("fuzz", &format, data.len() as u64, tail) {
        let body = &data[..data.len() - FOOTER_LEN];
        let _ = footer.verify_body("fuzz", body);
    }
    let _ = Footer::recognize(data.len() as u64, tail);
    let _ = unframe("fuzz", &format, data);
});
