"""Who makes a change: recorded on every audit event."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

Source = Literal["api", "cli"]


@dataclass(frozen=True, slots=True)
class Actor:
    """A key (through the admin API) or a person at the CLI (by their login name)."""

    name: str
    source: Source
    key_id: str | None = None
    ip: str | None = None
    team_id: str | None = None


def cli_actor() -> Actor:
    """The person running a CLI command, as their operating-system login names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): still say it came from the CLI
        user = "unknown"
    return Actor(name=f"cli:{user}", source="cli")
