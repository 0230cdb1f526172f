//! The GPU check and benchmark that `scripts/gpu-bench.sh` runs on a GPU
//! machine (built there or by `scripts/build-cuda.sh` with `--features cuda`
//! or `cuda,cudnn`).
//!
//! One file: a single-purpose program shipped as one binary to the GPU
//! machine; its sections follow the script's order (checks, then timings).
//!
//! 1. **Checks** against the CPU (the fused CPU kernels, which the oracle
//!    tests hold to OpenCV):
//!    - f32 head logits of the official yolov4-tiny @416 and of full YOLOv4
//!      @608 with deterministic random weights, on the two sample photos:
//!      `max|device - cpu| / max|cpu|` per head at most 1e-3;
//!    - detections of yolov4-tiny on the sample photos in f32 and f16: the
//!      same classes, every box edge within 1% of the image size.
//! 2. **Throughput** of yolov4 @608, yolov4 @416 and yolov4-tiny @416 at
//!    batch 1, 8 and 32, f32 and f16: images/s of the forward pass alone
//!    (input already on the device, synchronized) and with the decoding and
//!    NMS (`Detector::detect_input`: the cells that pass the threshold are
//!    copied to the host; how many per image is a column), and the peak GPU
//!    memory `nvidia-smi` reports while they run. Random weights make many
//!    cells pass the usual 0.25 and NMS quadratic in them, so the yolov4 rows
//!    decode at [`RANDOM_DECODE_THRESHOLD`], where about as few cells pass as
//!    with trained weights.
//!
//! It prints one markdown table and writes it to `--out FILE`.
//!
//! `--cpu-dry-run` runs the same code on the CPU, with the device side on
//! the portable kernels (candle's tensor ops: exactly what a CUDA device
//! runs), batch 1 and one timed pass: it proves the binary and the script
//! end to end without a GPU.
//!
//! ```text
//! gpu_check [--device cuda|cuda:N|cpu] [--cpu-dry-run] [--out FILE]
//!           [--models v4@608,v4@416,tiny@416] [--batches 1,8,32]
//!           [--dtypes f32,f16] [--seconds S] [--random-threshold T]
//!           [--skip-checks] [--skip-bench]
//! ```
//!
//! Needs the assets of `scripts/fetch-yolo-assets.sh` (`$SAFECITY_YOLO_ASSETS`
//! or `target/yolo-assets`). Exits 1 when a check fails (after the benchmark).

#[path = "../tests/support/mod.rs"]
mod support;

use std::error::Error;
use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use safecity_yolo::darknet::cfg::NetConfig;
use safecity_yolo::detector::{Detector, DetectorOptions, ObjectDetection, gather_cells};
use safecity_yolo::device::{DevicePreference, select};
use safecity_yolo::kernels::KernelChoice;
use safecity_yolo::model::{Darknet, LoadOptions};
use safecity_yolo::preprocess::{self, ImageLimits, Placement, Resize};
use support::{assets, cfg_text, random_weights};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Largest allowed `max|device - cpu| / max|cpu|` of a head, f32.
const MAX_HEAD_REL: f32 = 1e-3;
/// Largest allowed difference of a box edge, as a fraction of the image size.
const MAX_EDGE: f32 = 0.01;
/// The sample photos, in batch order.
const PHOTOS: [&str; 2] = ["bus.jpg", "zidane.jpg"];
/// Seed of the random full-YOLOv4 weights.
const V4_SEED: u64 = 4;
/// Confidence threshold of the "+ decode" measurement of the random-weight
/// yolov4 rows (yolov4-tiny, with trained weights, uses Darknet's 0.25).
const RANDOM_DECODE_THRESHOLD: f32 = 0.7;

/// One benchmarked network.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    V4(usize),
    Tiny(usize),
}

impl Net {
    fn parse(text: &str) -> Result<Net> {
        let (name, size) = text
            .split_once('@')
            .ok_or_else(|| format!("model `{text}`: expected v4@SIZE or tiny@SIZE"))?;
        let size: usize = size.parse()?;
        match name {
            "v4" | "yolov4" => Ok(Net::V4(size)),
            "tiny" | "yolov4-tiny" => Ok(Net::Tiny(size)),
            _ => Err(format!("model `{text}`: expected v4@SIZE or tiny@SIZE").into()),
        }
    }

