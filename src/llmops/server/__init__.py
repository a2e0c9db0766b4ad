"""HTTP layer: the ASGI app (lean /v1 handlers + FastAPI admin API) and the `serve` runner."""
