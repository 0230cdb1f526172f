//! The DC-only reduced decode (`safecity-jpeg`) against the full luma decode, on
//! real libjpeg(-turbo) files written by OpenCV (`cv2.imencode`, the `.venv`
//! of `scripts/python-peers.sh`) in every chroma layout, with and without
//! restart intervals, at sizes that are not multiples of 16; and on the scene
//! encoder's files. Each reduced byte must be its 8x8 block's mean (8x,
//! DC-only) or its 4x4 quadrant's mean (4x) in the full decode within +-1
//! gray level (complete blocks; a partial edge block
//! also averages the encoder's padding). The pictures stay within 40..215
//! gray levels, so that no IDCT output clips (a clipped block's mean is not
//! its DC: see `reduced.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec, corrupt, encode_jpeg};
use safecity_jpeg::{ScanError, decode_dc_luma, decode_quarter_luma};
use safecity_motion_gate::decode::{decode_for_work, decode_into};

/// Writes `<name>.jpg` files with cv2.imencode; see `files()` for the names.
const WRITER: &str = r#"
import sys, cv2, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(7)
def picture(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = []
    for c in range(3):
        p = 128 + 40 * np.sin(x / (23 + 7 * c)) * np.cos(y / (17 + 5 * c)) + 0.05 * (x - y)
        p[h // 4: h // 2, w // 5: w // 3] += 30 - 20 * c   # a hard-edged box
        p += rng.integers(-4, 5, size=(h, w))
        planes.append(np.clip(p, 40, 215))
    return np.dstack(planes).astype(np.uint8)
S = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
     "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
     "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}
for (w, h) in [(1280, 720), (1283, 725), (645, 363)]:
    img = picture(w, h)
    for s, factor in S.items():
        for rst in (0, 3):
            params = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor,
                      cv2.IMWRITE_JPEG_RST_INTERVAL, rst]
            ok, buf = cv2.imencode(".jpg", img, params)
            assert ok
            open(f"{out}/{w}x{h}-{s}-rst{rst}.jpg", "wb").write(buf.tobytes())
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    for rst in (0, 3):
        ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_RST_INTERVAL, rst])
        assert ok
        open(f"{out}/{w}x{h}-gray-rst{rst}.jpg", "wb").write(buf.tobytes())
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    open(f"{out}/{w}x{h}-progressive.jpg", "wb").write(buf.tobytes())
"#;

const SIZES: [(u32, u32); 3] = [(1280, 720), (1283, 725), (645, 363)];
const LAYOUTS: [&str; 4] = ["420", "422", "444", "gray"];

/// Writes the OpenCV files once per test binary run (into a fresh folder).
fn opencv_files() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "no {}: run scripts/python-peers.sh (opencv-python-headless)",
            python.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("reduced-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("folder");
        let output = Command::new(python)
            .args(["-c", WRITER])
            .arg(&dir)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "cv2.imencode failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .clone()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(opencv_files().join(name)).expect("OpenCV file")
}

/// Largest |reduced - block mean of the full luma decode| over complete
/// blocks, for the 8x (`scale` 8: DC-only) or the 4x (4: quadrants) decode.
fn worst_block_error_at(jpeg: &[u8], scale: usize) -> u32 {
    let mut full = Vec::new();
    let f = decode_into(jpeg, &mut full).expect("full decode");
    assert_eq!(f.channels, 1);
    let mut small = Vec::new();
    let r = match scale {
        8 => decode_dc_luma(jpeg, &mut small, 1, 1),
        _ => decode_quarter_luma(jpeg, &mut small, 1, 1),
    }
    .expect("reduced decode")
    .expect("in the reduced decoder's scope");
    let (w, h) = (f.width as usize, f.height as usize);
    assert_eq!((r.source_width, r.source_height), (f.width, f.height));
    assert_eq!(
        (r.width as usize, r.height as usize),
        (w.div_ceil(scale), h.div_ceil(scale))
    );
    assert_eq!(small.len(), w.div_ceil(scale) * h.div_ceil(scale));
    // Complete 8x8 blocks only (a partial one averages padding too).
    let (cw, ch) = (w / 8 * 8 / scale, h / 8 * 8 / scale);
    let mut worst = 0;
    for by in 0..ch {
        for bx in 0..cw {
            let mut sum = 0u32;
            for y in by * scale..(by + 1) * scale {
                sum += full[y * w + bx * scale..y * w + (bx + 1) * scale]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>();
            }
            let n = (scale * scale) as u32;
            let mean = (sum + n / 2) / n;
            let got = u32::from(small[by * r.width as usize + bx]);
            worst = worst.max(got.abs_diff(mean));
        }
    }
    worst
}

