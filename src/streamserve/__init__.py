"""streamserve: an OpenAI-compatible LLM inference server built for streaming."""

__version__ = "0.1.0"

__all__ = ["__version__"]
