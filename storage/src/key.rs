//! Object keys: the portable subset of names that a local directory, S3 and GCS all accept.

use crate::error::{Error, Result};

/// Longest key accepted, in bytes (S3 and GCS allow 1024).
pub const MAX_KEY_LEN: usize = 1024;

/// Longest key component, in bytes: file systems allow 255 per name, and a local store's
/// temporary file adds a prefix and a suffix to the name.
pub const MAX_COMPONENT_LEN: usize = 200;

/// Checks that `key` is a valid object key.
///
/// A key is one or more `/`-separated components of at most 200 bytes ([`MAX_COMPONENT_LEN`]),
/// at most 1024 bytes in all. Each component is non-empty, uses only ASCII
/// letters, digits, `.`, `_` and `-`, and does not start with `.`: names starting with `.` are
/// reserved for a backend's own temporary files, which `list` never shows. These rules keep every
/// key a valid relative path on every local file system and a plain name on object stores, so the
/// same database can be copied between backends unchanged.
pub fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| Err(Error::InvalidKey { key: key.to_owned(), reason });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("longer than 1024 bytes");
    }
    for component in key.split('/') {
        if component.is_empty() {
            return invalid("empty path component (leading, trailing or double '/')");
        }
        if component.len() > MAX_COMPONENT_LEN {
            return invalid("a component is longer than 200 bytes");
        }
        if component.starts_with('.') {
            return invalid("a component starts with '.' (reserved for temporary files)");
        }
        if !component.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return invalid("only ASCII letters, digits, '.', '_', '-' and '/' are allowed");
        }
    }
    Ok(())
}

/// Checks a `list` prefix: empty, or a key prefix made of the same characters as keys.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    // A prefix may end inside a component or just after a '/'; strip that '/' and check the rest
    // as a key, so "segments/" and "segments/00" are both fine.
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed)
        .map_err(|_| Error::InvalidKey { key: prefix.to_owned(), reason: "not a valid key prefix" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_portable_keys() {
        for key in ["a", "manifest/00000001.manifest", "seg-1_x.flat", "a/b/c/d"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_unportable_keys() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for key in
            ["", "/a", "a/", "a//b", ".tmp", "a/.b", "..", "a/../b", "a b", "a\\b", "é", &long]
        {
            assert!(
                matches!(validate_key(key), Err(Error::InvalidKey { .. })),
                "{key:?} should be rejected"
            );
        }
    }

    #[test]
    fn prefixes() {
        for prefix in ["", "seg", "segments/", "segments/00"] {
            assert!(validate_prefix(prefix).is_ok(), "{prefix}");
        }
        for prefix in ["/", "a//", "../", ".x"] {
            assert!(validate_prefix(prefix).is_err(), "{prefix:?}");
        }
    }
}
