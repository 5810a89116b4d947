"""CPU kernels: whether llama.cpp may use its extra buffer types (AMX, repacked weights), decided by a probe.

On some CPUs (Intel Xeons reporting AMX under virtualization) the AMX matmul kernels of a native build
segfault on the first decode of more than one token (ggml-org/llama.cpp#20824). A crash there takes the
whole server down, so in ``auto`` mode a short-lived child process first proves that a multi-token,
multi-sequence decode works with the same model and settings; if the child dies or fails, the model is
loaded without extra buffer types (plain CPU kernels: correct output, prompt reading somewhat slower).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import llama_cpp.llama_cpp as lc

from streamserve.llama.backend import init_backend
from streamserve.llama.model import KernelChoice, Model

logger = logging.getLogger("streamserve.llama")

KernelMode = Literal["auto", "on", "off"]
PROBE_TIMEOUT_S = 60.0
_GGML_BACKEND_DEVICE_TYPE_CPU = 0


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """What the probe decodes with: the server's batch size and threads (the KV size does not matter)."""

    n_batch: int
    n_threads: int


def extra_buffer_types() -> tuple[str, ...]:
    """Names of the extra buffer types llama.cpp's CPU backend offers here (``AMX``, ``CPU_REPACK``…)."""
    init_backend()
    libdir = Path(lc._lib._name).parent
    ggml = ctypes.CDLL(str(libdir / "libggml.so"))
    base = ctypes.CDLL(str(libdir / "libggml-base.so"))
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    base.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    base.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    base.ggml_backend_buft_name.restype = ctypes.c_char_p
    base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    device = ggml.ggml_backend_dev_by_type(_GGML_BACKEND_DEVICE_TYPE_CPU)
    if not device:
        return ()
    address = base.ggml_backend_reg_get_proc_address(
        ggml.ggml_backend_dev_backend_reg(device), b"ggml_backend_dev_get_extra_bufts"
    )
    if not address:
        return ()
    get_extra = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    types = get_extra(device)
    names = []
    i = 0
    while types and types[i]:
        names.append(base.ggml_backend_buft_name(types[i]).decode())
        i += 1
    return tuple(names)


DEFAULT_PROBE = ProbeSettings(n_batch=512, n_threads=2)


def load_model(path: Path, mode: KernelMode = "auto", settings: ProbeSettings = DEFAULT_PROBE) -> Model:
    """Load a model with the CPU kernels ``choose_kernels`` finds safe here (``model.kernels`` says which)."""
    choice = choose_kernels(path, mode, settings)
    return Model(path, extra_bufts=choice.extra_bufts, kernels=choice)


@functools.lru_cache(maxsize=8)
def choose_kernels(path: Path, mode: KernelMode, settings: ProbeSettings) -> KernelChoice:
    """Decide, once per process for a model and settings, whether to load with extra buffer types.

    ``on`` and ``off`` force the choice; ``auto`` runs the probe child when there is anything to probe.
    """
    available = extra_buffer_types()
    if mode == "on":
        return KernelChoice(True, available, "forced by --extra-bufts on")
    if mode == "off":
        return KernelChoice(False, available, "forced by --extra-bufts off")
    if not available:
        return KernelChoice(False, available, "nothing to probe")
    failure = run_probe(path, settings)
    if failure is None:
        return KernelChoice(True, available, "a probe decode passed")
    logger.warning(
        "CPU kernel probe: a multi-token decode with llama.cpp's extra buffer types (%s) %s; loading the "
        "model without them (plain CPU kernels: correct output, prompt reading may be somewhat slower; "
        "--extra-bufts on forces them)",
        ", ".join(available),
        failure,
    )
    return KernelChoice(False, available, f"the probe {failure}")


def run_probe(path: Path, settings: ProbeSettings, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Run the probe child; None if it decoded fine, else what went wrong (its signal, exit code or timeout)."""
    command = [
        sys.executable,
        "-m",
        "streamserve.llama.probe",
        str(path),
        str(settings.n_batch),
        str(settings.n_threads),
    ]
    # Passive OpenMP waits: the probe's few decodes need no spinning threads, and spinning makes it
    # many times slower when other processes share the cores.
    env = {"OMP_WAIT_POLICY": "passive", **os.environ}
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:.0f} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"crashed the probe process ({name})"
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return f"failed in the probe process (exit {done.returncode}: {tail[0]})"
