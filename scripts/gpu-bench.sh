#!/usr/bin/env bash
# The GPU check and benchmark of the detector, in one command for a GPU
# machine (no registry, no network). Sized to finish in well under 10 minutes
# on an H100/H200.
#
#   scripts/gpu-bench.sh [--cpu-dry-run] [--build] [-- GPU_CHECK_ARGS...]
#
# Needs, in the working tree:
#   - target/yolo-assets (scripts/fetch-yolo-assets.sh; $SAFECITY_YOLO_ASSETS
#     overrides): the yolov4-tiny weights and cfg, yolov4.cfg, the photos;
#   - target/gpu-bundle/bin/gpu-check-{cuda,cudnn}.xz ($BIN_DIR overrides;
#     unpacked binaries are used as they are), built by scripts/build-cuda.sh
#     from vendored crates with CUDA_COMPUTE_CAP=90.
#     With --build (or when they are missing and cargo and nvcc are there) it
#     builds them here instead, offline, from $VENDOR_DIR (default
#     target/cuda-vendor, made by scripts/build-cuda.sh).
#
# Steps: checks that every CUDA library the binaries load resolves, with
# LD_LIBRARY_PATH set to the CUDA 13 libraries of the machine's Python
# (nvidia/cu13/lib and nvidia/cudnn/lib of its site-packages; a GPU machine's
# image has them with its PyTorch); records the GPU; then runs the check and
# the benchmark once without cuDNN and once with it (lib/yolo/examples/
# gpu_check.rs: CUDA f32 against the CPU on the real yolov4-tiny and random
# full-YOLOv4 weights, f16 detections on the photos, images/s of yolov4 @608,
# @416 and yolov4-tiny @416 at batch 1, 8, 32 in f32 and f16, peak GPU
# memory). Prints one table and writes, under $OUT (default
# target/gpu-bench): gpu-bench.md (the table for docs/benchmarks.md, with the
# GPU, driver and build), gpu-bench.log, gpu-cuda.md, gpu-cudnn.md.
#
# --cpu-dry-run: the same steps on a machine without a GPU: builds the CPU
# gpu_check (no CUDA), runs it with --cpu-dry-run (the device side on the
# portable kernels, batch 1, one timed pass), reports the bundle's libraries
# without failing on them. Proves the script and the binary end to end.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
build=0
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-dry-run) dry_run=1; shift ;;
    --build) build=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "gpu-bench: unknown argument $1" >&2; exit 2 ;;
  esac
done

out=${OUT:-target/gpu-bench}
mkdir -p "$out"
log=$out/gpu-bench.log
: >"$log"
say() { echo "gpu-bench: $*" | tee -a "$log"; }
bin_dir=${BIN_DIR:-target/gpu-bundle/bin}
vendor_dir=${VENDOR_DIR:-target/cuda-vendor}
export SAFECITY_YOLO_ASSETS=${SAFECITY_YOLO_ASSETS:-$PWD/target/yolo-assets}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
started=$(date +%s)

for f in yolov4-tiny.cfg yolov4-tiny.weights yolov4.cfg coco.names bus.jpg zidane.jpg; do
  if [ ! -s "$SAFECITY_YOLO_ASSETS/$f" ]; then
    say "missing $SAFECITY_YOLO_ASSETS/$f: run scripts/fetch-yolo-assets.sh where a registry is reachable and carry target/yolo-assets"
    exit 2
  fi
done

