"""The shape of a GGUF model read before loading it: what its weights, KV cache and outputs will take."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import llama_cpp.llama_cpp as lc

from streamserve.llama.backend import init_backend
from streamserve.llama.model import ModelLoadError

_F16_BYTES = 2
_F32_BYTES = 4
_FIXED_OVERHEAD = 32 * 2**20
_BYTES_PER_VOCAB_ENTRY = 400
"""What a loaded model takes beyond weights, KV and logits grows with its vocabulary (the grammar engine's token
table, token texts, compute buffers): fitted on the two shipped models (49k and 262k entries), measured
resident after loading at 160-164 and 391-431 MiB against 191 and 417 MiB counted."""


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The sizes a memory budget needs, read from a GGUF's header and vocabulary (no weights loaded)."""

    file_bytes: int
    n_layer: int
    n_vocab: int
    kv_bytes_per_token: int
    """K and V of one token in every layer, in the default f16 cache."""

    def memory(self, kv_tokens: int, logit_rows: int) -> int:
        """Bytes a context holding ``kv_tokens`` in its KV cache takes with the weights: the weights (mapped
        from the file), the whole KV cache, ``logit_rows`` rows of f32 logits, and tables that grow with the
        vocabulary."""
        return (self.file_bytes + kv_tokens * self.kv_bytes_per_token + logit_rows * self.n_vocab * _F32_BYTES
                + _FIXED_OVERHEAD + self.n_vocab * _BYTES_PER_VOCAB_ENTRY)


def read_shape(path: Path) -> ModelShape:
    """Read ``path``'s hyperparameters with a vocabulary-only load (fast: no tensor is read)."""
    init_backend()
    params = lc.llama_model_default_params()
    params.vocab_only = True
    ptr = lc.llama_model_load_from_file(str(path).encode(), params)
    if not ptr:
        raise ModelLoadError(f"llama.cpp could not read {path}")
    try:
        arch = _meta(ptr, "general.architecture") or ""
        n_layer = _int(_meta(ptr, f"{arch}.block_count"))
        n_embd = _int(_meta(ptr, f"{arch}.embedding_length"))
        n_head = max(1, _int(_meta(ptr, f"{arch}.attention.head_count")))
        n_head_kv = _int(_meta(ptr, f"{arch}.attention.head_count_kv")) or n_head
        head_k = _int(_meta(ptr, f"{arch}.attention.key_length")) or n_embd // n_head
        head_v = _int(_meta(ptr, f"{arch}.attention.value_length")) or n_embd // n_head
        n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(ptr))
    finally:
        lc.llama_model_free(ptr)
    per_token = n_layer * n_head_kv * (head_k + head_v) * _F16_BYTES
    return ModelShape(path.stat().st_size, n_layer, n_vocab, per_token)


def _meta(ptr: lc.llama_model_p, key: str) -> str | None:
    buf = ctypes.create_string_buffer(256)
    n = lc.llama_model_meta_val_str(ptr, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", errors="replace") if n >= 0 else None


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0
