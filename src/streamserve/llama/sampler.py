"""Sampler: one llama.cpp sampler chain for one sequence."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp.llama_cpp as lc
import numpy as np
import numpy.typing as npt

from streamserve.llama import gilfree
from streamserve.llama.context import Context

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
"""``llama_token_data`` as a numpy record: what ``llama_sampler_sample`` fills from a logits row."""


class Sampler:
    """A per-sequence chain: logit bias, penalties, top-k, top-p, min-p, temperature, then a draw.

    Temperature 0 is greedy. ``sample`` already accepts the token into the chain (penalties see it);
    never accept it again. Greedy without penalties has no state to accept, and its chain only adds
    the biases and takes the first largest logit: that is computed in place with numpy, not by copying
    every token into llama.cpp's candidate array (a millisecond a token at Gemma's 262k vocabulary).
    """

    def __init__(
        self,
        n_vocab: int,
        *,
        temperature: float,
        top_p: float,
        top_k: int,
        min_p: float,
        seed: int,
        presence_penalty: float,
        frequency_penalty: float,
        repetition_penalty: float,
        logit_bias: Sequence[tuple[int, float]],
        penalty_last_n: int = 64,
    ) -> None:
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        self.ptr = lc.llama_sampler_chain_init(params)
        penalties = bool(presence_penalty or frequency_penalty or repetition_penalty != 1.0)
        self._argmax = temperature <= 0.0 and not penalties
        self._bias_ids = np.array([token for token, _ in logit_bias], dtype=np.int64)
        self._bias = np.array([bias for _, bias in logit_bias], dtype=np.float32)

        def add(sampler: object) -> None:
            lc.llama_sampler_chain_add(self.ptr, sampler)

        if logit_bias:
            biases = (lc.llama_logit_bias * len(logit_bias))(
                *(lc.llama_logit_bias(token, bias) for token, bias in logit_bias)
            )
            add(lc.llama_sampler_init_logit_bias(n_vocab, len(logit_bias), biases))
        if penalties:
            add(
                lc.llama_sampler_init_penalties(
                    n_vocab, penalty_last_n, repetition_penalty, frequency_penalty, presence_penalty
                )
            )
        if temperature <= 0.0:
            add(lc.llama_sampler_init_greedy())
            return
        if top_k > 0:
            add(lc.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            add(lc.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            add(lc.llama_sampler_init_min_p(min_p, 1))
        add(lc.llama_sampler_init_temp(temperature))
        add(lc.llama_sampler_init_dist(ctypes.c_uint32(seed).value))

    def sample(self, context: Context, row: int) -> int:
        """Draw the next token from batch row ``row``'s logits, and accept it."""
        if self._argmax:
            return self._greedy(context.logits_view(row))
        return int(gilfree.sampler_sample(self.ptr, context.ptr, row))

    def _greedy(self, logits: npt.NDArray[np.float32]) -> int:
        """The greedy chain's choice: the first token with the largest logit, biases added (in place)."""
        if self._bias.size:
            np.add.at(logits, self._bias_ids, self._bias)
        return int(np.argmax(logits))

    def sample_logits(self, logits: npt.NDArray[np.float32]) -> int:
        """Draw the next token from a logits array kept outside the context, and accept it.

        The same steps as ``llama_sampler_sample`` over a batch row (every token with its logit, the
        chain applied, the selected token accepted), so a row's logits saved earlier give the token
        sampling that row would have given, bit for bit.
        """
        if self._argmax:
            return self._greedy(logits.copy() if self._bias.size else logits)
        data = np.zeros(logits.size, dtype=_TOKEN_DATA)
        data["id"] = np.arange(logits.size, dtype=np.int32)
        data["logit"] = logits
        array = lc.llama_token_data_array(data.ctypes.data_as(ctypes.POINTER(lc.llama_token_data)), logits.size,
                                          -1, False)
        gilfree.sampler_apply(self.ptr, ctypes.addressof(array))
        if not 0 <= array.selected < array.size:
            raise RuntimeError("the sampler chain selected no token")
        token = int(ctypes.cast(array.data, ctypes.POINTER(lc.llama_token_data))[array.selected].id)
        gilfree.sampler_accept(self.ptr, token)
        return token

    def close(self) -> None:
        """Free the chain and every sampler in it."""
        if self.ptr:
            lc.llama_sampler_free(self.ptr)
            self.ptr = None
