//! Vector files for bulk loads and queries, read through a memory map without loading them
//! whole: `.fvecs` (per row: i32 dimension, then f32s), `.bvecs` (i32 dimension, then u8s),
//! `.npy` (a 2-d little-endian float32, uint8 or int8 array in C order; the header is read by
//! the `npyz` crate), and big-ann-benchmarks' `.fbin` / `.u8bin` / `.i8bin` (u32 rows, u32
//! dimension, then the rows), and ann-benchmarks' `.hdf5` files (with the `hdf5` feature, which
//! needs the HDF5 C library: `train` for bases, `test` for queries, or `FILE.hdf5#DATASET`; read
//! into memory). Every command reads vectors through this module.
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
    #[error(
        "{path}: unknown format (expected a .fvecs, .bvecs, .npy, .fbin, .u8bin or .i8bin file)"
    )]
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
    #[error("{path}: {reason}")]
    Hdf5 { path: PathBuf, reason: String },
}

/// Largest dimension accepted; anything larger is a corrupt header, not a vector.
const MAX_DIM: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Fvecs,
    Bvecs,
    /// A `.npy` array of this element type.
    Npy(Element),
    /// A big-ann-benchmarks binary of this element type.
    Bin(Element),
}

/// How one vector component is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    U8,
    I8,
}

impl Element {
    fn width(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::U8 | Element::I8 => 1,
        }
    }

    /// Appends `bytes` (whole elements) as f32s.
    fn extend(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Element::F32 => out.extend(bytes.chunks_exact(4).map(f32_le)),
            Element::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
            Element::I8 => out.extend(bytes.iter().map(|&b| f32::from(b as i8))),
        }
    }
}

/// A file's bytes: mapped, or read into memory (what an HDF5 dataset decodes to).
#[derive(Debug)]
enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

/// Which dataset of an ann-benchmarks `.hdf5` file a command reads by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `train`.
    Base,
    /// `test`.
    Queries,
    /// `neighbors`.
    Truth,
}

/// `path` split into an `.hdf5` / `.h5` file and the dataset after a `#`, if it names one.
fn hdf5_parts(path: &Path, role: Role) -> Option<(PathBuf, String)> {
    let text = path.to_str()?;
    let is_hdf5 = |file: &str| file.ends_with(".hdf5") || file.ends_with(".h5");
    // A `#` names a dataset only after an .hdf5 file name (a directory may hold a `#` too).
    let (file, dataset) = match text.rsplit_once('#') {
        Some((file, dataset)) if is_hdf5(file) => (file, Some(dataset)),
        _ if is_hdf5(text) => (text, None),
        _ => return None,
    };
    let default = match role {
        Role::Base => "train",
        Role::Queries => "test",
        Role::Truth => "neighbors",
    };
    Some((PathBuf::from(file), dataset.unwrap_or(default).to_owned()))
}

