//! The runtime images built for real and checked against the manifests
//! (opt-in and slow: `SAFECITY_IMAGE_TESTS=1`). Runs `scripts/images.sh
//! --clean`: a Debian 12 base like distroless cc-debian12 (debootstrap, made
//! once and kept in buildah's store), the root Dockerfile's `runtime` stage
//! per image from the release binaries, Dockerfile.cuda's for its config,
//! then `scripts/images/check.py`: user 65532:65532, entrypoint and ports
//! against the Dockerfile's table and the rendered manifests, and a start of
//! every Deployment's container as the manifests configure it (probes pass,
//! uid 65532, no root filesystem writes, exit 0 on SIGTERM). The images are
//! removed afterwards; the base stays.
//!
//! Needs root or sudo (buildah, debootstrap: the script installs both with
//! apt), deb.debian.org the first time, the local RabbitMQ and PostgreSQL
//! (the script starts them), and several minutes (a release build if
//! target/release lacks the binaries). Not part of `scripts/test.sh`.

use std::process::Command;

use safecity_e2e::root;

#[test]
fn the_runtime_images_build_and_run_as_the_manifests_expect() {
    if std::env::var("SAFECITY_IMAGE_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set SAFECITY_IMAGE_TESTS=1 to build the runtime images with buildah and \
             check them against the manifests (scripts/images.sh: root or sudo, debootstrap, \
             minutes)"
        );
        return;
    }
    let status = Command::new(root().join("scripts/images.sh"))
        .arg("--clean")
        .current_dir(root())
        .status()
        .expect("scripts/images.sh starts");
    assert!(
        status.success(),
        "scripts/images.sh failed ({status}): its output above names the image and the check"
    );
}
