#!/usr/bin/env bash
# Builds the CUDA detector and the GPU check from vendored crates, offline,
# and packs what a GPU machine needs into target/gpu-bundle.
#
#   scripts/build-cuda.sh [--toolkit DIR] [--no-vendor] [--only cuda|cudnn]
#
# The toolkit: DIR (or $CUDA_HOME) is either a CUDA toolkit 12.x/13.x with
# bin/nvcc, or a prefix holding an env.sh that sets CUDA_HOME and PATH (what
# shared/tools/cuda13-toolchain/setup.sh PREFIX writes in the safecity
# workspace: a CUDA 13.0 toolkit assembled from PyPI wheels, ~1.7 GB). It is
# never committed. Linking needs a libcuda.so: the driver's, the toolkit's
# lib64/stubs/libcuda.so, or the stub in DIR/cuda/lib64 (link time only:
# never ship or load a stub).
#
# What it does:
#   1. `cargo vendor` of the workspace's crates into $VENDOR_DIR (default
#      target/cuda-vendor, outside git), so the build below and any later
#      build on a machine without a registry run offline;
#   2. builds, offline from the vendored crates, with CUDA_COMPUTE_CAP=90
#      (H100/H200; override with $CUDA_COMPUTE_CAP) into $CARGO_TARGET_DIR
#      (default target/cuda, so the CPU builds in target/ stay untouched):
#      `safecity-detector` and the `gpu_check` example of safecity-yolo, once
#      with `--features cuda` and once with `--features cuda,cudnn`,
#      stripped and without debug info (the binaries travel);
#   3. packs into target/gpu-bundle: bin/gpu-check-{cuda,cudnn}.xz (what
#      scripts/gpu-bench.sh runs; ~49 MB each unpacked, mostly sm_90a code,
#      ~8 MB packed, so bundle and assets fit what a GPU session carries),
#      BUILD-INFO, and bin/detector-{cuda,cudnn}.xz only with
#      --with-detector (the GPU script does not need them).
#
# Every step prints its wall time; the total is the cold build time when
# $CARGO_TARGET_DIR starts empty.
set -euo pipefail
cd "$(dirname "$0")/.."

toolkit=${CUDA_HOME:-}
vendor=1
only=
with_detector=0
while [ $# -gt 0 ]; do
  case $1 in
    --toolkit) toolkit=$2; shift 2 ;;
    --no-vendor) vendor=0; shift ;;
    --only) only=$2; shift 2 ;;
    --with-detector) with_detector=1; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "build-cuda: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$toolkit" ]; then
  echo "build-cuda: no CUDA toolkit: pass --toolkit DIR or set CUDA_HOME (see the header of $0)" >&2
  exit 2
fi
if [ -f "$toolkit/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$toolkit/env.sh"
else
  export CUDA_HOME=$toolkit
  export PATH=$CUDA_HOME/bin:$PATH
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
command -v nvcc >/dev/null || { echo "build-cuda: no nvcc in $CUDA_HOME/bin" >&2; exit 2; }

# Link-time libcuda: the toolkit's own lib64 (setup.sh's stub), its stubs/, or the driver's.
libcuda=
for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib64/stubs" "$CUDA_HOME/lib/stubs"; do
  if [ -e "$d/libcuda.so" ]; then libcuda=$d; break; fi
done
if [ -n "$libcuda" ]; then
  export LIBRARY_PATH=$libcuda${LIBRARY_PATH:+:$LIBRARY_PATH}
elif ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '; then
  echo "build-cuda: no libcuda.so to link against (the driver's, or lib64/stubs of the toolkit)" >&2
  exit 2
fi
export LIBRARY_PATH=$CUDA_HOME/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}

target=${CARGO_TARGET_DIR:-target/cuda}
export CARGO_TARGET_DIR=$target
vendor_dir=${VENDOR_DIR:-target/cuda-vendor}
bundle=target/gpu-bundle
# The binaries travel: no debug info, stripped.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true

now() { date +%s; }
took() { echo "build-cuda: $1 took $(($(now) - $2)) s"; }
start_all=$(now)
echo "build-cuda: nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, target $target"

offline=()
if [ "$vendor" = 1 ]; then
  t=$(now)
  # Vendoring again only when Cargo.lock changed keeps the sources (and
  # their timestamps) as they are, so incremental builds stay incremental.
  lock_sum=$(sha256sum Cargo.lock | cut -d' ' -f1)
  if [ "$(cat "$vendor_dir/.safecity-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    mkdir -p "$vendor_dir"
    cargo vendor --quiet "$vendor_dir" >/dev/null
    echo "$lock_sum" >"$vendor_dir/.safecity-lock-sha256"
    took "cargo vendor into $vendor_dir ($(du -sh "$vendor_dir" | cut -f1))" "$t"
  else
    echo "build-cuda: $vendor_dir is up to date with Cargo.lock"
  fi
  offline=(--offline
    --config "source.crates-io.replace-with='vendored-sources'"
    --config "source.vendored-sources.directory='$PWD/$vendor_dir'")
fi

feature_sets=(cuda cudnn)
[ -n "$only" ] && feature_sets=("$only")
rm -rf "$bundle"
mkdir -p "$bundle/bin"
for set in "${feature_sets[@]}"; do
  case $set in
    cuda) features=cuda ;;
    cudnn) features=cuda,cudnn ;;
    *) echo "build-cuda: --only takes cuda or cudnn" >&2; exit 2 ;;
  esac
  t=$(now)
  cargo "${offline[@]}" build --release -p safecity-detector --features "$features"
  took "safecity-detector --features $features" "$t"
  if [ "$with_detector" = 1 ]; then
    xz -T0 -6 -c "$target/release/detector" >"$bundle/bin/detector-$set.xz"
  fi
  t=$(now)
  cargo "${offline[@]}" build --release -p safecity-yolo --example gpu_check --features "$features"
  took "gpu_check --features $features" "$t"
  xz -T0 -6 -c "$target/release/examples/gpu_check" >"$bundle/bin/gpu-check-$set.xz"
done

{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "CUDA_COMPUTE_CAP: $CUDA_COMPUTE_CAP"
  echo "binaries: $(cd "$bundle/bin" && ls | tr '\n' ' ')"
} >"$bundle/BUILD-INFO"
took "everything (cold when $target started empty)" "$start_all"
du -sh "$bundle"/bin/* | sed 's/^/build-cuda: /'
echo "build-cuda: $bundle: $(du -sh "$bundle" | cut -f1) in all"