/// The f32 rows of dataset `dataset` of an HDF5 file: `(dimension, little-endian bytes)`.
#[cfg(feature = "hdf5")]
fn read_hdf5(file: &Path, dataset: &str) -> Result<(usize, Vec<u8>), String> {
    let opened = hdf5::File::open(file).map_err(|e| e.to_string())?;
    let data = opened.dataset(dataset).map_err(|e| format!("dataset {dataset}: {e}"))?;
    let dim = match data.shape()[..] {
        [_, dim] => dim,
        ref shape => {
            return Err(format!("dataset {dataset}: a 2-d array is needed, found {shape:?}"));
        }
    };
    // HDF5 converts any stored numeric type to f32 as it reads.
    let values = data.read_raw::<f32>().map_err(|e| format!("dataset {dataset}: {e}"))?;
    Ok((dim, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

#[cfg(not(feature = "hdf5"))]
fn read_hdf5(_: &Path, _: &str) -> Result<(usize, Vec<u8>), String> {
    Err("this build reads .hdf5 files with the `hdf5` feature (it needs the HDF5 C library, \
         e.g. Debian's libhdf5-dev): cargo run -p xtask --release --features hdf5 -- ..."
        .into())
}

/// The ground-truth ids of dataset `dataset` (ann-benchmarks: `neighbors`) of an HDF5 file.
#[cfg(feature = "hdf5")]
pub fn read_hdf5_ids(file: &Path, dataset: &str) -> Result<(usize, Vec<i32>), String> {
    let opened = hdf5::File::open(file).map_err(|e| e.to_string())?;
    let data = opened.dataset(dataset).map_err(|e| format!("dataset {dataset}: {e}"))?;
    let k = match data.shape()[..] {
        [_, k] => k,
        ref shape => {
            return Err(format!("dataset {dataset}: a 2-d array is needed, found {shape:?}"));
        }
    };
    Ok((k, data.read_raw::<i32>().map_err(|e| format!("dataset {dataset}: {e}"))?))
}

#[cfg(not(feature = "hdf5"))]
pub fn read_hdf5_ids(file: &Path, dataset: &str) -> Result<(usize, Vec<i32>), String> {
    read_hdf5(file, dataset).map(|_| unreachable!("read_hdf5 refuses without the feature"))
}

/// An open vector file.
#[derive(Debug)]
pub struct VectorFile {
    path: PathBuf,
    map: Bytes,
    format: Format,
    dim: usize,
    rows: usize,
    /// Where row 0 starts, and each row's length in bytes.
    start: usize,
    row_bytes: usize,
}

impl VectorFile {
    /// A file of base vectors (an `.hdf5` file's `train` dataset by default).
    pub fn open(path: &Path) -> Result<VectorFile, InputError> {
        Self::open_as(path, Role::Base)
    }

    /// A file of queries (an `.hdf5` file's `test` dataset by default).
    pub fn open_queries(path: &Path) -> Result<VectorFile, InputError> {
        Self::open_as(path, Role::Queries)
    }

    fn open_as(path: &Path, role: Role) -> Result<VectorFile, InputError> {
        if let Some((file, dataset)) = hdf5_parts(path, role) {
            let (dim, bytes) = read_hdf5(&file, &dataset)
                .map_err(|reason| InputError::Hdf5 { path: path.to_owned(), reason })?;
            if dim == 0 || dim > MAX_DIM || bytes.is_empty() {
                return Err(InputError::Empty { path: path.to_owned() });
            }
            let rows = bytes.len() / (4 * dim);
            return Ok(VectorFile {
                path: path.to_owned(),
                map: Bytes::Owned(bytes),
                format: Format::Bin(Element::F32),
                dim,
                rows,
                start: 0,
                row_bytes: 4 * dim,
            });
        }
        let io = |source| InputError::Io { path: path.to_owned(), source };
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("fvecs") => Format::Fvecs,
            Some("bvecs") => Format::Bvecs,
            // The element type comes from the header.
            Some("npy") => Format::Npy(Element::F32),
            Some("fbin") => Format::Bin(Element::F32),
            Some("u8bin") => Format::Bin(Element::U8),
            Some("i8bin") => Format::Bin(Element::I8),
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
        let mut format = format;
        let mut declared_rows = None;
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
            Format::Npy(_) => {
                let header = parse_npy_header(&map).map_err(bad)?;
                format = Format::Npy(header.element);
                declared_rows = Some(header.rows);
                (header.dim, header.start, header.element.width() * header.dim)
            }
            Format::Bin(element) => {
                if map.len() < 8 {
                    return Err(bad(format!("{} bytes, not even the 8-byte header", map.len())));
                }
                let word = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4"));
                let (rows, dim) = (u64::from(word(0)), word(4) as usize);
                if dim == 0 || dim > MAX_DIM {
                    return Err(bad(format!("dimension {dim}")));
                }
                declared_rows = Some(rows);
                (dim, 8, element.width() * dim)
            }
        };
        let body = (map.len() - start) as u64;
        let rows = body / row_bytes as u64;
        let left = body % row_bytes as u64;
        if let Some(declared) = declared_rows {
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
            map: Bytes::Map(map),
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
        if let Bytes::Map(map) = &self.map {
            // SAFETY: a read-only shared map of a file nobody writes (see `open`):
            // MADV_DONTNEED unmaps its pages from this process, and a later read maps the same
            // file pages again.
            let released = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            // Only a hint: a refusal leaves the pages resident, nothing worse.
            drop(released);
        }
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
                Format::Npy(element) | Format::Bin(element) => element.extend(bytes, out),
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

/// [`read_vectors`] for a query file (an `.hdf5` file's `test` dataset by default).
pub fn read_queries(path: &Path) -> Result<Vectors<f32>, InputError> {
    let file = VectorFile::open_queries(path)?;
    Ok(Vectors { dim: file.dim(), data: file.read_all()? })
}

fn f32_le(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// What a `.npy` header says.
struct NpyHeader {
    element: Element,
    rows: u64,
    dim: usize,
    /// Where the data starts.
    start: usize,
}

/// Reads ground truth: `.ibin` (big-ann-benchmarks: u32 queries, u32 k, the ids, then
/// optionally as many f32 distances) by its extension, anything else as `.ivecs`.
pub fn read_ground_truth(path: &Path) -> Result<Vectors<i32>, crate::vecs::VecsError> {
    // ann-benchmarks: the `neighbors` dataset of the same .hdf5 file (or `FILE.hdf5#NAME`).
    if let Some((file, dataset)) = hdf5_parts(path, Role::Truth) {
        let (k, data) = read_hdf5_ids(&file, &dataset)
            .map_err(|reason| crate::vecs::VecsError::Hdf5 { path: path.to_owned(), reason })?;
        if k == 0 || data.is_empty() {
            return Err(crate::vecs::VecsError::Empty { path: path.to_owned() });
        }
        return Ok(Vectors { dim: k, data });
    }
    if path.extension().is_none_or(|e| e != "ibin") {
        return crate::vecs::read_ivecs(path);
    }
    let bytes = std::fs::read(path)
        .map_err(|source| crate::vecs::VecsError::Io { path: path.to_owned(), source })?;
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if bytes.len() < 8 {
        return Err(crate::vecs::VecsError::Empty { path: path.to_owned() });
    }
    let (rows, k) = (u64::from(word(0)), u64::from(word(4)));
    let ids = rows.checked_mul(k).and_then(|n| n.checked_mul(4));
    let body = bytes.len() as u64 - 8;
    // The ids alone, or the ids then their distances.
    let Some(ids_bytes) = ids.filter(|&n| n > 0 && (body == n || n.checked_mul(2) == Some(body)))
    else {
        return Err(crate::vecs::VecsError::BadBinary {
            path: path.to_owned(),
            size: bytes.len(),
            rows,
            k,
        });
    };
    if k > MAX_DIM as u64 {
        return Err(crate::vecs::VecsError::BadDimension {
            path: path.to_owned(),
            row: 0,
            dim: k as i32,
        });
    }
    let data = bytes[8..8 + ids_bytes as usize]
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok(Vectors { dim: k as usize, data })
}

/// The `.npy` header, read by `npyz` (magic, version, the header dict with its dtype, order
/// and shape). A 2-d C-order array of little-endian float32, uint8 or int8 is read.
fn parse_npy_header(map: &[u8]) -> Result<NpyHeader, String> {
    let file = npyz::NpyFile::new(map).map_err(|e| format!("not a .npy file: {e}"))?;
    let header = file.header().clone();
    if header.order() == npyz::Order::Fortran {
        return Err("Fortran-order arrays are not read; save in C order".into());
    }
    let element = match header.dtype() {
        npyz::DType::Plain(ty) => match (ty.type_char(), ty.size_field(), ty.endianness()) {
            (npyz::TypeChar::Float, 4, npyz::Endianness::Little) => Element::F32,
            (npyz::TypeChar::Uint, 1, _) => Element::U8,
            (npyz::TypeChar::Int, 1, _) => Element::I8,
            _ => {
                return Err(format!(
                    "element type {ty}: float32 (<f4), uint8 or int8 arrays are read"
                ));
            }
        },
        other => {
            return Err(format!("element type {}: a plain numeric array is needed", other.descr()));
        }
    };
    let (rows, dim) = match header.shape() {
        &[rows, dim] => (rows, usize::try_from(dim).map_err(|_| "dimension too large")?),
        shape => return Err(format!("a 2-d array is needed, found shape {shape:?}")),
    };
    if dim == 0 || dim > MAX_DIM {
        return Err(format!("dimension {dim}"));
    }
    // The reader stops at the first data byte.
    let start = map.len() - file.into_inner().len();
    Ok(NpyHeader { element, rows, dim, start })
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

        // big-ann-benchmarks binaries: u32 rows, u32 dimension, then the rows.
        let bin = |name: &str, rows: u32, dim: u32, body: &[u8]| {
            let mut bytes = rows.to_le_bytes().to_vec();
            bytes.extend_from_slice(&dim.to_le_bytes());
            bytes.extend_from_slice(body);
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let floats: Vec<u8> = flat.iter().flat_map(|x| x.to_le_bytes()).collect();
        let fbin = bin("a.fbin", 5, 3, &floats);
        assert_eq!(read_vectors(&fbin).unwrap(), expected);
        let small: Vec<u8> = flat.iter().map(|&x| x as u8).collect();
        assert_eq!(read_vectors(&bin("a.u8bin", 5, 3, &small)).unwrap(), expected);
        let signed: Vec<u8> = [-3i8, 0, 127].iter().map(|&x| x as u8).collect();
        let i8bin = bin("a.i8bin", 1, 3, &signed);
        assert_eq!(read_vectors(&i8bin).unwrap().data, [-3.0, 0.0, 127.0]);
        let short = bin("s.fbin", 6, 3, &floats);
        assert!(VectorFile::open(&short).unwrap_err().to_string().contains("truncated"));

        // .npy headers are read by npyz: uint8 arrays too; other types and orders are refused.
        let npy = |name: &str, header: &str, body: &[u8]| {
            let mut dict = header.to_owned();
            while !(10 + dict.len() + 1).is_multiple_of(64) {
                dict.push(' ');
            }
            dict.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            bytes.extend_from_slice(dict.as_bytes());
            bytes.extend_from_slice(body);
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let u8npy =
            npy("u.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3), }", &small);
        assert_eq!(read_vectors(&u8npy).unwrap(), expected);
        for (name, header) in [
            ("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 3), }"),
            ("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (5, 3), }"),
            ("fo.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (5, 3), }"),
            ("1d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (15,), }"),
            ("bad.npy", "{'descr': '<f4', 'shape': (5, 3 }"),
        ] {
            let path = npy(name, header, &floats);
            let error = VectorFile::open(&path).unwrap_err().to_string();
            assert!(error.contains("bad header"), "{name}: {error}");
        }

        for (name, bytes) in
            [("e.fvecs", vec![]), ("z.fvecs", vec![0, 0, 0, 0]), ("x.txt", vec![1])]
        {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert!(VectorFile::open(&p).is_err(), "{name}");
        }
    }

    /// An ann-benchmarks file: `train` as base, `test` as queries, `neighbors` as ground truth,
    /// any dataset by `#name`; a 1-d dataset and a missing one are named in the error.
    /// big-ann-benchmarks ground truth: ids alone or ids then distances; other sizes refused.
    #[test]
    fn ground_truth_reads_ivecs_and_ibin() {
        let dir = tempfile::tempdir().unwrap();
        let ids = Vectors { dim: 2, data: vec![4, 1, 0, 3, 2, 2] };
        let ivecs = dir.path().join("gt.ivecs");
        crate::vecs::write_ivecs(&ivecs, &ids).unwrap();
        assert_eq!(read_ground_truth(&ivecs).unwrap(), ids);
        let mut bytes = 3u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend(ids.data.iter().flat_map(|i| i.to_le_bytes()));
        let ibin = dir.path().join("gt.ibin");
        std::fs::write(&ibin, &bytes).unwrap();
        assert_eq!(read_ground_truth(&ibin).unwrap(), ids);
        bytes.extend(ids.data.iter().flat_map(|&i| (i as f32).to_le_bytes()));
        std::fs::write(&ibin, &bytes).unwrap();
        assert_eq!(read_ground_truth(&ibin).unwrap(), ids, "with distances");
        bytes.pop();
        std::fs::write(&ibin, &bytes).unwrap();
        let error = read_ground_truth(&ibin).unwrap_err().to_string();
        assert!(error.contains("do not hold the 3 x 2 ids"), "{error}");
    }

    #[cfg(feature = "hdf5")]
    #[test]
    fn reads_ann_benchmarks_hdf5_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.hdf5");
        let train: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let test: Vec<f64> = vec![0.5, 1.5, 2.5, 3.5]; // HDF5 converts doubles as it reads
        let neighbors: Vec<i32> = vec![0, 1, 2, 1, 0, 2];
        {
            let file = hdf5::File::create(&path).unwrap();
            let put = |name: &str, shape: (usize, usize)| {
                file.new_dataset::<f32>().shape(shape).create(name).unwrap()
            };
            put("train", (4, 3)).write_raw(&train).unwrap();
            file.new_dataset::<f64>()
                .shape((2, 2))
                .create("test2")
                .unwrap()
                .write_raw(&test)
                .unwrap();
            put("test", (1, 3)).write_raw(&train[..3]).unwrap();
            file.new_dataset::<i32>()
                .shape((2, 3))
                .create("neighbors")
                .unwrap()
                .write_raw(&neighbors)
                .unwrap();
            file.new_dataset::<f32>()
                .shape(4)
                .create("flat")
                .unwrap()
                .write_raw(&[1.0f32; 4])
                .unwrap();
        }
        assert_eq!(read_vectors(&path).unwrap(), Vectors { dim: 3, data: train.clone() });
        assert_eq!(read_queries(&path).unwrap().data, &train[..3]);
        let named = dir.path().join("set.hdf5#test2");
        assert_eq!(read_vectors(&named).unwrap().data, [0.5, 1.5, 2.5, 3.5]);
        let truth = read_ground_truth(&path).unwrap();
        assert_eq!(truth, Vectors { dim: 3, data: neighbors });
        for (name, expected) in [("set.hdf5#flat", "2-d"), ("set.hdf5#missing", "missing")] {
            let error = VectorFile::open(&dir.path().join(name)).unwrap_err().to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
    }

    #[cfg(not(feature = "hdf5"))]
    #[test]
    fn hdf5_without_the_feature_says_how_to_get_it() {
        let error = VectorFile::open(Path::new("glove-25-angular.hdf5")).unwrap_err().to_string();
        assert!(error.contains("--features hdf5") && error.contains("libhdf5"), "{error}");
    }
}
