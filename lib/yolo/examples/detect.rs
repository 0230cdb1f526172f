//! Runs a Darknet detector on images and prints what it finds.
//!
//! `cargo run --release -p safecity-yolo --example detect -- CFG WEIGHTS NAMES IMAGE...`
//! (`SAFECITY_DEVICE=cpu|cuda|cuda:N|auto` picks the device; default auto).

use std::error::Error;
use std::path::Path;

use safecity_yolo::device::{DevicePreference, select};
use safecity_yolo::preprocess::decode;
use safecity_yolo::{Detector, DetectorOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cfg, weights, names, images @ ..] = args.as_slice() else {
        return Err("usage: detect CFG WEIGHTS NAMES IMAGE...".into());
    };
    let preference: DevicePreference = std::env::var("SAFECITY_DEVICE")
        .unwrap_or_else(|_| "auto".into())
        .parse()?;
    let options = DetectorOptions::default();
    let detector = Detector::from_files(
        Path::new(cfg),
        Path::new(weights),
        Path::new(names),
        select(preference)?,
        options,
    )?;
    let decoded = images
        .iter()
        .map(|path| decode(&std::fs::read(path)?, &options.limits).map_err(Into::into))
        .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
    let started = std::time::Instant::now();
    let results = detector.detect(&decoded)?;
    println!("{} image(s) in {:?}", decoded.len(), started.elapsed());
    for (path, found) in images.iter().zip(results) {
        println!("{path}:");
        for d in found {
            let b = d.bbox;
            println!(
                "  {:<12} {:.3}  x={:.0} y={:.0} w={:.0} h={:.0}",
                d.class_name, d.confidence, b.x, b.y, b.width, b.height
            );
        }
    }
    Ok(())
}
