"""Which compute backends this installation can use: ``fastmlp.backends()`` and
``fastmlp.cuda_info()``.

The CUDA backend is a separate compiled module, ``fastmlp._cuda``, built only where the CUDA
compiler was found at install time (CMake option ``FASTMLP_CUDA``). It is imported here on first
use, never by ``import fastmlp``, so a machine without a GPU, a driver or the module notices
nothing.
"""
from __future__ import annotations

import importlib

_probe = None  # (module or None, reason or "") once probed: the answer cannot change in a process


def _load_cuda():
    global _probe
    if _probe is None:
        try:
            mod = importlib.import_module("fastmlp._cuda")
        except ImportError as e:
            _probe = (None, "this fastmlp was built without its CUDA backend (no CUDA compiler "
                            f"at install time, or FASTMLP_CUDA=OFF; {e})")
        else:
            count = mod.device_count()
            _probe = (mod, "" if count > 0 else mod.unavailable_reason())
    return _probe


def backends() -> list[str]:
    """The backends usable here: always ``"cpu"``, plus ``"cuda"`` when the CUDA backend is
    built and a GPU with a working driver answers (see ``cuda_info()`` for why not)."""
    mod, reason = _load_cuda()
    return ["cpu", "cuda"] if mod is not None and not reason else ["cpu"]


def cuda_info() -> dict:
    """The CUDA backend's state: ``built`` (the module exists), ``available`` (a GPU answers),
    ``reason`` (why not, or ""), ``device`` (the GPU's name), ``compute_capability`` (e.g. 90),
    ``architectures`` (what the build compiled for) and ``runtime_version`` (e.g. 13000)."""
    mod, reason = _load_cuda()
    if mod is None:
        return {"built": False, "available": False, "reason": reason, "device": "",
                "compute_capability": 0, "architectures": "", "runtime_version": 0}
    return {"built": True, "available": not reason, "reason": reason,
            "device": mod.device_name(), "compute_capability": mod.compute_capability(),
            "architectures": mod.architectures, "runtime_version": mod.runtime_version}


def require_cuda(what: str):
    """fastmlp._cuda when a GPU is usable; otherwise RuntimeError naming `what` and the reason."""
    mod, reason = _load_cuda()
    if mod is None or reason:
        raise RuntimeError(f"{what}: the CUDA backend is not usable here: {reason}. Use "
                           f"device='cpu' (fastmlp.backends() lists what this machine has).")
    return mod


def check_device(device, name: str = "device") -> str:
    """Validates a device name: "cpu" or "cuda" (the latter must be usable)."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"{name}: expected 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        require_cuda(f"{name}='cuda'")
    return device
