//! Writers of the ANN benchmark formats, for tests that hand files to the tools: per row a
//! little-endian `i32` dimension, then its values (`f32` for `.fvecs`, `i32` for `.ivecs`).

use std::path::Path;

fn write_vecs<T: Copy>(path: &Path, rows: &[Vec<T>], le_bytes: impl Fn(T) -> [u8; 4]) {
    let mut bytes = Vec::new();
    for row in rows {
        let dim = i32::try_from(row.len()).expect("a row's length fits an i32");
        bytes.extend_from_slice(&dim.to_le_bytes());
        for &value in row {
            bytes.extend_from_slice(&le_bytes(value));
        }
    }
    std::fs::write(path, bytes).expect("write a vecs file");
}

/// Writes `rows` as an `.fvecs` file (panics on I/O errors: a test helper).
pub fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    write_vecs(path, rows, f32::to_le_bytes);
}

/// Writes `rows` as an `.ivecs` file (panics on I/O errors: a test helper).
pub fn write_ivecs(path: &Path, rows: &[Vec<i32>]) {
    write_vecs(path, rows, i32::to_le_bytes);
}
