//! Motion gate throughput per core, against an OpenCV gate doing the same
//! steps on the same frames, in one run.
//!
//! ```text
//! scripts/python-peers.sh    # .venv with opencv-python-headless + numpy
//! flock /tmp/safecity-bench.lock env SAFECITY_BENCH_SECONDS=6 \
//!   cargo bench -p safecity-motion-gate --bench gate
//! ```
//!
//! For 640x360 and 1280x720 it renders a seeded street scene (sensor noise,
//! people/cars crossing), encodes the frames as JPEG (quality 80) into a temp
//! folder, then measures on one thread:
//! - **gate, decode excluded**: grayscale + area downscale to 160x90 + 3x3 box
//!   blur + lighting compensation + running-average background + |diff| > 25 +
//!   changed area + trigger, on full-resolution luma frames decoded beforehand;
//! - **gate, decode included**: the same plus JPEG decoding as the gate does
//!   it ([`safecity_motion_gate::decode::decode_for_work`]): the 4x4-quadrant
//!   reduced decode at 640x360 (4x the work size), the DC-only one at
//!   1280x720 (8x);
//! - **decode only** (likewise).
//!
//! The Python peer (`cv2.setNumThreads(1)`) does the same with
//! `cv2.imdecode(IMREAD_GRAYSCALE)` (libjpeg-turbo, also luma only: both
//! gates skip the chroma IDCT, upsampling and colour conversion),
//! `resize(INTER_AREA)`, `blur`, `mean`, `convertScaleAbs`,
//! `absdiff`, `threshold`, `countNonZero`, `accumulateWeighted`, on the same
//! files: the headline baseline. It also runs the gate on libjpeg-turbo's
//! own reduced decodes, `imdecode(IMREAD_REDUCED_GRAYSCALE_4)` at 640x360
//! and `_8` (DC-only) at 1280x720 (a second table). All report how many frames had motion, as a sanity
//! check that they did comparable work. A third table runs both gates again
//! with **motion masks on** (a tree and a shop sign drawn as registry
//! polygons, rasterised by the gate; the OpenCV peer gets the same mask as a
//! `mean(.., mask)` and a `bitwise_and` before `countNonZero`), against the
//! unmasked spec'd OpenCV gate and the masked one. `SAFECITY_BENCH_SECONDS` sets the
//! time per measurement (3, split over 3 interleaved rounds; the best round
//! counts: the machine may be shared).
//!
//! Quick mode (`SAFECITY_BENCH_QUICK=1`): 0.3 s per measurement in one
//! round. With `SAFECITY_BENCH_ROWS` set, the gate with decode against both
//! OpenCV gates (`IMREAD_GRAYSCALE` and the reduced decode) is also appended
//! as rows for `safecity bench`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use safecity_bench_rows::{Better, Row};
use safecity_cameras::Polygon;
use safecity_cctv_sim::scene::{Background, Scene, SceneObject, SceneSpec, encode_jpeg};
use safecity_motion_gate::decode::{decode_for_work, decode_into};
use safecity_motion_gate::{ImageView, MotionConfig, MotionDetector, Trigger, TriggerConfig};

const PYTHON_GATE: &str = r#"
import json, sys, time
import cv2, numpy as np
cv2.setNumThreads(1)
folder, seconds = sys.argv[1], float(sys.argv[2])
# Optional: the Rust gate's rasterised motion mask (160x90 bytes, 255 = counted).
keep = np.fromfile(sys.argv[3], np.uint8).reshape(90, 160) if len(sys.argv) > 3 else None
min_changed = int(np.ceil(0.005 * (160 * 90 if keep is None else cv2.countNonZero(keep))))
import glob
blobs = [open(p, 'rb').read() for p in sorted(glob.glob(folder + '/*.jpg'))]
arrays = [np.frombuffer(b, np.uint8) for b in blobs]

class Gate:
    def __init__(self):
        self.bg = None
        self.streak = 0
    def step(self, gray):
        small = cv2.resize(gray, (160, 90), interpolation=cv2.INTER_AREA)
        blur = cv2.blur(small, (3, 3))
        if self.bg is None:
            self.bg = blur.astype(np.float32)
            return False
        if keep is None:
            offset = cv2.mean(blur)[0] - cv2.mean(self.bg)[0]
        else:
            offset = cv2.mean(blur, keep)[0] - cv2.mean(self.bg, keep)[0]
        ref = cv2.convertScaleAbs(self.bg, alpha=1.0, beta=offset)
        diff = cv2.absdiff(blur, ref)
        _, mask = cv2.threshold(diff, 25, 255, cv2.THRESH_BINARY)
        if keep is not None:
            mask = cv2.bitwise_and(mask, keep)
        changed = cv2.countNonZero(mask)
        cv2.accumulateWeighted(blur, self.bg, 0.05)
        motion = changed >= min_changed  # 0.5% of the counted pixels
        self.streak = self.streak + 1 if motion else 0
        return motion

