//! The footer every Strata file ends with: magic, format version, required features, body length
//! and crc32 checksums. Byte layout and versioning rules: `docs/format/framing.md`.
//!
//! One read of the last [`FOOTER_LEN`] bytes identifies a file and says how long its body is; a
//! format's own sections are then found from there (or from a header in the body). Small objects
//! (manifests, deletion vectors) use [`frame`] / [`unframe`]; large ones stream through
//! [`FramedWriter`] and check the body checksum when they choose to (opening a segment must not
//! read all its vectors).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{Corruption, Error, ObjectWriter, Result};

/// Size of [`Footer`] in bytes.
pub const FOOTER_LEN: usize = 32;

/// The fixed footer at the end of every file. All integers little-endian.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct Footer {
    /// Identifies the file kind, e.g. `b"STRAMANI"`.
    pub magic: [u8; 8],
    /// Incompatible-change counter: a reader refuses any major version but its own.
    pub major: U16,
    /// Compatible-change counter: readers accept any minor version of their major.
    pub minor: U16,
    /// Bit set of features a reader must understand to read the file correctly.
    pub required_features: U32,
    /// Bytes before the footer.
    pub body_len: U64,
    /// crc32 (IEEE, as computed by crc32fast) of the body.
    pub body_crc32: U32,
    /// crc32 of the 28 footer bytes before this field.
    pub footer_crc32: U32,
}

const _: () = assert!(size_of::<Footer>() == FOOTER_LEN);

/// What a file kind's reader and writer speak: its magic, the major and minor version written
/// by this build, and the required-feature bits this build understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatId {
    /// The file kind's magic.
    pub magic: [u8; 8],
    /// The major version this build writes and reads.
    pub major: u16,
    /// The minor version this build writes.
    pub minor: u16,
    /// Required-feature bits this build understands.
    pub known_features: u32,
}

impl Footer {
    /// The footer for `body` (of `body_len` bytes with checksum `body_crc32`) in `format`.
    pub fn new(format: &FormatId, required_features: u32, body_len: u64, body_crc32: u32) -> Self {
        let mut footer = Footer {
            magic: format.magic,
            major: U16::new(format.major),
            minor: U16::new(format.minor),
            required_features: U32::new(required_features),
            body_len: U64::new(body_len),
            body_crc32: U32::new(body_crc32),
            footer_crc32: U32::ZERO,
        };
        footer.footer_crc32 = U32::new(footer.computed_footer_crc());
        footer
    }

    fn computed_footer_crc(&self) -> u32 {
        crc32fast::hash(&self.as_bytes()[..FOOTER_LEN - 4])
    }

    /// The footer of an object of `size` bytes whose last [`FOOTER_LEN`] bytes are `tail`, if
    /// they are a footer of any file kind: its own checksum holds and it records the body length
    /// present. A copy of an object (a download, a cache file) can then be checked against the
    /// body checksum without knowing the object's format; an object that is not framed is
    /// recognized by chance with probability 2^-32.
    pub fn recognize(size: u64, tail: &[u8]) -> Option<Footer> {
        let footer = Footer::read_from_bytes(tail).ok()?;
        let consistent = size >= FOOTER_LEN as u64
            && footer.footer_crc32.get() == footer.computed_footer_crc()
            && footer.body_len.get() == size - FOOTER_LEN as u64;
        consistent.then_some(footer)
    }

