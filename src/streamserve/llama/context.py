"""Context: a llama_context with its KV memory, partitioned into per-sequence lanes."""

from __future__ import annotations

import llama_cpp.llama_cpp as lc
import numpy as np
import numpy.typing as npt

from streamserve.llama import gilfree
from streamserve.llama.batch import Batch
from streamserve.llama.model import Model


class DecodeError(RuntimeError):
    """llama_decode failed; ``status`` 1 means the KV cache had no room, negative is fatal for the batch."""

    def __init__(self, status: int) -> None:
        super().__init__(f"llama_decode failed with status {status}")
        self.status = status


class Context:
    """A llama.cpp context sized for ``n_seq_max`` lanes of ``n_ctx_seq`` tokens each."""

    def __init__(self, model: Model, *, n_ctx_seq: int, n_seq_max: int, n_batch: int, n_threads: int) -> None:
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx_seq * n_seq_max
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.no_perf = True
        params.swa_full = True
        params.kv_unified = False
        ptr = lc.llama_init_from_model(model.ptr, params)
        if not ptr:
            raise RuntimeError("llama.cpp could not create a context")
        self.ptr = ptr
        self.model = model
        self.n_seq_max = n_seq_max
        self.n_ctx_seq = n_ctx_seq
        self.n_batch = n_batch
        self.memory = lc.llama_get_memory(ptr)
        self._n_vocab = model.n_vocab

    def decode(self, batch: Batch) -> None:
        """Run the model over the batch; raise DecodeError on failure."""
        status = lc.llama_decode(self.ptr, batch.raw)
        if status != 0:
            raise DecodeError(status)

    def logits(self, row: int) -> npt.NDArray[np.float32]:
        """A copy of the logits of batch row ``row`` (the next decode overwrites the originals)."""
        ptr = gilfree.get_logits_ith(self.ptr, row)
        if not ptr:
            raise ValueError(f"no logits for batch row {row}")
        view = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        return view.copy()

    def logits_view(self, row: int) -> npt.NDArray[np.float32]:
        """Batch row ``row``'s logits in place: writes reach the sampler chain; valid until the next decode."""
        ptr = gilfree.get_logits_ith(self.ptr, row)
        if not ptr:
            raise ValueError(f"no logits for batch row {row}")
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def remove(self, seq_id: int, start: int = -1, end: int = -1) -> bool:
        """Drop lane ``seq_id``'s tokens at positions [start, end) (-1: open end); False if it cannot."""
        return bool(lc.llama_memory_seq_rm(self.memory, seq_id, start, end))

    def copy(self, source: int, target: int) -> None:
        """Make lane ``target`` a copy of lane ``source`` (all its positions); the data moves at the next decode."""
        if source == target or not (0 <= source < self.n_seq_max and 0 <= target < self.n_seq_max):
            raise ValueError(f"cannot copy lane {source} to lane {target}")
        lc.llama_memory_seq_cp(self.memory, source, target, -1, -1)

    def clear(self) -> None:
        """Empty every lane."""
        lc.llama_memory_clear(self.memory, True)

    def close(self) -> None:
        """Free the context."""
        if self.ptr:
            lc.llama_free(self.ptr)
            self.ptr = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
