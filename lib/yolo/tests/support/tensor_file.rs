//! Raw little-endian f32 tensors with a JSON shape sidecar, the exchange
//! format of the oracle scripts (`tests/oracle/oracle_io.py`).

use std::path::Path;

/// Writes DATA (row-major, SHAPE) to PATH (`.f32`) and the `.json` sidecar.
pub(crate) fn write(path: &Path, shape: &[usize], data: &[f32]) {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape {shape:?} vs {} floats",
        data.len()
    );
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    let sidecar = serde_json::json!({ "shape": shape });
    std::fs::write(path.with_extension("json"), sidecar.to_string())
        .unwrap_or_else(|e| panic!("writing the sidecar of {}: {e}", path.display()));
}

/// Reads a tensor written by `write` or the Python side: (shape, data).
pub(crate) fn read(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let sidecar = std::fs::read(path.with_extension("json"))
        .unwrap_or_else(|e| panic!("reading the sidecar of {}: {e}", path.display()));
    let sidecar: serde_json::Value = serde_json::from_slice(&sidecar).expect("sidecar is JSON");
    let shape: Vec<usize> =
        serde_json::from_value(sidecar["shape"].clone()).expect("sidecar has a shape");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        bytes.len(),
        4 * shape.iter().product::<usize>(),
        "{}: size vs shape {shape:?}",
        path.display()
    );
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (shape, data)
}
