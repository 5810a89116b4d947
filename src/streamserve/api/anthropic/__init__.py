"""Anthropic's Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) over the one request pipeline."""

from streamserve.api.anthropic.errors import anthropic_envelope
from streamserve.api.anthropic.routes import MESSAGES_PREFIX, router

__all__ = ["MESSAGES_PREFIX", "anthropic_envelope", "router"]
