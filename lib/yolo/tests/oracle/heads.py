"""Raw outputs of named OpenCV DNN layers for a given input tensor.

usage: heads.py CFG WEIGHTS INPUT.f32 OUT_DIR LAYER [LAYER...]

Loads the Darknet CFG/WEIGHTS with OpenCV DNN (CPU, Winograd off, fusion off
so intermediate layers hold their own outputs), feeds it INPUT.f32 (N,C,H,W,
written by the Rust test: the exact tensor our model gets) and writes each
requested layer's output to OUT_DIR/LAYER.f32 (+ .json sidecar). Head logits
are the [yolo] inputs: conv_29, conv_36 (yolov4-tiny); conv_138, conv_149,
conv_160 (yolov4). OpenCV folds no BN here and uses BN epsilon 1e-6.
"""

import os
import sys

import cv2

from oracle_io import load_net, read_tensor, write_tensor


def main(argv):
    if len(argv) < 6:
        raise SystemExit(__doc__)
    cfg, weights, input_path, out_dir = argv[1:5]
    layers = argv[5:]
    cv2.setNumThreads(1)
    net = load_net(cfg, weights, out_dir, fusion=False)
    known = set(net.getLayerNames())
    missing = [name for name in layers if name not in known]
    if missing:
        raise SystemExit(f"OpenCV net has no layer {missing}")
    net.setInput(read_tensor(input_path))
    for name, out in zip(layers, net.forward(layers)):
        write_tensor(os.path.join(out_dir, name + ".f32"), out)


if __name__ == "__main__":
    main(sys.argv)
