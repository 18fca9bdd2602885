//! Vector files for bulk loads and queries, read through a memory map without loading them
//! whole: `.fvecs` (per row: i32 dimension, then f32s), `.bvecs` (i32 dimension, then u8s) and
//! `.npy` (a 2-d little-endian float32 array in C order).
//!
//! Opening checks the header and the file size against the row layout, so a file cut short is
//! refused before anything is loaded; each row's own dimension word is checked as it is read.

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::vecs::Vectors;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: unknown format (expected a .fvecs, .bvecs or .npy file)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: the file holds no vectors")]
    Empty { path: PathBuf },
    #[error("{path}: bad header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error(
        "{path}: truncated: {size} bytes is not a whole number of {row_bytes}-byte rows ({rows} whole rows, {left} bytes left over)"
    )]
    Truncated { path: PathBuf, size: u64, row_bytes: u64, rows: u64, left: u64 },
    #[error("{path}: row {row} declares dimension {found}, but the file's rows have {expected}")]
    InconsistentDimension { path: PathBuf, row: usize, expected: usize, found: i32 },
}

/// Largest dimension accepted; anything larger is a corrupt header, not a vector.
const MAX_DIM: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Fvecs,
    Bvecs,
    Npy,
}

/// An open vector file.
#[derive(Debug)]
pub struct VectorFile {
    path: PathBuf,
    map: Mmap,
    format: Format,
    dim: usize,
    rows: usize,
    /// Where row 0 starts, and each row's length in bytes.
    start: usize,
    row_bytes: usize,
}

