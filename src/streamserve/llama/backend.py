"""One-time llama.cpp backend initialisation, with its log routed to Python logging."""

from __future__ import annotations

import ctypes
import logging
import platform
import threading

import llama_cpp
import llama_cpp.llama_cpp as lc

logger = logging.getLogger("streamserve.llama")

_lock = threading.Lock()
_initialised = False


@lc.llama_log_callback  # type: ignore[untyped-decorator]
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        logger.debug(message)


def init_backend() -> None:
    """Initialise llama.cpp once per process and send its chatter to the debug log.

    The module-level ``_log_callback`` keeps the ctypes callback alive: a collected callback segfaults.
    """
    global _initialised
    with _lock:
        if _initialised:
            return
        lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
        lc.llama_backend_init()
        _initialised = True


def build_identity() -> str:
    """This CPU and this llama.cpp: the CPU's model name, the bindings' version, the features llama.cpp uses here.

    Two processes with the same identity run the same kernels at about the same speed, so what a probe measured
    in one holds in the other.
    """
    init_backend()
    features = lc.llama_print_system_info().decode("utf-8", errors="replace").strip()
    return f"{_cpu_name()}; llama-cpp-python {llama_cpp.__version__}; {features}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
