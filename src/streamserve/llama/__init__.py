"""The ctypes boundary: the only package that imports ``llama_cpp`` (its low-level API)."""

from streamserve.llama.backend import build_identity
from streamserve.llama.batch import Batch
from streamserve.llama.context import Context, DecodeError
from streamserve.llama.guidance import guidance_tokenizer
from streamserve.llama.kernels import KernelMode, ProbeSettings, choose_kernels, load_model
from streamserve.llama.model import KernelChoice, Model, ModelLoadError
from streamserve.llama.sampler import Sampler
from streamserve.llama.shape import ModelShape, read_shape

__all__ = [
    "Batch",
    "Context",
    "DecodeError",
    "KernelChoice",
    "KernelMode",
    "Model",
    "ModelLoadError",
    "ModelShape",
    "ProbeSettings",
    "Sampler",
    "build_identity",
    "choose_kernels",
    "guidance_tokenizer",
    "load_model",
    "read_shape",
]
