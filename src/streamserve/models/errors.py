"""Why a request's model cannot serve it right now (the API layer renders each in its envelope)."""

from __future__ import annotations


class ModelUnavailable(Exception):
    """Base: the model named ``model`` cannot serve this request."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class UnknownModel(ModelUnavailable):
    """No servable model has this name."""


class LoadFailed(ModelUnavailable):
    """Loading the model failed (a bad file, not enough memory for llama.cpp): every waiting request gets this."""


class NoRoom(ModelUnavailable):
    """The model does not fit in the memory budget: ``ever`` False while busy models hold the room (retry
    later), True when it would not fit even alone."""

    def __init__(self, model: str, message: str, *, ever: bool) -> None:
        super().__init__(model, message)
        self.ever = ever


class ModelBusy(ModelUnavailable):
    """An explicit unload of a model with requests in flight."""
