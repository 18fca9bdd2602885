//! The `.fvecs` / `.ivecs` formats of the ANN benchmark data sets: per row, a little-endian `i32`
//! dimension, then that many little-endian `f32` (fvecs) or `i32` (ivecs) values. Writers of
//! both, and the parser of `.ivecs`; every command reads vectors and ground truth through
//! `input` (`VectorFile`, `read_ground_truth`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Row-major vectors of one dimension, as read from a vecs file.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors<T> {
    /// Values per row.
    pub dim: usize,
    /// `rows() * dim` values.
    pub data: Vec<T>,
}

impl<T> Vectors<T> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Why a vecs file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VecsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the file holds no vectors")]
    Empty { path: PathBuf },
    #[error("{path}: row {row} declares dimension {dim}, which is not a positive size")]
    BadDimension { path: PathBuf, row: usize, dim: i32 },
    #[error("{path}: row {row} declares dimension {found}, but row 0 declares {expected}")]
    InconsistentDimension { path: PathBuf, row: usize, expected: usize, found: i32 },
    #[error("{path}: truncated inside row {row}: {left} bytes left where a row takes {row_bytes}")]
    Truncated { path: PathBuf, row: usize, left: usize, row_bytes: usize },
    #[error("{path}: {reason}")]
    Hdf5 { path: PathBuf, reason: String },
    #[error("{path}: {size} bytes do not hold the {rows} x {k} ids its header declares")]
    BadBinary { path: PathBuf, size: usize, rows: u64, k: u64 },
}

/// Largest dimension accepted; anything larger is a corrupt header, not a vector.
const MAX_DIM: i32 = 1 << 16;

fn parse<T>(
    path: &Path,
    bytes: &[u8],
    decode: impl Fn([u8; 4]) -> T,
) -> Result<Vectors<T>, VecsError> {
    let path_buf = || path.to_owned();
    if bytes.is_empty() {
        return Err(VecsError::Empty { path: path_buf() });
    }
    let word = |at: usize| -> [u8; 4] { bytes[at..at + 4].try_into().expect("4 bytes") };
    let mut dim = 0usize;
    let mut data = Vec::new();
    let mut offset = 0;
    let mut row = 0;
    while offset < bytes.len() {
        let left = bytes.len() - offset;
        if left < 4 {
            return Err(VecsError::Truncated {
                path: path_buf(),
                row,
                left,
                row_bytes: 4 + 4 * dim.max(1),
            });
        }
        let declared = i32::from_le_bytes(word(offset));
        if row == 0 {
            if declared <= 0 || declared > MAX_DIM {
                return Err(VecsError::BadDimension { path: path_buf(), row, dim: declared });
            }
            dim = declared as usize;
            data.reserve(bytes.len() / (4 + 4 * dim) * dim);
        } else if declared as usize != dim || declared <= 0 {
            return Err(VecsError::InconsistentDimension {
                path: path_buf(),
                row,
                expected: dim,
                found: declared,
            });
        }
        let row_bytes = 4 + 4 * dim;
        if left < row_bytes {
            return Err(VecsError::Truncated { path: path_buf(), row, left, row_bytes });
        }
        data.extend((0..dim).map(|i| decode(word(offset + 4 + 4 * i))));
        offset += row_bytes;
        row += 1;
    }
    Ok(Vectors { dim, data })
}

fn read_file(path: &Path) -> Result<Vec<u8>, VecsError> {
    std::fs::read(path).map_err(|source| VecsError::Io { path: path.to_owned(), source })
}

/// Reads an `.ivecs` file.
pub fn read_ivecs(path: &Path) -> Result<Vectors<i32>, VecsError> {
    parse(path, &read_file(path)?, i32::from_le_bytes)
}

fn write<T: Copy>(
    path: &Path,
    vectors: &Vectors<T>,
    encode: impl Fn(T) -> [u8; 4],
) -> Result<(), VecsError> {
    let io = |source| VecsError::Io { path: path.to_owned(), source };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    let dim = i32::try_from(vectors.dim).expect("dimension fits i32").to_le_bytes();
    for row in vectors.data.chunks_exact(vectors.dim) {
        out.write_all(&dim).map_err(io)?;
        for &value in row {
            out.write_all(&encode(value)).map_err(io)?;
        }
    }
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)
}

/// Writes an `.fvecs` file.
pub fn write_fvecs(path: &Path, vectors: &Vectors<f32>) -> Result<(), VecsError> {
    write(path, vectors, f32::to_le_bytes)
}

/// Writes an `.ivecs` file.
pub fn write_ivecs(path: &Path, vectors: &Vectors<i32>) -> Result<(), VecsError> {
    write(path, vectors, i32::to_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dim: i32, values: &[f32]) -> Vec<u8> {
        let mut bytes = dim.to_le_bytes().to_vec();
        values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
        bytes
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = Vectors { dim: 3, data: vec![1.0f32, -2.5, 3.0, 0.0, f32::MAX, 1e-30] };
        write_fvecs(&dir.path().join("a.fvecs"), &f).unwrap();
        let read = crate::input::read_vectors(&dir.path().join("a.fvecs")).unwrap();
        assert_eq!(read, f, "written here, read by the one reader of vector files");
        let i = Vectors { dim: 2, data: vec![1i32, -2, 7, i32::MAX] };
        write_ivecs(&dir.path().join("a.ivecs"), &i).unwrap();
        assert_eq!(read_ivecs(&dir.path().join("a.ivecs")).unwrap(), i);
        assert_eq!(i.rows(), 2);
        assert_eq!(i.row(1), &[7, i32::MAX]);
    }

    #[test]
    fn rejects_bad_files() {
        let p = Path::new("x.fvecs");
        let parse = |bytes: &[u8]| parse(p, bytes, f32::from_le_bytes).unwrap_err();
        assert!(matches!(parse(&[]), VecsError::Empty { .. }));
        assert!(matches!(parse(&row(0, &[])), VecsError::BadDimension { dim: 0, .. }));
        assert!(matches!(parse(&row(-3, &[1.0])), VecsError::BadDimension { .. }));
        let mut two = row(2, &[1.0, 2.0]);
        two.extend(row(3, &[1.0, 2.0, 3.0]));
        assert!(matches!(
            parse(&two),
            VecsError::InconsistentDimension { row: 1, expected: 2, found: 3, .. }
        ));
        let whole = [row(2, &[1.0, 2.0]), row(2, &[3.0, 4.0])].concat();
        for cut in 1..whole.len() {
            if cut == 12 {
                continue; // a whole first row is a valid file
            }
            let err = parse(&whole[..cut]);
            assert!(
                matches!(err, VecsError::Truncated { .. } | VecsError::BadDimension { .. }),
                "cut {cut}: {err}"
            );
        }
        let message = parse(&whole[..20]).to_string();
        assert!(message.contains("x.fvecs") && message.contains("row 1"), "{message}");
    }
}
