"""fastmlp: fused, multi-threaded C++ kernels for training multilayer perceptrons.

Training: ``fastmlp.MLP`` and ``fastmlp.train`` (whole training steps in C++), with
``fastmlp.schedules``, ``fastmlp.callbacks`` and ``fastmlp.initializers``; checkpoints and exact
resumption through ``train(checkpoint=, resume=)`` and ``fastmlp.load_checkpoint``.
Kernels: ``fastmlp.kernels`` (the fast kernels) and ``fastmlp.reference`` (their NumPy
specification, same names and signatures); ``fastmlp.cuda`` (their GPU twins) and
``train(device="cuda")`` where ``fastmlp.backends()`` lists "cuda".
"""
from __future__ import annotations

import numbers

import numpy as np

from . import (_core, callbacks, cuda, datasets, diagnostics, idx, initializers, kernels,
               reference, schedules)
from .backends import backends, cuda_info
from .checkpoint import Checkpoint, load_checkpoint
from .diagnostics import DiagnosticWarning, diagnose
from .io import load, save
from .onnx_export import export_onnx  # imports onnx only when called
from .model import MLP, Layer
from .pretrain import pretrain_autoencoder
from .training import OptimizerState, evaluate, train

__version__ = "0.1.0"
_MAX_THREADS = 0xFFFF  # the thread pool's limit (cpp/threads.cpp)
__all__ = ["MLP", "Layer", "train", "evaluate", "OptimizerState", "load_checkpoint", "Checkpoint",
           "diagnose", "DiagnosticWarning", "pretrain_autoencoder", "save", "load",
           "export_onnx", "callbacks", "datasets", "idx", "diagnostics", "schedules",
           "initializers", "kernels", "reference", "cuda", "backends", "cuda_info", "cpu_info",
           "set_num_threads", "get_num_threads", "__version__"]


def cpu_info() -> dict:
    """Which kernel path is active and what the CPU supports.

    ``isa`` is ``"avx2_fma"`` or ``"portable"``; ``FASTMLP_ISA=portable`` forces the portable path.
    ``avx512_gemm``: the AVX2 path's GEMM also runs an AVX-512 micro-kernel (CPUs with AVX-512F;
    ``FASTMLP_AVX512=0`` turns it off). Results are bitwise the same either way.
    """
    return {"isa": _core.active_isa(), "avx2_fma_supported": _core.cpu_has_avx2_fma(),
            "avx512_gemm": _core.active_isa() == "avx2_fma" and _core.gemm_avx512_enabled(),
            "num_threads": _core.num_threads()}


def set_num_threads(n: int) -> None:
    """Threads the kernels use (default: ``FASTMLP_NUM_THREADS`` or the number of cores).

    Results are bitwise identical whatever ``n`` is.
    """
    # NumPy integers count as integers; bools do not. The pool takes at most 65535 threads (its
    # job words hold 16-bit counts), and _core's int argument could not even take 2**31.
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or \
            not 1 <= n <= _MAX_THREADS:
        raise ValueError(f"n: expected an integer >= 1 (threads, at most {_MAX_THREADS}), "
                         f"got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the kernels use now (see set_num_threads)."""
    return _core.num_threads()