fn worst_block_error(jpeg: &[u8]) -> u32 {
    worst_block_error_at(jpeg, 8).max(worst_block_error_at(jpeg, 4))
}

#[test]
fn reduced_bytes_are_the_block_means_of_opencv_files() {
    for (w, h) in SIZES {
        for layout in LAYOUTS {
            for rst in [0, 3] {
                let name = format!("{w}x{h}-{layout}-rst{rst}.jpg");
                let worst = worst_block_error(&read(&name));
                assert!(worst <= 1, "{name}: a block is off by {worst}");
            }
        }
    }
}

#[test]
fn reduced_bytes_are_the_block_means_of_the_scene_encoder() {
    let mut spec = SceneSpec {
        width: 1280,
        height: 720,
        seed: 5,
        noise: 4,
        background: Background::Street,
        ..SceneSpec::default()
    };
    spec.objects.push(SceneObject {
        enter: 0,
        leave: None,
        x: 300.0,
        y: 200.0,
        vx: 0.0,
        vy: 0.0,
        width: 120,
        height: 200,
        color: [60, 90, 160],
        sprite: None,
        ..SceneObject::default()
    });
    let scene = Scene::new(spec.clone()).expect("scene");
    let jpeg = encode_jpeg(&scene.render(0), 80).expect("encode");
    let worst = worst_block_error(&jpeg);
    assert!(worst <= 1, "scene 1280x720: a block is off by {worst}");
    spec.width = 1000;
    spec.height = 563;
    let scene = Scene::new(spec).expect("scene");
    let jpeg = encode_jpeg(&scene.render(0), 90).expect("encode");
    let worst = worst_block_error(&jpeg);
    assert!(worst <= 1, "scene 1000x563: a block is off by {worst}");
}

#[test]
fn the_gate_reduces_frames_four_or_eight_times_its_work_size() {
    let mut pixels = Vec::new();
    let big = read("1280x720-420-rst0.jpg");
    let d = decode_for_work(&big, &mut pixels, 160, 90).expect("decode");
    assert_eq!(
        (
            d.width,
            d.height,
            d.channels,
            d.source_width,
            d.source_height
        ),
        (160, 90, 1, 1280, 720)
    );
    assert_eq!(pixels.len(), 160 * 90);
    // 1280 < 8 x 161 but >= 4 x 161: quadrant means.
    let d = decode_for_work(&big, &mut pixels, 161, 90).expect("decode");
    assert_eq!((d.width, d.height, d.source_width), (320, 180, 1280));
    // 1280 < 4 x 321: today's full luma decode.
    let d = decode_for_work(&big, &mut pixels, 321, 90).expect("decode");
    assert_eq!((d.width, d.height, d.source_width), (1280, 720, 1280));
    let small = read("645x363-422-rst3.jpg");
    let d = decode_for_work(&small, &mut pixels, 80, 45).expect("decode");
    assert_eq!((d.width, d.height, d.source_height), (81, 46, 363));
    // 4x the work size (not 8x): quadrant means.
    let d = decode_for_work(&small, &mut pixels, 160, 90).expect("decode");
    assert_eq!((d.width, d.height, d.source_width), (162, 91, 645));
    assert_eq!(pixels.len(), 162 * 91);
    // Under 4x: today's full luma decode.
    let d = decode_for_work(&small, &mut pixels, 162, 90).expect("decode");
    assert_eq!((d.width, d.height), (645, 363));
}

