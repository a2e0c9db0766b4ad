"""Identifiers that sort by creation time (48-bit milliseconds + 80 random bits, hex)."""

from __future__ import annotations

import random
import time


def new_id() -> str:
    """A 32-character hex id; ids made later sort after earlier ones (to the millisecond).

    The 80 random bits need to be unique, not secret: the interpreter's generator (seeded from the
    OS, reseeded in forked children) costs a sixth of an ``os.urandom`` system call.
    """
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"