impl VectorFile {
    pub fn open(path: &Path) -> Result<VectorFile, InputError> {
        let io = |source| InputError::Io { path: path.to_owned(), source };
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("fvecs") => Format::Fvecs,
            Some("bvecs") => Format::Bvecs,
            Some("npy") => Format::Npy,
            _ => return Err(InputError::UnknownFormat { path: path.to_owned() }),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is opened read-only and this process never writes it; another process
        // truncating it while mapped would be a misuse the tool does not defend against (as with
        // any mmap reader), documented in `bulk-load --help`.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let bad = |reason: String| InputError::BadHeader { path: path.to_owned(), reason };
        if map.is_empty() {
            return Err(InputError::Empty { path: path.to_owned() });
        }
        let (dim, start, row_bytes) = match format {
            Format::Fvecs | Format::Bvecs => {
                if map.len() < 4 {
                    return Err(bad(format!("{} bytes, not even a dimension word", map.len())));
                }
                let declared = i32::from_le_bytes(map[..4].try_into().expect("4 bytes"));
                if declared <= 0 || declared as usize > MAX_DIM {
                    return Err(bad(format!("row 0 declares dimension {declared}")));
                }
                let dim = declared as usize;
                let width = if format == Format::Fvecs { 4 } else { 1 };
                (dim, 0, 4 + width * dim)
            }
            Format::Npy => {
                let (dim, start) = parse_npy_header(&map).map_err(bad)?;
                (dim, start, 4 * dim)
            }
        };
        let body = (map.len() - start) as u64;
        let rows = body / row_bytes as u64;
        let left = body % row_bytes as u64;
        if format == Format::Npy {
            let declared = npy_rows(&map).map_err(bad)?;
            if declared != rows || left != 0 {
                return Err(InputError::Truncated {
                    path: path.to_owned(),
                    size: map.len() as u64,
                    row_bytes: row_bytes as u64,
                    rows,
                    left: (declared.saturating_sub(rows)) * row_bytes as u64 + left,
                });
            }
        } else if left != 0 {
            return Err(InputError::Truncated {
                path: path.to_owned(),
                size: map.len() as u64,
                row_bytes: row_bytes as u64,
                rows,
                left,
            });
        }
        if rows == 0 {
            return Err(InputError::Empty { path: path.to_owned() });
        }
        Ok(VectorFile {
            path: path.to_owned(),
            map,
            format,
            dim,
            rows: rows as usize,
            start,
            row_bytes,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows `range` to `out` as f32s, checking each row's dimension word.
    /// Drops this process's resident copy of the rows read so far (they stay in the page
    /// cache): a load of a file larger than the memory it may use reads it through the map
    /// once, and each page read would otherwise count against the process until the end.
    pub fn release_resident(&self) {
        // SAFETY: a read-only shared map of a file nobody writes (see `open`): MADV_DONTNEED
        // unmaps its pages from this process, and a later read maps the same file pages again.
        let released = unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        // Only a hint: a refusal leaves the pages resident, nothing worse.
        drop(released);
    }

    pub fn read_rows(&self, range: Range<usize>, out: &mut Vec<f32>) -> Result<(), InputError> {
        assert!(range.end <= self.rows, "rows {range:?} of {}", self.rows);
        out.reserve(range.len() * self.dim);
        for row in range {
            let at = self.start + row * self.row_bytes;
            let bytes = &self.map[at..at + self.row_bytes];
            match self.format {
                Format::Fvecs | Format::Bvecs => {
                    let declared = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
                    if declared < 0 || declared as usize != self.dim {
                        return Err(InputError::InconsistentDimension {
                            path: self.path.clone(),
                            row,
                            expected: self.dim,
                            found: declared,
                        });
                    }
                    if self.format == Format::Fvecs {
                        out.extend(bytes[4..].chunks_exact(4).map(f32_le));
                    } else {
                        out.extend(bytes[4..].iter().map(|&b| f32::from(b)));
                    }
                }
                Format::Npy => out.extend(bytes.chunks_exact(4).map(f32_le)),
            }
        }
        Ok(())
    }

    /// Every row, as f32s.
    pub fn read_all(&self) -> Result<Vec<f32>, InputError> {
        let mut out = Vec::new();
        self.read_rows(0..self.rows, &mut out)?;
        Ok(out)
    }
}

/// The whole vector file at `path` (`.fvecs`, `.bvecs` or `.npy`) in memory, row-major: how
/// `bench` reads its base and query sets.
pub fn read_vectors(path: &Path) -> Result<Vectors<f32>, InputError> {
    let file = VectorFile::open(path)?;
    Ok(Vectors { dim: file.dim(), data: file.read_all()? })
}

fn f32_le(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// The `.npy` header: `\x93NUMPY`, version, header length, then a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }`. Returns the dimension
/// and where the data starts.
fn parse_npy_header(map: &[u8]) -> Result<(usize, usize), String> {
    let dict = npy_dict(map)?;
    if !(dict.contains("'descr': '<f4'") || dict.contains("\"descr\": \"<f4\"")) {
        return Err(format!("only little-endian float32 ('<f4') arrays are read, found {dict}"));
    }
    if dict.contains("True") {
        return Err("Fortran-order arrays are not read; save in C order".into());
    }
    let (_, dim) = npy_shape(&dict)?;
    let start = npy_data_start(map)?;
    if dim == 0 || dim > MAX_DIM {
        return Err(format!("dimension {dim}"));
    }
    Ok((dim, start))
}

fn npy_rows(map: &[u8]) -> Result<u64, String> {
    npy_shape(&npy_dict(map)?).map(|(rows, _)| rows as u64)
}

fn npy_data_start(map: &[u8]) -> Result<usize, String> {
    if map.len() < 10 || &map[..6] != b"\x93NUMPY" {
        return Err("no \\x93NUMPY magic".into());
    }
    let (len, at) = match map[6] {
        1 => (u16::from_le_bytes([map[8], map[9]]) as usize, 10),
        2 | 3 if map.len() >= 12 => {
            (u32::from_le_bytes(map[8..12].try_into().expect("4 bytes")) as usize, 12)
        }
        version => return Err(format!("unknown .npy version {version}")),
    };
    if at + len > map.len() {
        return Err("header longer than the file".into());
    }
    Ok(at + len)
}

fn npy_dict(map: &[u8]) -> Result<String, String> {
    let start = npy_data_start(map)?;
    let at = if map[6] == 1 { 10 } else { 12 };
    String::from_utf8(map[at..start].to_vec()).map_err(|_| "header is not text".to_owned())
}

/// `(rows, columns)` of a 2-d `'shape': (rows, columns)`.
fn npy_shape(dict: &str) -> Result<(usize, usize), String> {
    let after = dict.split_once("shape").ok_or("no shape")?.1;
    let open = after.find('(').ok_or("no shape tuple")?;
    let close = after[open..].find(')').ok_or("unterminated shape")? + open;
    let dims: Vec<usize> = after[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("shape component {s:?}")))
        .collect::<Result<_, _>>()?;
    match dims[..] {
        [rows, columns] => Ok((rows, columns)),
        _ => Err(format!("a 2-d array is needed, found shape {dims:?}")),
    }
}

/// Writes `rows` of `dim` f32s as a `.npy` file (for tests).
#[cfg(test)]
pub fn write_npy(path: &Path, dim: usize, data: &[f32]) -> std::io::Result<()> {
    let rows = data.len() / dim;
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fvecs(rows: &[Vec<f32>]) -> Vec<u8> {
        let mut out = Vec::new();
        for row in rows {
            out.extend_from_slice(&(row.len() as i32).to_le_bytes());
            for x in row {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    #[test]
    fn reads_every_format_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, 1.0, 2.0]).collect();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();

        let f = dir.path().join("a.fvecs");
        std::fs::write(&f, fvecs(&rows)).unwrap();
        let file = VectorFile::open(&f).unwrap();
        assert_eq!((file.rows(), file.dim()), (5, 3));
        assert_eq!(file.read_all().unwrap(), flat);

        let n = dir.path().join("a.npy");
        write_npy(&n, 3, &flat).unwrap();
        assert_eq!(VectorFile::open(&n).unwrap().read_all().unwrap(), flat);
        // What `bench` reads its base and queries with: an .npy set benchmarks as an .fvecs one.
        let expected = Vectors { dim: 3, data: flat.clone() };
        assert_eq!(read_vectors(&n).unwrap(), expected);
        assert_eq!(read_vectors(&f).unwrap(), expected);

        let b = dir.path().join("a.bvecs");
        let mut bytes = Vec::new();
        for row in &rows {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            bytes.extend(row.iter().map(|&x| x as u8));
        }
        std::fs::write(&b, &bytes).unwrap();
        assert_eq!(VectorFile::open(&b).unwrap().read_all().unwrap(), flat);

        // Cut short: refused at open, naming the whole rows and the leftover bytes.
        let whole = std::fs::read(&f).unwrap();
        std::fs::write(&f, &whole[..whole.len() - 5]).unwrap();
        let error = VectorFile::open(&f).unwrap_err().to_string();
        assert!(error.contains("truncated") && error.contains("4 whole rows"), "{error}");
        let whole = std::fs::read(&n).unwrap();
        std::fs::write(&n, &whole[..whole.len() - 4]).unwrap();
        assert!(VectorFile::open(&n).unwrap_err().to_string().contains("truncated"));

        // A row that declares another dimension: found when it is read.
        let mut mixed = fvecs(&rows[..2]);
        mixed.extend(fvecs(&[vec![1.0, 2.0, 3.0, 4.0]]));
        mixed.truncate(mixed.len() - 4); // same size as a 3-d row
        std::fs::write(&f, &mixed).unwrap();
        let file = VectorFile::open(&f).unwrap();
        let error = file.read_all().unwrap_err().to_string();
        assert!(error.contains("row 2 declares dimension 4"), "{error}");

        for (name, bytes) in
            [("e.fvecs", vec![]), ("z.fvecs", vec![0, 0, 0, 0]), ("x.txt", vec![1])]
        {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert!(VectorFile::open(&p).is_err(), "{name}");
        }
    }
}