#[test]
fn progressive_frames_take_the_full_decode() {
    for (w, h) in SIZES {
        let jpeg = read(&format!("{w}x{h}-progressive.jpg"));
        let mut pixels = Vec::new();
        assert!(
            decode_dc_luma(&jpeg, &mut pixels, 1, 1)
                .expect("not an error")
                .is_none()
        );
        assert!(
            decode_quarter_luma(&jpeg, &mut pixels, 1, 1)
                .expect("not an error")
                .is_none()
        );
        let d = decode_for_work(&jpeg, &mut pixels, 1, 1).expect("fallback decodes");
        assert_eq!((d.width, d.height, d.channels), (w, h, 1));
        assert_eq!(pixels.len(), (w * h) as usize);
    }
}

/// Offset of the first entropy-coded byte (after the SOS segment).
fn scan_start(jpeg: &[u8]) -> usize {
    let sos = jpeg
        .windows(2)
        .position(|m| m == [0xFF, 0xDA])
        .expect("SOS");
    sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]))
}

/// Both reduced decodes; they must agree on whether the frame is damaged.
fn reduced(jpeg: &[u8]) -> Result<(), ScanError> {
    let eighth = decode_dc_luma(jpeg, &mut Vec::new(), 1, 1)
        .map(|r| assert!(r.is_some(), "in the reduced decoder's scope"));
    let quarter = decode_quarter_luma(jpeg, &mut Vec::new(), 1, 1)
        .map(|r| assert!(r.is_some(), "in the reduced decoder's scope"));
    assert_eq!(eighth.is_ok(), quarter.is_ok(), "{eighth:?} vs {quarter:?}");
    eighth
}

#[test]
fn truncated_and_damaged_frames_are_errors() {
    for name in [
        "1280x720-420-rst0.jpg",
        "1280x720-444-rst3.jpg",
        "645x363-gray-rst0.jpg",
    ] {
        let jpeg = read(name);
        reduced(&jpeg).expect("intact frame decodes");
        let start = scan_start(&jpeg);
        // Cut mid-scan (a dropped connection), and cut just before EOI.
        let cut = &jpeg[..start + (jpeg.len() - start) / 2];
        assert_eq!(reduced(cut), Err(ScanError::Truncated), "{name} cut");
        let no_end = &jpeg[..jpeg.len() - 2];
        assert!(reduced(no_end).is_err(), "{name} without EOI");
        // The scene helper's scrambling.
        let mut scrambled = jpeg.clone();
        corrupt(&mut scrambled, 7);
        assert!(
            decode_for_work(&scrambled, &mut Vec::new(), 1, 1).is_err(),
            "{name} scrambled"
        );
        // Bytes dropped from the middle of the entropy data: the scan no
        // longer ends where its blocks do.
        let mid = start + (jpeg.len() - start) / 3;
        let mut dropped = jpeg.clone();
        dropped.drain(mid..mid + 40);
        assert!(reduced(&dropped).is_err(), "{name} with 40 bytes dropped");
        // Garbage inserted likewise.
        let mut padded = jpeg.clone();
        padded.splice(mid..mid, [0x5Au8; 40]);
        assert!(reduced(&padded).is_err(), "{name} with 40 bytes inserted");
    }
}

#[test]
fn restart_markers_are_checked() {
    let jpeg = read("1280x720-420-rst3.jpg");
    reduced(&jpeg).expect("intact frame decodes");
    let start = scan_start(&jpeg);
    let rst = start
        + jpeg[start..]
            .windows(2)
            .position(|m| m[0] == 0xFF && (0xD0..=0xD7).contains(&m[1]))
            .expect("a restart marker");
    assert_eq!(jpeg[rst + 1], 0xD0, "the first restart marker is RST0");
    let mut wrong = jpeg.clone();
    wrong[rst + 1] = 0xD3;
    assert_eq!(
        reduced(&wrong),
        Err(ScanError::Restart {
            expected: 0,
            found: 0xD3
        })
    );
    let mut missing = jpeg.clone();
    missing.drain(rst..rst + 2);
    assert!(reduced(&missing).is_err(), "restart marker removed");
}
