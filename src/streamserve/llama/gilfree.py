"""Short llama.cpp calls made while holding the GIL.

ctypes releases the GIL around every foreign call. For calls of a few microseconds made once per
token (sampling, end-of-generation checks) that turns into a convoy: each return must win the GIL
back from the event-loop thread, which can take a whole switch interval. These bindings load the
same library through ``ctypes.PyDLL``, which keeps the GIL, so the engine thread pays one GIL hand-off
per step (around ``llama_decode``), not one per token.
"""

from __future__ import annotations

import ctypes

import llama_cpp.llama_cpp as lc

_lib = ctypes.PyDLL(lc._lib._name)

sampler_sample = _lib.llama_sampler_sample
sampler_sample.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
sampler_sample.restype = ctypes.c_int32

vocab_is_eog = _lib.llama_vocab_is_eog
vocab_is_eog.argtypes = [ctypes.c_void_p, ctypes.c_int32]
vocab_is_eog.restype = ctypes.c_bool

sampler_apply = _lib.llama_sampler_apply
sampler_apply.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
sampler_apply.restype = None

sampler_accept = _lib.llama_sampler_accept
sampler_accept.argtypes = [ctypes.c_void_p, ctypes.c_int32]
sampler_accept.restype = None

get_logits_ith = _lib.llama_get_logits_ith
get_logits_ith.argtypes = [ctypes.c_void_p, ctypes.c_int32]
get_logits_ith.restype = ctypes.POINTER(ctypes.c_float)

__all__ = ["get_logits_ith", "sampler_accept", "sampler_apply", "sampler_sample", "vocab_is_eog"]