    fn label(self) -> String {
        match self {
            Net::V4(size) => format!("yolov4 @{size}"),
            Net::Tiny(size) => format!("yolov4-tiny @{size}"),
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    device: DevicePreference,
    dry_run: bool,
    out: Option<String>,
    models: Vec<Net>,
    batches: Vec<usize>,
    dtypes: Vec<DType>,
    seconds: f64,
    checks: bool,
    bench: bool,
    random_threshold: f32,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut args = Args {
            device: DevicePreference::Cuda(0),
            dry_run: false,
            out: None,
            models: vec![Net::V4(608), Net::V4(416), Net::Tiny(416)],
            batches: vec![1, 8, 32],
            dtypes: vec![DType::F32, DType::F16],
            seconds: 1.0,
            checks: true,
            bench: true,
            random_threshold: RANDOM_DECODE_THRESHOLD,
        };
        let (mut batches, mut seconds) = (None, None);
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--device" => args.device = value()?.parse()?,
                "--cpu-dry-run" => args.dry_run = true,
                "--out" => args.out = Some(value()?),
                "--models" => {
                    args.models = value()?.split(',').map(Net::parse).collect::<Result<_>>()?;
                }
                "--batches" => {
                    batches = Some(
                        value()?
                            .split(',')
                            .map(str::parse)
                            .collect::<std::result::Result<Vec<usize>, _>>()?,
                    );
                }
                "--dtypes" => {
                    args.dtypes = value()?
                        .split(',')
                        .map(|d| match d {
                            "f32" => Ok(DType::F32),
                            "f16" => Ok(DType::F16),
                            "bf16" => Ok(DType::BF16),
                            _ => Err(format!("dtype `{d}`: expected f32, f16 or bf16")),
                        })
                        .collect::<std::result::Result<_, _>>()?;
                }
                "--seconds" => seconds = Some(value()?.parse()?),
                "--random-threshold" => args.random_threshold = value()?.parse()?,
                "--skip-checks" => args.checks = false,
                "--skip-bench" => args.bench = false,
                "-h" | "--help" => {
                    println!(
                        "gpu_check [--device cuda|cuda:N|cpu] [--cpu-dry-run] [--out FILE] \
                         [--models v4@608,v4@416,tiny@416] [--batches 1,8,32] \
                         [--dtypes f32,f16] [--seconds S] [--random-threshold T] \
                         [--skip-checks] [--skip-bench]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if args.dry_run {
            args.device = DevicePreference::Cpu;
        }
        args.batches = batches.unwrap_or(if args.dry_run { vec![1] } else { args.batches });
        args.seconds = seconds.unwrap_or(if args.dry_run { 0.0 } else { args.seconds });
        Ok(args)
    }
}

/// How the device side runs, and how long it measures.
struct Setup {
    device: Device,
    kernels: KernelChoice,
    /// Untimed passes before each measurement (cuDNN picks its algorithms,
    /// the allocator warms up).
    warmup: usize,
    min_iterations: usize,
    seconds: f64,
    /// `cudnn` or `candle im2col`: how convolutions run on the device.
    conv: &'static str,
    /// Confidence threshold of the decode of random-weight networks.
    random_threshold: f32,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("gpu_check: a check FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("gpu_check: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let args = Args::parse()?;
    let device = select(args.device)?;
    let on_cpu = device.is_cpu();
    let setup = Setup {
        kernels: if on_cpu {
            KernelChoice::Portable
        } else {
            KernelChoice::Native
        },
        warmup: if args.dry_run { 0 } else { 2 },
        min_iterations: if args.dry_run { 1 } else { 3 },
        seconds: args.seconds,
        random_threshold: args.random_threshold,
        conv: if on_cpu {
            "candle (CPU)"
        } else if cfg!(feature = "cudnn") {
            "cudnn"
        } else {
            "candle im2col"
        },
        device,
    };
    println!(
        "gpu_check: device {:?}, kernels {:?}, conv {}{}",
        setup.device,
        setup.kernels,
        setup.conv,
        if args.dry_run {
            " (CPU dry run: batch 1, one timed pass)"
        } else {
            ""
        }
    );
    let memory_base = gpu_memory_mib();
    println!(
        "gpu_check: GPU memory in use before loading: {}",
        memory_base.map_or("n/a".into(), |m| format!("{m} MiB"))
    );

    let tiny_cfg = assets::text("yolov4-tiny.cfg");
    let tiny_weights = assets::read("yolov4-tiny.weights");
    let v4_cfg = assets::text("yolov4.cfg");
    let started = Instant::now();
    let v4_weights = random_weights::generate(&v4_cfg, V4_SEED);
    println!(
        "gpu_check: random yolov4 weights ({} MB) in {:.1} s",
        v4_weights.len() / 1_000_000,
        started.elapsed().as_secs_f64()
    );
    let photos = PHOTOS
        .iter()
        .map(|name| preprocess::decode(&assets::read(name), &ImageLimits::default()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let names = assets::coco_names();

    let mut passed = true;
    if args.checks {
        let started = Instant::now();
        passed &= check_heads(
            &setup,
            "yolov4-tiny @416",
            &tiny_cfg,
            &tiny_weights,
            &photos,
        )?;
        let v4_608 = cfg_text::with_input_size(&v4_cfg, 608, 608);
        passed &= check_heads(
            &setup,
            "yolov4 @608 (random)",
            &v4_608,
            &v4_weights,
            &photos,
        )?;
        for dtype in &args.dtypes {
            passed &= check_detections(&setup, *dtype, &tiny_cfg, &tiny_weights, &names, &photos)?;
        }
        println!(
            "gpu_check: checks {} in {:.1} s",
            if passed { "passed" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
    }

    if args.bench {
        let mut rows = Vec::new();
        for net in &args.models {
            let (cfg, weights) = match *net {
                Net::V4(size) => (cfg_text::with_input_size(&v4_cfg, size, size), &v4_weights),
                Net::Tiny(size) => (
                    cfg_text::with_input_size(&tiny_cfg, size, size),
                    &tiny_weights,
                ),
            };
            for dtype in &args.dtypes {
                for batch in &args.batches {
                    let row = bench(&setup, *net, &cfg, weights, &names, *dtype, *batch, &photos);
                    match row {
                        Ok(row) => {
                            println!("{}", row.markdown());
                            rows.push(row);
                        }
                        Err(e) => {
                            println!(
                                "gpu_check: {} {dtype:?} batch {batch} failed: {e}",
                                net.label()
                            );
                            passed = false;
                        }
                    }
                }
            }
        }
        let table = table(&rows);
        println!("\n{table}");
        if let Some(path) = &args.out {
            std::fs::write(path, &table)?;
            println!("gpu_check: table written to {path}");
        }
    }
    Ok(passed)
}

/// Loads a network on a device in a dtype.
fn load(
    cfg: &str,
    weights: &[u8],
    device: &Device,
    dtype: DType,
    kernels: KernelChoice,
) -> Result<Darknet> {
    let cfg = NetConfig::parse(cfg)?;
    let options = LoadOptions {
        dtype,
        kernels,
        ..LoadOptions::default()
    };
    Ok(Darknet::load_with(&cfg, weights, device, &options)?)
}

/// The photos as one input batch of `batch` images (repeating them) for a
/// model, with their placements.
fn input_batch(
    model: &Darknet,
    photos: &[image::RgbImage],
    batch: usize,
) -> Result<(Tensor, Vec<Placement>)> {
    let (w, h) = model.input_size();
    let (planes, placements): (Vec<_>, Vec<_>) = (0..batch)
        .map(|i| preprocess::to_planar(&photos[i % photos.len()], w, h, Resize::Stretch))
        .unzip();
    let input = preprocess::batch(&planes, w, h, model.device())?;
    Ok((input, placements))
}

/// f32 head logits on the device against the CPU's fused kernels.
fn check_heads(
    setup: &Setup,
    label: &str,
    cfg: &str,
    weights: &[u8],
    photos: &[image::RgbImage],
) -> Result<bool> {
    let started = Instant::now();
    let cpu = load(cfg, weights, &Device::Cpu, DType::F32, KernelChoice::Native)?;
    let dev = load(cfg, weights, &setup.device, DType::F32, setup.kernels)?;
    let (cpu_input, _) = input_batch(&cpu, photos, photos.len())?;
    let want = cpu.forward_heads(&cpu_input)?;
    let (dev_input, _) = input_batch(&dev, photos, photos.len())?;
    let got = dev.forward_heads(&dev_input)?;
    let mut ok = true;
    let mut report = String::new();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        let w = w.flatten_all()?.to_vec1::<f32>()?;
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let abs = g
            .iter()
            .zip(&w)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let rel = abs / scale.max(f32::MIN_POSITIVE);
        ok &= rel <= MAX_HEAD_REL && g.iter().all(|v| v.is_finite());
        let _ = write!(report, " head {i}: rel {rel:.1e} abs {abs:.1e};");
    }
    println!(
        "check f32 heads {label}, device vs CPU:{report} {} ({:.1} s)",
        verdict(ok),
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}

/// yolov4-tiny detections on the photos in `dtype` on the device against f32 on the CPU.
fn check_detections(
    setup: &Setup,
    dtype: DType,
    cfg: &str,
    weights: &[u8],
    names: &[String],
    photos: &[image::RgbImage],
) -> Result<bool> {
    let started = Instant::now();
    let options = DetectorOptions::default();
    let cpu = Detector::from_model(
        load(cfg, weights, &Device::Cpu, DType::F32, KernelChoice::Native)?,
        names.to_vec(),
        options,
    )?;
    let dev = Detector::from_model(
        load(cfg, weights, &setup.device, dtype, setup.kernels)?,
        names.to_vec(),
        options,
    )?;
    let want = cpu.detect(photos)?;
    let got = dev.detect(photos)?;
    let mut ok = true;
    for ((name, photo), (w, g)) in PHOTOS.iter().zip(photos).zip(want.iter().zip(&got)) {
        let outcome = compare_detections(w, g, photo.dimensions());
        let summary: Vec<String> = g
            .iter()
            .map(|d| format!("{} {:.3}", d.class_name, d.confidence))
            .collect();
        match outcome {
            Ok((edge, confidence)) => println!(
                "check {dtype:?} detections yolov4-tiny {name}: {} equal to the CPU's (max edge \
                 {:.2}% of the image, max confidence diff {confidence:.4}) [{}] PASS",
                g.len(),
                edge * 100.0,
                summary.join(", ")
            ),
            Err(why) => {
                ok = false;
                let cpu: Vec<String> = w
                    .iter()
                    .map(|d| format!("{} {:.3}", d.class_name, d.confidence))
                    .collect();
                println!(
                    "check {dtype:?} detections yolov4-tiny {name}: {why}; device [{}], CPU [{}] FAIL",
                    summary.join(", "),
                    cpu.join(", ")
                );
            }
        }
    }
    println!(
        "check {dtype:?} detections: {} ({:.1} s)",
        verdict(ok),
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}

/// Same count, and each expected detection matched by one of the same class
/// with every edge within [`MAX_EDGE`] of the image size. Returns the largest
/// edge difference (fraction of the image size) and confidence difference.
fn compare_detections(
    want: &[ObjectDetection],
    got: &[ObjectDetection],
    (width, height): (u32, u32),
) -> std::result::Result<(f32, f32), String> {
    if want.len() != got.len() {
        return Err(format!(
            "{} detections, the CPU has {}",
            got.len(),
            want.len()
        ));
    }
    let (w, h) = (width as f32, height as f32);
    let edges = |a: &ObjectDetection, b: &ObjectDetection| {
        let (p, q) = (a.bbox, b.bbox);
        [
            (p.x - q.x).abs() / w,
            (p.x + p.width - q.x - q.width).abs() / w,
            (p.y - q.y).abs() / h,
            (p.y + p.height - q.y - q.height).abs() / h,
        ]
        .into_iter()
        .fold(0f32, f32::max)
    };
    let mut used = vec![false; got.len()];
    let (mut max_edge, mut max_conf) = (0f32, 0f32);
    for d in want {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, g)| !used[*i] && g.class_id == d.class_id)
            .map(|(i, g)| (i, edges(d, g)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, edge)) if edge <= MAX_EDGE => {
                used[i] = true;
                max_edge = max_edge.max(edge);
                max_conf = max_conf.max((got[i].confidence - d.confidence).abs());
            }
            _ => return Err(format!("no match for {} {:.3}", d.class_name, d.confidence)),
        }
    }
    Ok((max_edge, max_conf))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One row of the throughput table.
struct Row {
    model: String,
    dtype: DType,
    conv: &'static str,
    batch: usize,
    iterations: usize,
    forward_ips: f64,
    forward_ms: f64,
    detect_ips: f64,
    /// Cells per image whose entries the decode copied from the device.
    cells_per_image: f64,
    memory_mib: Option<u64>,
}

impl Row {
    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.1} | {:.0} | {} | {} |",
            self.model,
            dtype_name(self.dtype),
            self.conv,
            self.batch,
            self.forward_ips,
            self.forward_ms,
            self.detect_ips,
            self.cells_per_image,
            self.memory_mib.map_or("n/a".into(), |m| m.to_string()),
            self.iterations,
        )
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "?",
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| model | dtype | conv | batch | images/s (forward) | ms/batch (forward) | \
         images/s (+ decode, NMS) | cells copied/image | GPU MiB (peak) | timed passes |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&row.markdown());
        out.push('\n');
    }
    out
}

/// Measures one network, dtype and batch size on the device.
#[allow(clippy::too_many_arguments)]
fn bench(
    setup: &Setup,
    net: Net,
    cfg: &str,
    weights: &[u8],
    names: &[String],
    dtype: DType,
    batch: usize,
    photos: &[image::RgbImage],
) -> Result<Row> {
    let model = load(cfg, weights, &setup.device, dtype, setup.kernels)?;
    let options = DetectorOptions {
        confidence_threshold: match net {
            Net::V4(_) => setup.random_threshold,
            Net::Tiny(_) => DetectorOptions::default().confidence_threshold,
        },
        ..DetectorOptions::default()
    };
    let detector = Detector::from_model(model, names.to_vec(), options)?;
    let (input, placements) = input_batch(detector.model(), photos, batch)?;
    let sampler = MemorySampler::start();
    let forward = || -> candle_core::Result<()> {
        let heads = detector.model().forward_heads(&input)?;
        setup.device.synchronize()?;
        drop(heads);
        Ok(())
    };
    let detect = || -> candle_core::Result<()> {
        detector
            .detect_input(&input, &placements)
            .map_err(candle_core::Error::wrap)?;
        Ok(())
    };
    let (iterations, forward_s) = time(setup, forward)?;
    let (_, detect_s) = time(setup, detect)?;
    let memory_mib = sampler.stop();
    let heads = detector.model().forward_heads(&input)?;
    let mut cells = 0;
    for (head, logits) in detector.model().heads().iter().zip(&heads) {
        cells += gather_cells(logits, head.layout(), options.confidence_threshold)?
            .cells
            .len();
    }
    Ok(Row {
        model: net.label(),
        dtype,
        conv: setup.conv,
        batch,
        iterations,
        forward_ips: batch as f64 / forward_s,
        forward_ms: forward_s * 1e3,
        detect_ips: batch as f64 / detect_s,
        cells_per_image: cells as f64 / batch as f64,
        memory_mib,
    })
}

/// Runs `f` `setup.warmup` times, then at least `setup.min_iterations` times
/// and for at least `setup.seconds`; returns the timed passes and the mean
/// seconds per pass.
fn time(setup: &Setup, f: impl Fn() -> candle_core::Result<()>) -> Result<(usize, f64)> {
    for _ in 0..setup.warmup {
        f()?;
    }
    let started = Instant::now();
    let mut iterations = 0;
    while iterations < setup.min_iterations || started.elapsed().as_secs_f64() < setup.seconds {
        f()?;
        iterations += 1;
    }
    Ok((
        iterations,
        started.elapsed().as_secs_f64() / iterations as f64,
    ))
}

/// Memory in use on GPU 0 as `nvidia-smi` reports it (MiB, whole device);
/// `None` without `nvidia-smi` (the CPU dry run).
fn gpu_memory_mib() -> Option<u64> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Polls [`gpu_memory_mib`] on a thread and keeps the peak.
struct MemorySampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    seen: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MemorySampler {
    fn start() -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, peak, seen) = (stop.clone(), peak.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match gpu_memory_mib() {
                        Some(m) => {
                            peak.fetch_max(m, Ordering::Relaxed);
                            seen.store(true, Ordering::Relaxed);
                        }
                        None => return,
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        MemorySampler {
            stop,
            peak,
            seen,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.seen
            .load(Ordering::Relaxed)
            .then(|| self.peak.load(Ordering::Relaxed))
    }
}
