"""OpenCV DNN baseline for the `detect` bench: timed net.forward on fixed blobs.

usage: opencv_detect.py CFG WEIGHTS SIZE THREADS BATCH:ITERS [BATCH:ITERS...]

Loads the Darknet CFG/WEIGHTS with OpenCV DNN as a user would run it (CPU,
default settings: Winograd and fusion on), sets cv2.setNumThreads(THREADS),
and for each BATCH:ITERS feeds a seeded uniform [0,1) blob of shape
(BATCH, 3, SIZE, SIZE): one warm-up forward, then ITERS timed forwards of all
output layers ([yolo] decode + OpenCV's in-layer NMS included). Prints one
JSON line per batch: {"batch", "iterations", "seconds_per_batch"}.
"""

import json
import sys
import time

import cv2
import numpy as np


def main(argv):
    if len(argv) < 6:
        raise SystemExit(__doc__)
    cfg, weights = argv[1], argv[2]
    size, threads = int(argv[3]), int(argv[4])
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    outputs = net.getUnconnectedOutLayersNames()
    rng = np.random.default_rng(0)
    for spec in argv[5:]:
        batch, iterations = (int(v) for v in spec.split(":"))
        blob = rng.random((batch, 3, size, size), dtype=np.float32)
        net.setInput(blob)
        net.forward(outputs)
        start = time.perf_counter()
        for _ in range(iterations):
            net.setInput(blob)
            net.forward(outputs)
        elapsed = time.perf_counter() - start
        print(json.dumps({"batch": batch, "iterations": iterations,
                          "seconds_per_batch": elapsed / iterations}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
