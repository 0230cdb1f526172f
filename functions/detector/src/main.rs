//! The `detector` process: frames in, safety events out.

use std::time::Duration;

use anyhow::Context as _;
use safecity_cameras::CameraRegistry;
use safecity_detector::closer::{self, CloserSettings};
use safecity_detector::{ClassMap, DetectorConfig, DetectorFunction, Settings, YoloModel};
use safecity_runtime::RuntimeConfig;
use safecity_shell::{signals, telemetry};
use tracing::{info, warn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runtime = RuntimeConfig::from_env()?;
    let config = DetectorConfig::from_env()?;
    telemetry::init(runtime.log_format);
    if usize::from(runtime.concurrency) < config.batch.max_batch {
        warn!(
            concurrency = runtime.concurrency,
            batch_size = config.batch.max_batch,
            "SAFECITY_CONCURRENCY is below SAFECITY_DETECTOR_BATCH_SIZE: batches can never fill; \
             raise SAFECITY_CONCURRENCY to at least the batch size"
        );
    }
    // Check the class map against the names file before the (slow) model load.
    let class_map = ClassMap::load(&config.classes)?;
    let names = std::fs::read_to_string(&config.model.names).with_context(|| {
        format!(
            "SAFECITY_DETECTOR_NAMES: cannot read {}",
            config.model.names.display()
        )
    })?;
    let resolved = class_map.resolve(&safecity_yolo::detector::parse_names(&names))?;
    let cameras = match &config.camera_registry {
        Some(path) => CameraRegistry::load(path)
            .with_context(|| "SAFECITY_CAMERA_REGISTRY: the camera registry is unusable")?,
        None => CameraRegistry::default(),
    };
    resolved.check_zones(&cameras, config.camera_registry.as_deref())?;
    let model = tokio::task::spawn_blocking({
        let config = config.clone();
        move || YoloModel::load(&config)
    })
    .await
    .context("the model loader panicked")??;
    info!(
        classes = model.class_names().len(),
        device = %config.device,
        batch_size = config.batch.max_batch,
        batch_wait = %humantime::format_duration(config.batch.max_wait),
        "model loaded"
    );
    let class_names = model.class_names().to_vec();
    let (net_width, net_height) = model.detector().model().input_size();
    let settings = Settings {
        // Large frames are decoded smaller, never below the network input.
        decode_at_least: Some((
            u32::try_from(net_width).unwrap_or(u32::MAX),
            u32::try_from(net_height).unwrap_or(u32::MAX),
        )),
        cameras,
        ..Settings::from(&config)
    };
    let shutdown = signals::on_signals();
    let function =
        DetectorFunction::new(model, &class_names, &class_map, settings, shutdown.clone())?;
    function
        .metrics()
        .log_every(Duration::from_secs(60), shutdown.clone());
    // The closer stops after the runtime has drained, then closes what is open.
    let closer_stop = tokio_util::sync::CancellationToken::new();
    let closer = closer::spawn(
        function.incidents().clone(),
        CloserSettings::new(&runtime.amqp_url, config.incident_window),
        function.metrics(),
        closer_stop.clone(),
    );
    let result = match safecity_runtime::start(function, runtime, shutdown).await {
        Ok(running) => running.join().await,
        Err(error) => Err(error),
    };
    closer_stop.cancel();
    let _ = closer.await;
    result?;
    Ok(())
}
