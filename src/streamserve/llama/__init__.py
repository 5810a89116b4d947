"""The ctypes boundary: the only package that imports ``llama_cpp`` (its low-level API)."""

from streamserve.llama.batch import Batch
from streamserve.llama.context import Context, DecodeError
from streamserve.llama.model import Model, ModelLoadError
from streamserve.llama.sampler import Sampler

__all__ = ["Batch", "Context", "DecodeError", "Model", "ModelLoadError", "Sampler"]
