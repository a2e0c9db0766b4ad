"""`llmops serve`: check that the bind is safe, build the services, run uvicorn on one worker."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from llmops.settings import Settings


class ServeError(Exception):
    """The server must not or cannot start; the message is one readable line."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, reload: Callable[[], Settings] | None = None) -> None:
    """Run until SIGTERM; ``reload`` resolves the settings again on SIGHUP (default: the same file)."""
    import uvicorn

    from llmops.server.app import LLMOpsApp
    from llmops.services import build_services

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    open_allowed = is_loopback(settings.host)
    services = build_services(settings, open_allowed=open_allowed, reload=reload)
    if not open_allowed and services.store.key_repository.count_active() == 0:
        services.store.close()
        raise ServeError(
            f"refusing to listen on {settings.host} with no API keys: create one with "
            "`llmops keys create --name NAME --scope admin`, or bind 127.0.0.1"
        )
    config = uvicorn.Config(
        LLMOpsApp(services),
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    uvicorn.Server(config).run()
