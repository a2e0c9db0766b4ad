"""Named extension classes: the built-ins plus third-party ones from an entry-point group.

Providers, cleaning steps and PII recognisers are each one class behind a small base class, found by
name. :class:`PluginTable` holds the names and their ``"module:Class"`` targets, imports a class the
first time its name is asked for (so a server that only proxies never imports llama.cpp, and a recipe
that does not de-duplicate never imports datasketch), and checks that it subclasses the base. Each area
keeps its own registry class on top, with its own error type and what it builds from the class.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class PluginTable(Generic[T]):
    """Names -> classes of ``base``; unknown or broken names raise ``error(message)``."""

    def __init__(
        self,
        builtins: Mapping[str, str],
        *,
        group: str,
        base: type,  # may be abstract: mypy refuses an abstract class where type[T] is asked
        what: str,
        error: Callable[[str], Exception],
        load_plugins: bool = True,
    ) -> None:
        self._targets = dict(builtins)
        self._classes: dict[str, type[T]] = {}
        self._base = base
        self._what = what
        self._error = error
        if load_plugins:
            for entry in entry_points(group=group):
                self._targets.setdefault(entry.name, entry.value)

    def names(self) -> list[str]:
        return sorted(set(self._targets) | set(self._classes))

    def register(self, name: str, cls: type[T]) -> None:
        self._classes[name] = cls

    def get(self, name: str) -> type[T]:
        if name in self._classes:
            return self._classes[name]
        target = self._targets.get(name)
        if target is None:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self._error(f"unknown {self._what} {name!r}{hint}; known: {', '.join(self.names())}")
        module_name, _, attribute = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise self._error(f"{self._what} {name!r} cannot be loaded from {target}: {exc}") from exc
        if not (isinstance(found, type) and issubclass(found, self._base)):
            raise self._error(
                f"{self._what} {name!r} ({target}) is not a llmops {self._base.__name__} subclass"
            )
        cls = cast("type[T]", found)  # checked just above: a subclass of the base
        self._classes[name] = cls
        return cls
