"""What a JSON column may hold: the check of a configuration before it is stored.

Postgres refuses NUL characters in text and JSONB, and integers past 2**53 or non-finite numbers are
rounded or refused by other JSON readers: a value with any of them is refused at the door, with the path
of the offending part, rather than failing (or changing) when it is written.
"""

from __future__ import annotations

import math
from typing import Any

SAFE_INTEGER = 2**53


def check_storable(value: Any, where: str) -> None:
    """Raise ValueError naming ``where`` (and the key path) for a value a JSON column cannot keep."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: NUL characters are not allowed")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > SAFE_INTEGER:
            raise ValueError(f"{where}: integer out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, where)
            check_storable(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, where)
