"""The HTTP layer: FastAPI app, pydantic protocol models, errors, auth and metrics. Never imports llama_cpp."""

from streamserve.api.app import create_app

__all__ = ["create_app"]
