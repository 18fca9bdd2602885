//! A manifest object: the first 8 bytes are the version it is read as, the rest the object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Some((version, bytes)) = data.split_first_chunk::<8>() else { return };
    if let Ok(manifest) = Manifest::decode("fuzz", bytes, u64::from_le_bytes(*version)) {
        // What decodes must encode again, and to the same manifest.
        let again =
            Manifest::decode("fuzz", &manifest.encode(), manifest.version).expect("re-encoded");
        assert_eq!(again, manifest);
    }
});