# The CUDA 13 libraries of the machine's Python (PyTorch's wheels).
# The toolchain's README names nvidia/cu13/lib and nvidia/cudnn/lib; any other
# nvidia/*/lib follows them, in case a wheel lays its libraries out otherwise.
if sp=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null); then
  libs=$sp/nvidia/cu13/lib:$sp/nvidia/cudnn/lib
  for d in "$sp"/nvidia/*/lib; do
    case :$libs: in *:$d:*) ;; *) [ -d "$d" ] && libs=$libs:$d ;; esac
  done
  export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

# build_here FEATURES NAME: builds gpu_check offline from the vendored crates into $bin_dir/NAME.
build_here() {
  local features=$1 name=$2 offline=()
  if [ -d "$vendor_dir" ]; then
    offline=(--offline
      --config "source.crates-io.replace-with='vendored-sources'"
      --config "source.vendored-sources.directory='$PWD/$vendor_dir'")
  fi
  say "building gpu_check --features $features (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP${offline:+, offline from $vendor_dir})"
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda} \
    cargo "${offline[@]}" build --release -p safecity-yolo --example gpu_check --features "$features" 2>&1 | tail -3 | tee -a "$log"
  mkdir -p "$bin_dir"
  cp "${CARGO_TARGET_DIR:-target/cuda}/release/examples/gpu_check" "$bin_dir/$name"
}

# check_libraries BIN: every shared library BIN needs resolves; prints the CUDA ones.
check_libraries() {
  local bin=$1 missing
  ldd "$bin" 2>&1 | grep -E 'cuda|cublas|curand|cudnn|nvrtc|not found' | sed "s|^|gpu-bench:   $(basename "$bin"): |" | tee -a "$log"
  missing=$(ldd "$bin" 2>&1 | grep -c 'not found')
  [ "$missing" = 0 ]
}

# unpack NAME: a runnable NAME: $bin_dir/NAME as it is, else $bin_dir/NAME.xz
# unpacked (xz, or Python's lzma) into $run_dir, outside the bundle.
run_dir=${RUN_DIR:-target/gpu-bench-bin}
declare -A binary
unpack() {
  local packed=$bin_dir/$1.xz
  if [ -x "$bin_dir/$1" ]; then binary[$1]=$bin_dir/$1; return 0; fi
  [ -s "$packed" ] || return 1
  mkdir -p "$run_dir"
  if command -v xz >/dev/null; then
    xz -dc "$packed" >"$run_dir/$1.tmp"
  else
    python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$packed" "$run_dir/$1.tmp"
  fi && chmod +x "$run_dir/$1.tmp" && mv "$run_dir/$1.tmp" "$run_dir/$1" && binary[$1]=$run_dir/$1
}

status=0
if [ "$dry_run" = 1 ]; then
  say "CPU dry run: building the CPU gpu_check (no CUDA)"
  cargo build --release -p safecity-yolo --example gpu_check 2>&1 | tail -2 | tee -a "$log"
  runs=("cpu:target/release/examples/gpu_check:gpu-cpu-dry-run.md")
  for name in gpu-check-cuda gpu-check-cudnn; do
    unpack "$name" || continue
    b=${binary[$name]}
    say "libraries of $b (a dry run only reports them)"
    check_libraries "$b" || say "  (unresolved here; on the GPU machine they must resolve)"
  done
  extra=(--cpu-dry-run "${extra[@]}")
else
  for pair in cuda:cuda cudnn:cuda,cudnn; do
    name=gpu-check-${pair%%:*}
    if [ "$build" = 1 ] || ! unpack "$name"; then
      if command -v cargo >/dev/null && command -v nvcc >/dev/null; then
        build_here "${pair#*:}" "$name" && unpack "$name" || { say "build of $name failed"; exit 2; }
      else
        say "no $bin_dir/$name and no cargo+nvcc here: run scripts/build-cuda.sh on a build machine and carry target/gpu-bundle"
        exit 2
      fi
    fi
  done
  [ -f "$bin_dir/../BUILD-INFO" ] && sed 's/^/gpu-bench: build: /' "$bin_dir/../BUILD-INFO" | tee -a "$log"
  for name in gpu-check-cuda gpu-check-cudnn; do
    say "libraries of $name (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
    check_libraries "${binary[$name]}" || { say "unresolved libraries: see above"; exit 2; }
  done
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu-bench: GPU: /' | tee -a "$log"
  runs=("cuda:${binary[gpu-check-cuda]}:gpu-cuda.md" "cudnn:${binary[gpu-check-cudnn]}:gpu-cudnn.md")
fi

tables=()
for run in "${runs[@]}"; do
  IFS=: read -r label bin table <<<"$run"
  say "running $label: $bin ${extra[*]}"
  # Each GPU run is bounded so both fit a 10-minute command limit (the CPU
  # dry run is slower: f16 and the portable convolutions on the CPU).
  timeout "${GPU_CHECK_TIMEOUT:-$([ "$dry_run" = 1 ] && echo 1800 || echo 270)}" "$bin" --out "$out/$table" "${extra[@]}" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then
    say "$label exited with $rc (1: a check failed; 124: timed out)"
    status=1
  fi
  [ -s "$out/$table" ] && tables+=("$out/$table")
done

# One table: the header once, rows grouped by model, dtype, batch, then conv.
md=$out/gpu-bench.md
{
  echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'none (CPU dry run)')"
  echo "Date: $(date -u +%Y-%m-%d); build: $(sed -n 's/^commit: //p' "$bin_dir/../BUILD-INFO" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)"
  echo
  if [ "${#tables[@]}" -gt 0 ]; then
    head -2 "${tables[0]}"
    for t in "${tables[@]}"; do tail -n +3 "$t"; done | sort -s -t'|' -k2,2 -k3,3 -k5,5n -k4,4
  fi
} >"$md"
echo
cat "$md" | tee -a "$log"
say "done in $(($(date +%s) - started)) s; table in $md (status $status)"
exit "$status"