def run(step, items):
    n, start = 0, time.perf_counter()
    while True:
        for item in items:
            step(item)
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed

decoded = [cv2.imdecode(a, cv2.IMREAD_GRAYSCALE) for a in arrays]
g = Gate()
motion = sum(1 for d in decoded if g.step(d))
g = Gate()
excl = run(g.step, decoded)
g = Gate()
incl = run(lambda a: g.step(cv2.imdecode(a, cv2.IMREAD_GRAYSCALE)), arrays)
dec = run(lambda a: cv2.imdecode(a, cv2.IMREAD_GRAYSCALE), arrays)
result = {"excl": excl, "incl": incl, "decode": dec, "motion": motion,
          "frames": len(blobs), "opencv": cv2.__version__}
h, w = decoded[0].shape
R8 = None
if w >= 8 * 160 and h >= 8 * 90:
    # libjpeg-turbo's own DC-only decode (scale_denom 8): the fair peer of
    # the Rust gate's reduced decode.
    R8 = cv2.IMREAD_REDUCED_GRAYSCALE_8
elif w >= 4 * 160 and h >= 4 * 90:
    # libjpeg-turbo's 2x2 IDCT (scale_denom 4): the peer of the quadrant decode.
    R8 = cv2.IMREAD_REDUCED_GRAYSCALE_4
if R8 is not None:
    g = Gate()
    result["motion_r8"] = sum(1 for a in arrays if g.step(cv2.imdecode(a, R8)))
    g = Gate()
    result["incl_r8"] = run(lambda a: g.step(cv2.imdecode(a, R8)), arrays)
    result["decode_r8"] = run(lambda a: cv2.imdecode(a, R8), arrays)
print(json.dumps(result))
"#;

/// The gate's work size (`MotionConfig::default()`).
const WORK: (u32, u32) = (160, 90);

fn best(a: Rates, b: Rates) -> Rates {
    Rates {
        excl: a.excl.max(b.excl),
        incl: a.incl.max(b.incl),
        decode: a.decode.max(b.decode),
        motion: a.motion,
        reduced: match (a.reduced, b.reduced) {
            (Some(x), Some(y)) => Some(Reduced8 {
                incl: x.incl.max(y.incl),
                decode: x.decode.max(y.decode),
                motion: x.motion,
            }),
            (x, y) => x.or(y),
        },
        motion_full: a.motion_full,
    }
}

/// OpenCV's gate on `IMREAD_REDUCED_GRAYSCALE_4` / `_8`.
#[derive(Clone, Copy)]
struct Reduced8 {
    incl: f64,
    decode: f64,
    motion: usize,
}

