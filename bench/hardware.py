"""What the machine can do, measured in the same run: matmul peaks, FLOP counts, memory, device.

FLOP convention (stated in every report): a style-transfer step is one forward pass of the
VGG16 convolutions up to the deepest layer the loss taps, plus the gradient with respect to
the *input image* only (the weights are frozen, so no weight gradients are computed).  The
input gradient of a convolution costs as much as its forward, so a step counts
2 x forward conv FLOPs, with 2*H*W*k^2*Cin*Cout per convolution forward.  Gram matrices,
ReLU, pooling and the optimiser are not counted, so the achieved figure is a slight
underestimate.  (Training convention would be 3x: forward + input + weight gradients.)
"""

from __future__ import annotations

import os
import platform
import resource
import time

import numpy as np
import tensorflow as tf

from models.vgg16 import VGG16_BLOCKS

STEP_FLOP_MULTIPLIER = 2
FLOP_CONVENTION = (
    "step = forward + gradient w.r.t. the input image = 2 x forward conv FLOPs; "
    "forward conv = 2*H*W*9*Cin*Cout summed over the convs up to the deepest tapped layer; "
    "Gram/ReLU/pool/optimiser not counted"
)


def conv_flops(height: int, width: int, last_layer: str = "block5_conv2") -> int:
    """Forward FLOPs of the VGG16 convolutions from the input through `last_layer`."""
    total, cin, h, w = 0, 3, height, width
    for block, n_convs, filters in VGG16_BLOCKS:
        for i in range(1, n_convs + 1):
            total += 2 * h * w * 9 * cin * filters
            cin = filters
            if f"block{block}_conv{i}" == last_layer:
                return total
        h, w = h // 2, w // 2
    return total


def step_flops(height: int, width: int, batch: int = 1, last_layer: str = "block5_conv2") -> int:
    """FLOPs of one optimisation step under `FLOP_CONVENTION`."""
    return STEP_FLOP_MULTIPLIER * batch * conv_flops(height, width, last_layer)


def matmul_peak(dtype: tf.DType, n: int | None = None, repeats: int = 5) -> dict:
    """Best-of-`repeats` GFLOP/s of an n x n `tf.matmul` (n: 2048 on CPU, 8192 on GPU).

    Returns `{"gflops": None, "error": ...}` when the dtype is not supported here.
    """
    n = n or (8192 if tf.config.list_physical_devices("GPU") else 2048)
    try:
        a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
        b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype)
        float(tf.reduce_sum(tf.cast(tf.matmul(a, b)[0, :1], tf.float32)))  # warm-up, forces completion
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            float(tf.reduce_sum(tf.cast(tf.matmul(a, b)[0, :1], tf.float32)))
            best = min(best, time.perf_counter() - start)
    except (tf.errors.OpError, TypeError, ValueError) as exc:
        return {"dtype": dtype.name, "n": n, "gflops": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"dtype": dtype.name, "n": n, "gflops": 2.0 * n**3 / best / 1e9, "best_seconds": best}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if platform.system() == "Darwin" else peak / 1024.0


def gpu_peak_mb() -> float | None:
    """Peak GPU memory TensorFlow allocated on GPU:0, or None without a GPU."""
    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict:
    """Everything needed to read the numbers later: software, CPU, GPUs, load."""
    import keras
    import scipy

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "gpus": [d.name for d in gpus],
        "gpu_details": [tf.config.experimental.get_device_details(d) for d in gpus],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
