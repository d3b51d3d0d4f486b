"""The reckoning HTTP service: encode facts once, ask many questions (FastAPI, Redis or embedded store)."""

from service.client import AsyncReckoningClient, ReckoningAPIError, ReckoningClient

__all__ = ["AsyncReckoningClient", "ReckoningAPIError", "ReckoningClient"]