struct Rates {
    /// Gate on full-resolution luma frames decoded beforehand.
    excl: f64,
    /// Gate with decoding (Rust: `decode_for_work`, reduced at 8x; OpenCV:
    /// `IMREAD_GRAYSCALE`).
    incl: f64,
    decode: f64,
    /// Motion frames of the gate with decoding.
    motion: usize,
    /// Motion frames of the gate on full-resolution frames.
    motion_full: usize,
    reduced: Option<Reduced8>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary
    // without it (or with --test / --list): nothing to check then.
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let seconds: f64 = safecity_bench_rows::setting("SAFECITY_BENCH_SECONDS", 3.0, 0.3);
    let rounds: usize = if safecity_bench_rows::quick() { 1 } else { 3 };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    let work = std::env::temp_dir().join(format!("safecity-gate-bench-{}", std::process::id()));
    println!(
        "Motion gate, one thread, best of {rounds} interleaved rounds ({seconds} s per measurement in all); work image 160x90.\n"
    );
    println!(
        "| frames | gate excl. decode (Rust) | OpenCV excl. decode | ratio | gate incl. decode (Rust) | OpenCV incl. decode | ratio | decode only Rust / OpenCV | motion frames Rust / OpenCV |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut reduced_rows = Vec::new();
    let mut masked_rows = Vec::new();
    let ratio = |a: f64, b: Option<f64>| b.map_or("n/a".to_owned(), |b| format!("{:.2}x", a / b));
    let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}/s"));
    let motion = |m: Option<usize>| m.map_or("n/a".to_owned(), |m| m.to_string());
    for (w, h, count) in [(640u32, 360u32, 120u64), (1280, 720, 60)] {
        let dir = work.join(format!("{w}x{h}"));
        let jpegs = write_scene(&dir, w, h, count);
        // The machine is shared: interleave the two gates over `rounds` rounds
        // and keep each one's best (least disturbed) rate.
        let per = seconds / rounds as f64;
        let masks = bench_masks();
        let keep = dir.join("mask-160x90.u8");
        std::fs::write(&keep, keep_bytes(&jpegs[0], &masks)).expect("mask file");
        let mut rust = measure_rust(&jpegs, per, &[]);
        let mut py = measure_python(&python, &dir, per, None);
        let mut rust_masked = measure_rust(&jpegs, per, &masks);
        let mut py_masked = measure_python(&python, &dir, per, Some(&keep));
        for _ in 1..rounds {
            rust = best(rust, measure_rust(&jpegs, per, &[]));
            if let Some(p) = py {
                py = measure_python(&python, &dir, per, None).map(|q| best(p, q));
            }
            rust_masked = best(rust_masked, measure_rust(&jpegs, per, &masks));
            if let Some(p) = py_masked {
                py_masked = measure_python(&python, &dir, per, Some(&keep)).map(|q| best(p, q));
            }
        }
        masked_rows.push(format!(
            "| {w}x{h} | {:.0}/s | {} | {} | {} | {} | {:.0}/s | {} | {} | {:.2}x | {} / {} / {} |",
            rust_masked.incl,
            fmt(py.as_ref().map(|p| p.incl)),
            ratio(rust_masked.incl, py.as_ref().map(|p| p.incl)),
            fmt(py_masked.as_ref().map(|p| p.incl)),
            ratio(rust_masked.incl, py_masked.as_ref().map(|p| p.incl)),
            rust_masked.excl,
            fmt(py.as_ref().map(|p| p.excl)),
            ratio(rust_masked.excl, py.as_ref().map(|p| p.excl)),
            rust_masked.incl / rust.incl,
            rust_masked.motion,
            motion(py_masked.as_ref().map(|p| p.motion)),
            rust.motion,
        ));
        println!(
            "| {w}x{h} | {:.0}/s | {} | {} | {:.0}/s | {} | {} | {:.0}/s / {} | {} / {} (full-res Rust: {}) |",
            rust.excl,
            fmt(py.as_ref().map(|p| p.excl)),
            ratio(rust.excl, py.as_ref().map(|p| p.excl)),
            rust.incl,
            fmt(py.as_ref().map(|p| p.incl)),
            ratio(rust.incl, py.as_ref().map(|p| p.incl)),
            rust.decode,
            fmt(py.as_ref().map(|p| p.decode)),
            rust.motion,
            motion(py.as_ref().map(|p| p.motion)),
            rust.motion_full,
        );
        emit_rows(w, h, &rust, py.as_ref());
        if let Some(r) = py.as_ref().and_then(|p| p.reduced) {
            reduced_rows.push(format!(
                "| {w}x{h} | {:.0}/s | {:.0}/s | {:.2}x | {:.0}/s / {:.0}/s | {} / {} |",
                rust.incl,
                r.incl,
                rust.incl / r.incl,
                rust.decode,
                r.decode,
                rust.motion,
                r.motion
            ));
        }
    }
    if !reduced_rows.is_empty() {
        println!(
            "\nOpenCV with libjpeg-turbo's own reduced decode (IMREAD_REDUCED_GRAYSCALE_4 at 640x360, _8 at 1280x720), same rounds:\n"
        );
        println!(
            "| frames | gate incl. decode (Rust) | OpenCV REDUCED incl. decode | ratio | decode only Rust / OpenCV REDUCED | motion frames Rust / OpenCV REDUCED |"
        );
        println!("|---|---|---|---|---|---|");
        for row in reduced_rows {
            println!("{row}");
        }
    }
    println!(
        "\nWith motion masks on (a tree and a shop sign, {:.0} % of the work image masked), same rounds; the baseline is the spec'd OpenCV gate above (no masks), and OpenCV with the same rasterised mask (`mean(.., mask)`, `bitwise_and` before `countNonZero`):\n",
        masked_share() * 100.0
    );
    println!(
        "| frames | gate incl. decode, masks (Rust) | OpenCV incl. decode | ratio | OpenCV incl. decode, masks | ratio | gate excl. decode, masks (Rust) | OpenCV excl. decode | ratio | masks on / off (Rust, incl.) | motion frames Rust masks / OpenCV masks / Rust no masks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in masked_rows {
        println!("{row}");
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// The gate with decode against both OpenCV gates, as rows for `safecity bench`.
fn emit_rows(w: u32, h: u32, rust: &Rates, py: Option<&Rates>) {
    let row = || {
        Row::new(
            "gate",
            format!("{w}x{h} JPEG -> motion, decode included, 1 thread"),
            rust.incl,
            "frames/s",
            Better::Higher,
        )
    };
    let grayscale = "OpenCV gate, cv2.imdecode(IMREAD_GRAYSCALE)";
    let reduced = if w >= 8 * WORK.0 {
        "OpenCV gate, libjpeg-turbo reduced decode (IMREAD_REDUCED_GRAYSCALE_8)"
    } else {
        "OpenCV gate, libjpeg-turbo reduced decode (IMREAD_REDUCED_GRAYSCALE_4)"
    };
    let missing = "no .venv with OpenCV: scripts/python-peers.sh";
    let rows = match py {
        Some(py) => [
            row().baseline(grayscale, py.incl),
            match py.reduced {
                Some(r) => row().baseline(reduced, r.incl),
                None => row().baseline_missing(reduced, "frames too small for it"),
            },
        ],
        None => [
            row().baseline_missing(grayscale, missing),
            row().baseline_missing(reduced, missing),
        ],
    };
    for row in rows {
        row.emit().expect("bench rows");
    }
}

/// The bench masks rasterised by the gate itself on a first frame: 160x90
/// bytes, 255 where pixels are counted, 0 where masked (the OpenCV peer's mask).
fn keep_bytes(jpeg: &[u8], masks: &[Polygon]) -> Vec<u8> {
    let mut gate = RustGate::new(masks);
    let mut pixels = Vec::new();
    let d = decode_for_work(jpeg, &mut pixels, WORK.0, WORK.1).expect("decode");
    gate.step(d.width, d.height, d.channels, &pixels);
    gate.detector
        .masked()
        .into_iter()
        .map(|masked| if masked { 0 } else { 255 })
        .collect()
}

/// The share of the work image the bench masks cover.
fn masked_share() -> f64 {
    let mut gate = RustGate::new(&bench_masks());
    let frame = vec![0u8; 640 * 360];
    gate.step(640, 360, 1, &frame);
    let masked = gate.detector.masked();
    masked.iter().filter(|&&m| m).count() as f64 / masked.len() as f64
}

fn write_scene(dir: &Path, w: u32, h: u32, count: u64) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).expect("bench folder");
    let s = w as f32 / 640.0;
    let mut spec = SceneSpec {
        width: w,
        height: h,
        seed: 42,
        noise: 4,
        background: Background::Street,
        ..SceneSpec::default()
    };
    // A pedestrian from frame 10, a car from frame 40: many frames move.
    spec.objects.push(SceneObject {
        enter: 10,
        leave: Some(70),
        x: -30.0 * s,
        y: 200.0 * s,
        vx: 6.0 * s,
        vy: 0.0,
        width: (32.0 * s) as u32,
        height: (80.0 * s) as u32,
        color: [40, 40, 60],
        sprite: None,
        ..SceneObject::default()
    });
    spec.objects.push(SceneObject {
        enter: 40,
        leave: Some(100),
        x: -120.0 * s,
        y: 260.0 * s,
        vx: 20.0 * s,
        vy: 0.0,
        width: (110.0 * s) as u32,
        height: (50.0 * s) as u32,
        color: [200, 30, 30],
        sprite: None,
        ..SceneObject::default()
    });
    let scene = Scene::new(spec).expect("scene");
    (0..count)
        .map(|n| {
            let jpeg = encode_jpeg(&scene.render(n), 80).expect("encode");
            std::fs::write(dir.join(format!("frame-{n:06}.jpg")), &jpeg).expect("write");
            jpeg
        })
        .collect()
}

