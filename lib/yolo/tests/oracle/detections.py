"""Final detections computed from OpenCV DNN's own [yolo] decode, with Darknet's rules.

usage: detections.py CFG WEIGHTS INPUT.f32 OUT.json THRESH NMS W,H [W,H...]

Feeds INPUT.f32 (N,C,H,W, the exact tensor our model gets; one W,H source
image size per batch item) to OpenCV DNN (Winograd off) with a cfg copy whose
[yolo] sections say thresh=0 and nms_threshold=0, so OpenCV's region layers
return every candidate decoded by OpenCV itself: centre x, y and w, h relative
to the net input (scale_x_y and anchors applied), objectness, and class scores
objectness * sigmoid(logit).

On those rows this script applies what `darknet detector test` does for the
stock cfgs (nms_kind=greedynms): keep a class when its score > THRESH, then
per class, in descending score order, drop every later box whose DIoU with a
kept one is > NMS, where DIoU = IoU - (d^2 / c^2)^0.6 on net-relative
coordinates (d: centre distance, c: diagonal of the enclosing box). Boxes are
then scaled to the source image (stretch resize) and clamped to it.

OUT.json: [[{"class_id", "confidence", "x", "y", "width", "height"}, ...] per image].
"""

import json
import os
import sys

import cv2
import numpy as np

from oracle_io import load_net, read_tensor


def diou(a, b):
    """Darknet box_diou on (cx, cy, w, h) boxes."""
    ax0, ax1 = a[0] - a[2] / 2, a[0] + a[2] / 2
    ay0, ay1 = a[1] - a[3] / 2, a[1] + a[3] / 2
    bx0, bx1 = b[0] - b[2] / 2, b[0] + b[2] / 2
    by0, by1 = b[1] - b[3] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    iou = inter / union if union > 0 else 0.0
    cw = max(ax1, bx1) - min(ax0, bx0)
    ch = max(ay1, by1) - min(ay0, by0)
    c = cw * cw + ch * ch
    if c == 0:
        return iou
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    return iou - (d / c) ** 0.6


def detect(rows, thresh, nms, width, height):
    """Darknet greedy DIoU NMS per class on one image's region rows."""
    out = []
    boxes = rows[:, :4].astype(np.float64)
    scores = rows[:, 5:].astype(np.float64)
    for k in range(scores.shape[1]):
        idx = np.nonzero(scores[:, k] > thresh)[0]
        order = idx[np.argsort(-scores[idx, k], kind="stable")]
        kept = []
        for i in order:
            if all(diou(boxes[j], boxes[i]) <= nms for j in kept):
                kept.append(i)
        for i in kept:
            cx, cy, w, h = boxes[i]
            left = min(max((cx - w / 2) * width, 0.0), width)
            right = min(max((cx + w / 2) * width, 0.0), width)
            top = min(max((cy - h / 2) * height, 0.0), height)
            bottom = min(max((cy + h / 2) * height, 0.0), height)
            out.append({"class_id": k, "confidence": float(scores[i, k]),
                        "x": left, "y": top, "width": right - left, "height": bottom - top})
    out.sort(key=lambda d: -d["confidence"])
    return out


def main(argv):
    if len(argv) < 8:
        raise SystemExit(__doc__)
    cfg, weights, input_path, out_path = argv[1:5]
    thresh, nms = float(argv[5]), float(argv[6])
    sizes = [tuple(int(v) for v in s.split(",")) for s in argv[7:]]
    blob = read_tensor(input_path)
    if blob.shape[0] != len(sizes):
        raise SystemExit(f"{len(sizes)} image sizes for a batch of {blob.shape[0]}")
    cv2.setNumThreads(1)
    net = load_net(cfg, weights, os.path.dirname(os.path.abspath(out_path)), fusion=True)
    net.setInput(blob)
    heads = net.forward(net.getUnconnectedOutLayersNames())
    # Each region output is (N * rows, 5 + classes) or (N, rows, 5 + classes).
    per_image = [np.concatenate([h.reshape(len(sizes), -1, h.shape[-1])[n] for h in heads])
                 for n in range(len(sizes))]
    result = [detect(rows, thresh, nms, w, h) for rows, (w, h) in zip(per_image, sizes)]
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
