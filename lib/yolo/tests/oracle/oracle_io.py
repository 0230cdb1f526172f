"""Shared helpers of the OpenCV DNN oracle scripts.

Tensor files are raw little-endian float32 with a JSON sidecar
(`NAME.f32` + `NAME.json`, sidecar `{"shape": [...]}`) so that the Rust tests
need no .npy writer. Everything here is deterministic.
"""

import json
import os

import cv2
import numpy as np


def read_tensor(path):
    """Loads PATH (raw <f4) shaped by the sidecar PATH with .json for .f32."""
    with open(os.path.splitext(path)[0] + ".json") as f:
        shape = json.load(f)["shape"]
    data = np.fromfile(path, dtype="<f4")
    if data.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {data.size} floats, sidecar shape {shape} wants {int(np.prod(shape))}")
    return data.reshape(shape)


def write_tensor(path, array):
    """Writes ARRAY as raw <f4 to PATH and its shape to the .json sidecar."""
    array = np.ascontiguousarray(array, dtype="<f4")
    array.tofile(path)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"shape": list(array.shape)}, f)


def raw_yolo_cfg(cfg_path, out_path):
    """Copies the cfg, adding `thresh=0` and `nms_threshold=0` to every [yolo].

    OpenCV's region layer otherwise zeroes class scores under its threshold
    and runs its own NMS: with both at 0 it returns every candidate.
    """
    out = []
    with open(cfg_path) as f:
        for line in f:
            out.append(line)
            if line.strip() == "[yolo]":
                out.append("thresh=0\nnms_threshold=0\n")
    with open(out_path, "w") as f:
        f.writelines(out)


def load_net(cfg_path, weights_path, work_dir, fusion):
    """Reads the Darknet net on the CPU with Winograd off (exact f32 convs)."""
    cfg = os.path.join(work_dir, "oracle-raw.cfg")
    raw_yolo_cfg(cfg_path, cfg)
    net = cv2.dnn.readNetFromDarknet(cfg, weights_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableWinograd(False)
    net.enableFusion(fusion)
    return net
