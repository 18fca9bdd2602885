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

/// `segments/000000000000002a-5f3c9a0e12b4d7c8.flat`: the file of `kind` with role `role` of
/// segment `id`, written by the handle whose random writer tag is `tag`.
///
/// The tag keeps writers apart: two writers racing on one object store both pick the next
/// segment id, but never the same key, so the loser of the manifest commit cannot overwrite a
/// file the winner committed.
pub fn segment_file_key(id: u64, tag: u64, kind: SegmentKind, role: u16) -> String {
    format!("{SEGMENT_PREFIX}{id:016x}-{tag:016x}.{}", kind.file_extension(role))
}

/// The segment id named by a segment file key, or `None` for any other key.
pub fn parse_segment_file_key(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(SEGMENT_PREFIX)?;
    let (stem, _extension) = rest.split_once('.')?;
    let (id, tag) = stem.split_once('-')?;
    parse_hex16(tag)?;
    parse_hex16(id)
}

/// `deletes/000000000000002a-0000000000000007-5f3c9a0e12b4d7c8.del`: the deletion vector of
/// segment `segment` written by the commit of version `generation`, by the writer tagged `tag`.
/// Never overwritten: a changed deletion vector is a new object.
pub fn deletes_key(segment: u64, generation: u64, tag: u64) -> String {
    format!("{DELETES_PREFIX}{segment:016x}-{generation:016x}-{tag:016x}{DELETES_SUFFIX}")
}

/// `(segment, generation)` named by a deletion vector key, or `None` for any other key.
pub fn parse_deletes_key(key: &str) -> Option<(u64, u64)> {
    let rest = key.strip_prefix(DELETES_PREFIX)?.strip_suffix(DELETES_SUFFIX)?;
    let mut parts = rest.split('-');
    let (segment, generation, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    parse_hex16(tag)?;
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
            let segment = segment_file_key(v, !v, SegmentKind::Flat, 0);
            assert_eq!(parse_segment_file_key(&segment), Some(v));
            assert_eq!(parse_deletes_key(&deletes_key(v, v / 2, 3)), Some((v, v / 2)));
            strata_storage::validate_key(&manifest_key(v)).unwrap();
            strata_storage::validate_key(&segment).unwrap();
            strata_storage::validate_key(&deletes_key(v, v, v)).unwrap();
        }
        assert!(manifest_key(9) < manifest_key(10));
        assert!(deletes_key(1, 9, 5) < deletes_key(1, 10, 0));
        for stray in ["manifest/1.manifest", "manifest/0000000000000000000x.manifest", "LOCK"] {
            assert_eq!(parse_manifest_key(stray), None, "{stray}");
        }
    }
}
