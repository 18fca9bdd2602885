//! Where each object lives under a database's root. Keys sort like the numbers in them.

use crate::SegmentKind;

/// Prefix of every manifest object.
pub const MANIFEST_PREFIX: &str = "manifest/";
/// Prefix of every segment file.
pub const SEGMENT_PREFIX: &str = "segments/";
/// Prefix of every deletion vector.
pub const DELETES_PREFIX: &str = "deletes/";

const MANIFEST_SUFFIX: &str = ".manifest";
const DELETES_SUFFIX: &str = ".del";

/// `manifest/00000000000000000042.manifest`: twenty digits, so keys sort by version.
pub fn manifest_key(version: u64) -> String {
    format!("{MANIFEST_PREFIX}{version:020}{MANIFEST_SUFFIX}")
}

/// The version named by a manifest key, or `None` for any other key.
pub fn parse_manifest_key(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(MANIFEST_PREFIX)?.strip_suffix(MANIFEST_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `segments/000000000000002a.flat`: the file of `kind` with role `role` of segment `id`.
pub fn segment_file_key(id: u64, kind: SegmentKind, role: u16) -> String {
    format!("{SEGMENT_PREFIX}{id:016x}.{}", kind.file_extension(role))
}

/// The segment id named by a segment file key, or `None` for any other key.
pub fn parse_segment_file_key(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(SEGMENT_PREFIX)?;
    let (hex, _extension) = rest.split_once('.')?;
    parse_hex16(hex)
}

/// `deletes/000000000000002a-0000000000000007.del`: the deletion vector of segment `segment`
/// written by the commit of version `generation`. Never overwritten: a changed deletion vector
/// is a new object.
pub fn deletes_key(segment: u64, generation: u64) -> String {
    format!("{DELETES_PREFIX}{segment:016x}-{generation:016x}{DELETES_SUFFIX}")
}

/// `(segment, generation)` named by a deletion vector key, or `None` for any other key.
pub fn parse_deletes_key(key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(DELETES_PREFIX)?.strip_suffix(DELETES_SUFFIX)?;
    let (segment, generation) = rest.split_once('-')?;
    Some((parse_hex16(segment)?, parse_hex16(generation)?))
}

fn parse_hex16(hex: &str) -> Option<u64> {
    (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_numerically() {
        for v in [0, 1, 9, 10, 12345, u64::MAX] {
            assert_eq!(parse_manifest_key(&manifest_key(v)), Some(v));
            assert_eq!(parse_segment_file_key(&segment_file_key(v, SegmentKind::Flat, 0)), Some(v));
            assert_eq!(parse_deletes_key(&deletes_key(v, v / 2)), Some((v, v / 2)));
            strata_storage::validate_key(&manifest_key(v)).unwrap();
            strata_storage::validate_key(&deletes_key(v, v)).unwrap();
        }
        assert!(manifest_key(9) < manifest_key(10));
        assert!(deletes_key(1, 9) < deletes_key(1, 10));
        for stray in ["manifest/1.manifest", "manifest/0000000000000000000x.manifest", "LOCK"] {
            assert_eq!(parse_manifest_key(stray), None, "{stray}");
        }
    }
}
