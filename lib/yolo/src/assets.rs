//! Where `scripts/fetch-yolo-assets.sh` puts the YOLO assets (the official COCO
//! yolov4-tiny cfg, weights and names, the stock yolov4.cfg and two sample
//! photos), for tests, examples and benchmarks (feature `testkit`).
//!
//! The functions that return assets panic with the fix when one is missing:
//! they are meant for tests.

use std::path::PathBuf;

/// `$SAFECITY_YOLO_ASSETS`, or `target/yolo-assets` of the workspace.
pub fn dir() -> PathBuf {
    std::env::var_os("SAFECITY_YOLO_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/yolo-assets"
            ))
        })
}

/// [`dir`], after checking that the yolov4-tiny weights are there; panics with the fix otherwise.
pub fn checked_dir() -> PathBuf {
    path("yolov4-tiny.weights");
    dir()
}

/// The path of one asset; panics with the fix when it is missing.
pub fn path(name: &str) -> PathBuf {
    let path = dir().join(name);
    assert!(
        path.is_file(),
        "YOLO asset {} is missing: run scripts/fetch-yolo-assets.sh",
        path.display()
    );
    path
}

/// The bytes of one asset.
pub fn read(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One asset as text.
pub fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"))
}

/// The COCO class names, one per line of coco.names.
pub fn coco_names() -> Vec<String> {
    text("coco.names")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