struct RustGate {
    detector: MotionDetector,
    trigger: Trigger,
    at: Duration,
}

/// Two motion masks a camera operator would draw on the bench street: a
/// tree at the top left and a shop sign at the top right (about 19 % of the
/// frame), clear of the people and cars below.
fn bench_masks() -> Vec<Polygon> {
    [
        vec![[0.0, 0.0], [0.3, 0.0], [0.3, 0.45], [0.0, 0.45]],
        vec![[0.7, 0.0], [1.0, 0.0], [1.0, 0.35]],
    ]
    .into_iter()
    .map(|points| Polygon::new(points.into_iter().map(Into::into).collect()))
    .collect()
}

impl RustGate {
    fn new(masks: &[Polygon]) -> Self {
        RustGate {
            detector: MotionDetector::with_masks(MotionConfig::default(), masks.to_vec())
                .expect("config"),
            trigger: Trigger::new(TriggerConfig::default()).expect("config"),
            at: Duration::ZERO,
        }
    }

    fn step(&mut self, width: u32, height: u32, channels: u8, pixels: &[u8]) -> bool {
        let m = self
            .detector
            .process(ImageView {
                width,
                height,
                channels,
                data: pixels,
            })
            .expect("frame");
        self.at += Duration::from_millis(33);
        let _ = self.trigger.update(m.motion, self.at);
        m.motion
    }
}

