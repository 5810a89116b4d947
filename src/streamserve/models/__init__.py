"""The models a server serves: found by name or path, listed in a catalog, loaded on demand within a memory
budget by the registry."""

from streamserve.models.builtin import BUILTIN_MODELS, DEFAULT_MODEL, BuiltinModel, cache_dir, resolve_model
from streamserve.models.catalog import Catalog, CatalogError, ModelSpec, build_catalog, keep_alive_seconds
from streamserve.models.errors import LoadFailed, ModelBusy, ModelUnavailable, NoRoom, UnknownModel
from streamserve.models.memory import default_budget, estimate, format_size, parse_size, resident_memory
from streamserve.models.registry import Loader, ModelRegistry, ModelState, Slot

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "BuiltinModel",
    "Catalog",
    "CatalogError",
    "LoadFailed",
    "Loader",
    "ModelBusy",
    "ModelRegistry",
    "ModelSpec",
    "ModelState",
    "ModelUnavailable",
    "NoRoom",
    "Slot",
    "UnknownModel",
    "build_catalog",
    "cache_dir",
    "default_budget",
    "estimate",
    "format_size",
    "keep_alive_seconds",
    "parse_size",
    "resident_memory",
    "resolve_model",
]