    /// Decodes and checks the footer of the object `object`, `file_len` bytes long, whose last
    /// [`FOOTER_LEN`] bytes are `tail`: magic, footer checksum, version, required features and
    /// body length. The body checksum is left to [`verify_body`](Self::verify_body).
    pub fn decode(object: &str, format: &FormatId, file_len: u64, tail: &[u8]) -> Result<Self> {
        let corrupt = |corruption| Error::Corrupt { object: object.to_owned(), corruption };
        if file_len < FOOTER_LEN as u64 || tail.len() != FOOTER_LEN {
            return Err(corrupt(Corruption::Truncated {
                len: file_len,
                needed: FOOTER_LEN as u64,
            }));
        }
        let footer = Footer::read_from_bytes(tail).expect("length checked above");
        if footer.magic != format.magic {
            return Err(corrupt(Corruption::BadMagic {
                expected: format.magic,
                found: footer.magic,
            }));
        }
        if footer.footer_crc32.get() != footer.computed_footer_crc() {
            return Err(corrupt(Corruption::FooterChecksum));
        }
        if footer.major.get() != format.major {
            return Err(Error::UnsupportedVersion {
                object: object.to_owned(),
                found_major: footer.major.get(),
                found_minor: footer.minor.get(),
                supported_major: format.major,
            });
        }
        let unknown = footer.required_features.get() & !format.known_features;
        if unknown != 0 {
            return Err(Error::UnknownFeatures { object: object.to_owned(), unknown });
        }
        let actual = file_len - FOOTER_LEN as u64;
        if footer.body_len.get() != actual {
            return Err(corrupt(Corruption::BodyLength {
                recorded: footer.body_len.get(),
                actual,
            }));
        }
        Ok(footer)
    }

    /// Checks `body` against the recorded checksum.
    pub fn verify_body(&self, object: &str, body: &[u8]) -> Result<()> {
        let actual = crc32fast::hash(body);
        if actual != self.body_crc32.get() {
            return Err(Error::Corrupt {
                object: object.to_owned(),
                corruption: Corruption::BodyChecksum { recorded: self.body_crc32.get(), actual },
            });
        }
        Ok(())
    }
}

/// `body` followed by its footer: the whole encoding of a small object.
pub fn frame(format: &FormatId, required_features: u32, body: &[u8]) -> Vec<u8> {
    let footer = Footer::new(format, required_features, body.len() as u64, crc32fast::hash(body));
    let mut out = Vec::with_capacity(body.len() + FOOTER_LEN);
    out.extend_from_slice(body);
    out.extend_from_slice(footer.as_bytes());
    out
}

/// Checks every framing rule of `bytes`, the whole object `object`, including the body checksum,
/// and returns the body and footer.
pub fn unframe<'a>(object: &str, format: &FormatId, bytes: &'a [u8]) -> Result<(&'a [u8], Footer)> {
    let tail_start = bytes.len().saturating_sub(FOOTER_LEN);
    let footer = Footer::decode(object, format, bytes.len() as u64, &bytes[tail_start..])?;
    let body = &bytes[..tail_start];
    footer.verify_body(object, body)?;
    Ok((body, footer))
}

/// Streams a body through an [`ObjectWriter`], keeping its length and checksum, and appends the
/// footer on [`finish`](Self::finish).
pub struct FramedWriter<'a> {
    inner: Box<dyn ObjectWriter + 'a>,
    format: FormatId,
    hasher: crc32fast::Hasher,
}

impl std::fmt::Debug for FramedWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedWriter")
            .field("format", &self.format)
            .field("bytes_written", &self.inner.bytes_written())
            .finish()
    }
}

impl<'a> FramedWriter<'a> {
    /// Wraps `inner`, which must not have been written to yet.
    pub fn new(inner: Box<dyn ObjectWriter + 'a>, format: FormatId) -> Self {
        FramedWriter { inner, format, hasher: crc32fast::Hasher::new() }
    }

