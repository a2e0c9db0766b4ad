"""Identifiers that sort by creation time (48-bit milliseconds + 80 random bits, hex)."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 32-character hex id; ids made later sort after earlier ones (to the millisecond)."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
