"""Model: a loaded GGUF file, its vocabulary, tokenizer and chat-template metadata."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import llama_cpp.llama_cpp as lc

from streamserve.llama import gilfree
from streamserve.llama.backend import init_backend


@dataclass(frozen=True, slots=True)
class KernelChoice:
    """How the model is loaded: with llama.cpp's extra CPU buffer types or without, and why."""

    extra_bufts: bool
    available: tuple[str, ...]
    reason: str

    def describe(self) -> str:
        """One line for the startup log."""
        state = "on" if self.extra_bufts else "off"
        names = ", ".join(self.available) or "none"
        return f"CPU extra buffer types ({names}): {state}, {self.reason}"


class ModelLoadError(RuntimeError):
    """The GGUF file could not be loaded."""


class Model:
    """A llama.cpp model loaded from a GGUF file (weights memory-mapped, CPU only).

    ``extra_bufts`` lets llama.cpp place weights in its CPU backend's extra buffer types (AMX, repacked
    layouts). It has no default: on some AMX CPUs those kernels segfault, so callers load through
    ``llama.kernels.load_model``, which decides whether that is safe on this machine.

    It also implements the prompting layer's ``Tokenizer`` protocol: tokenize, raw token bytes,
    end-of-generation test, BOS/EOS texts and the control-token texts user input must not inject.
    """

    def __init__(self, path: Path, *, extra_bufts: bool, kernels: KernelChoice | None = None) -> None:
        init_backend()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_extra_bufts = extra_bufts
        ptr = lc.llama_model_load_from_file(str(path).encode(), params)
        if not ptr:
            raise ModelLoadError(f"llama.cpp could not load {path}")
        self.path = path
        self.extra_bufts = extra_bufts
        self.kernels = kernels  # how ``kernels.load_model`` chose the CPU kernels (None: loaded directly)
        self.ptr = ptr
        self.vocab = lc.llama_model_get_vocab(ptr)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = lc.llama_model_n_ctx_train(ptr)
        self.architecture = self.metadata("general.architecture") or "unknown"
        self.name = self.metadata("general.name") or path.stem
        template = lc.llama_model_chat_template(ptr, None)
        self.chat_template: str | None = template.decode("utf-8") if template else None
        self._add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self._bos_text = self._special_text(lc.llama_vocab_bos(self.vocab))
        self._eos_text = self._special_text(lc.llama_vocab_eos(self.vocab))
        self._pieces: dict[int, bytes] = {}
        self._pieces_lock = threading.Lock()
        self._control_texts: frozenset[str] | None = None
        self._max_token_bytes: int | None = None

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None if the file lacks the key."""
        buf = ctypes.create_string_buffer(4096)
        n = lc.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    @property
    def add_bos(self) -> bool:
        """Whether prompts should start with a BOS token."""
        return self._add_bos

    @property
    def bos_text(self) -> str:
        """The BOS token's text."""
        return self._bos_text

    @property
    def eos_text(self) -> str:
        """The EOS token's text."""
        return self._eos_text

    @property
    def control_texts(self) -> frozenset[str]:
        """Texts of all control tokens, computed on first use (one pass over the vocabulary)."""
        if self._control_texts is None:
            texts = set()
            for token in range(self.n_vocab):
                if lc.llama_vocab_get_attr(self.vocab, token) & lc.LLAMA_TOKEN_ATTR_CONTROL:
                    text = self._special_text(token)
                    if text:
                        texts.add(text)
            self._control_texts = frozenset(texts)
        return self._control_texts

    @property
    def max_token_bytes(self) -> int:
        """An upper bound on any token's length in bytes, so a text of n bytes has at least n / this tokens.

        Read from the vocabulary's stored token texts, which are never shorter than the pieces they decode
        to (byte-level BPE and SentencePiece both write a space as a longer character); computed once.
        """
        if self._max_token_bytes is None:
            get_text = lc.llama_vocab_get_text
            self._max_token_bytes = max(len(get_text(self.vocab, token) or b"") for token in range(self.n_vocab))
        return max(1, self._max_token_bytes)

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """Token ids of ``text``, growing the buffer when the first guess is too small."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token's piece; control tokens give b"" (they are never text), and so do ids
        outside the vocabulary (llama.cpp would abort the process on them; requests are refused for them
        where they are validated)."""
        if not 0 <= token_id < self.n_vocab:
            return b""
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._piece(token_id, special=False)
            with self._pieces_lock:
                self._pieces[token_id] = piece
        return piece

    def is_eog(self, token_id: int) -> bool:
        """Whether the token ends generation: EOS, end-of-turn and the like (never an id outside the vocabulary)."""
        return 0 <= token_id < self.n_vocab and bool(gilfree.vocab_is_eog(self.vocab, token_id))

    def _special_text(self, token_id: int) -> str:
        if token_id < 0:
            return ""
        return self._piece(token_id, special=True).decode("utf-8", errors="replace")

    def _piece(self, token_id: int, *, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        return buf.raw[:n]

    def close(self) -> None:
        """Free the model's memory; the object is unusable afterwards."""
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