    /// Appends `data` to the body.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.inner.write_all(data)
    }

    /// Body bytes written so far: the offset the next write lands at.
    pub fn position(&self) -> u64 {
        self.inner.bytes_written()
    }

    /// Writes zero bytes until [`position`](Self::position) is a multiple of `align`.
    pub fn pad_to(&mut self, align: u64) -> Result<()> {
        const ZEROS: [u8; 64] = [0; 64];
        let mut pad = self.position().next_multiple_of(align) - self.position();
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64) as usize;
            self.write_all(&ZEROS[..n])?;
            pad -= n as u64;
        }
        Ok(())
    }

    /// Appends the footer and publishes the object; returns the footer written.
    pub fn finish(mut self, required_features: u32) -> Result<Footer> {
        let body_len = self.inner.bytes_written();
        let footer = Footer::new(&self.format, required_features, body_len, self.hasher.finalize());
        self.inner.write_all(footer.as_bytes())?;
        self.inner.finish()?;
        Ok(footer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: FormatId =
        FormatId { magic: *b"STRATEST", major: 2, minor: 5, known_features: 0b11 };

    fn err_of(bytes: &[u8]) -> Error {
        unframe("obj", &FORMAT, bytes).expect_err("should be rejected")
    }

    #[test]
    fn round_trip() {
        for body in [&b""[..], b"x", &[7u8; 1000][..]] {
            let framed = frame(&FORMAT, 0b01, body);
            assert_eq!(framed.len(), body.len() + FOOTER_LEN);
            let (decoded, footer) = unframe("obj", &FORMAT, &framed).unwrap();
            assert_eq!(decoded, body);
            assert_eq!(footer.required_features.get(), 0b01);
            assert_eq!((footer.major.get(), footer.minor.get()), (2, 5));
        }
    }

    #[test]
    fn newer_minor_version_is_read() {
        let newer = FormatId { minor: 9, ..FORMAT };
        assert!(unframe("obj", &FORMAT, &frame(&newer, 0, b"body")).is_ok());
    }

    #[test]
    fn other_major_version_is_refused() {
        let newer = FormatId { major: 3, ..FORMAT };
        let err = err_of(&frame(&newer, 0, b"body"));
        assert!(
            matches!(err, Error::UnsupportedVersion { found_major: 3, supported_major: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn unknown_required_feature_is_refused() {
        let err = err_of(&frame(&FORMAT, 0b100, b"body"));
        assert!(matches!(err, Error::UnknownFeatures { unknown: 0b100, .. }), "{err}");
    }

    #[test]
    fn wrong_magic_and_truncation() {
        let other = FormatId { magic: *b"STRAOTHR", ..FORMAT };
        let err = err_of(&frame(&other, 0, b"body"));
        assert!(matches!(err, Error::Corrupt { corruption: Corruption::BadMagic { .. }, .. }));
        let err = err_of(b"short");
        assert!(matches!(err, Error::Corrupt { corruption: Corruption::Truncated { .. }, .. }));
        let framed = frame(&FORMAT, 0, b"some body");
        assert!(matches!(err_of(&framed[1..]), Error::Corrupt { .. }));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let framed = frame(&FORMAT, 0b10, b"a body worth protecting");
        for byte in 0..framed.len() {
            for bit in 0..8 {
                let mut damaged = framed.clone();
                damaged[byte] ^= 1 << bit;
                assert!(unframe("obj", &FORMAT, &damaged).is_err(), "flip at {byte}:{bit}");
            }
        }
    }

    /// Holds docs/format/framing.md to the code: offsets written out by hand, not through the
    /// struct, so a reordered field fails here.
    #[test]
    fn footer_layout_matches_the_spec() {
        let body = b"0123456789";
        let framed = frame(&FORMAT, 0x0102_0304, body);
        let footer = &framed[body.len()..];
        assert_eq!(footer.len(), 32);
        assert_eq!(&footer[0..8], b"STRATEST", "magic at 0");
        assert_eq!(&footer[8..10], &2u16.to_le_bytes(), "major at 8");
        assert_eq!(&footer[10..12], &5u16.to_le_bytes(), "minor at 10");
        assert_eq!(&footer[12..16], &0x0102_0304u32.to_le_bytes(), "required features at 12");
        assert_eq!(&footer[16..24], &10u64.to_le_bytes(), "body length at 16");
        assert_eq!(&footer[24..28], &crc32fast::hash(body).to_le_bytes(), "body crc at 24");
        assert_eq!(
            &footer[28..32],
            &crc32fast::hash(&footer[..28]).to_le_bytes(),
            "footer crc at 28"
        );
    }

    #[test]
    fn framed_writer_matches_frame() {
        let store = crate::MemoryStore::new();
        let mut writer = FramedWriter::new(crate::Storage::writer(&store, "x").unwrap(), FORMAT);
        writer.write_all(b"abc").unwrap();
        writer.pad_to(64).unwrap();
        assert_eq!(writer.position(), 64);
        writer.write_all(b"def").unwrap();
        writer.finish(0b01).unwrap();
        let mut body = b"abc".to_vec();
        body.resize(64, 0);
        body.extend_from_slice(b"def");
        let stored = crate::Storage::get(&store, "x").unwrap();
        assert_eq!(&stored[..], &frame(&FORMAT, 0b01, &body)[..]);
    }
}