fn rate<T>(items: &[T], seconds: f64, mut step: impl FnMut(&T)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for item in items {
            step(item);
            n += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= seconds {
            return n as f64 / elapsed;
        }
    }
}

fn measure_rust(jpegs: &[Vec<u8>], seconds: f64, masks: &[Polygon]) -> Rates {
    let decoded: Vec<(u32, u32, u8, Vec<u8>)> = jpegs
        .iter()
        .map(|j| {
            let mut px = Vec::new();
            let d = decode_into(j, &mut px).expect("decode");
            (d.width, d.height, d.channels, px)
        })
        .collect();
    let mut gate = RustGate::new(masks);
    let motion_full = decoded
        .iter()
        .filter(|(w, h, c, px)| gate.step(*w, *h, *c, px))
        .count();
    let mut gate = RustGate::new(masks);
    let mut pixels = Vec::new();
    let motion = jpegs
        .iter()
        .filter(|j| {
            let d = decode_for_work(j, &mut pixels, WORK.0, WORK.1).expect("decode");
            gate.step(d.width, d.height, d.channels, &pixels)
        })
        .count();
    let mut gate = RustGate::new(masks);
    let excl = rate(&decoded, seconds, |(w, h, c, px)| {
        std::hint::black_box(gate.step(*w, *h, *c, px));
    });
    let mut gate = RustGate::new(masks);
    let incl = rate(jpegs, seconds, |j| {
        let d = decode_for_work(j, &mut pixels, WORK.0, WORK.1).expect("decode");
        std::hint::black_box(gate.step(d.width, d.height, d.channels, &pixels));
    });
    let decode = rate(jpegs, seconds, |j| {
        std::hint::black_box(decode_for_work(j, &mut pixels, WORK.0, WORK.1).expect("decode"));
    });
    Rates {
        excl,
        incl,
        decode,
        motion,
        motion_full,
        reduced: None,
    }
}

fn measure_python(
    python: &PathBuf,
    dir: &Path,
    seconds: f64,
    keep: Option<&Path>,
) -> Option<Rates> {
    if !python.exists() {
        eprintln!(
            "no {} (run scripts/python-peers.sh): OpenCV columns are n/a",
            python.display()
        );
        return None;
    }
    let output = Command::new(python)
        .args(["-c", PYTHON_GATE])
        .arg(dir)
        .arg(seconds.to_string())
        .args(keep)
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .expect("python runs");
    if !output.status.success() {
        eprintln!(
            "the OpenCV gate failed (is opencv-python-headless installed? scripts/python-peers.sh):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> f64 {
        let key = format!("\"{name}\": ");
        let start = text.find(&key).expect("field") + key.len();
        let end = text[start..]
            .find([',', '}'])
            .map_or(text.len(), |e| start + e);
        text[start..end].trim().parse().expect("number")
    };
    if let Some(start) = text.find("\"opencv\": ") {
        let version = text[start + 10..].split([',', '}']).next().unwrap_or("");
        eprintln!("OpenCV {}", version.trim());
    }
    Some(Rates {
        excl: field("excl"),
        incl: field("incl"),
        decode: field("decode"),
        motion: field("motion") as usize,
        motion_full: field("motion") as usize,
        reduced: text.contains("\"incl_r8\"").then(|| Reduced8 {
            incl: field("incl_r8"),
            decode: field("decode_r8"),
            motion: field("motion_r8") as usize,
        }),
    })
}
