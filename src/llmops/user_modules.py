"""Importing a user's extension module (scorers, guardrails) given as a ``.py`` file or a module name.

A file is imported once per process under a name derived from its absolute path, so two files with
the same name in different folders do not collide and loading one twice returns the same module.
Every failure becomes ``error(message)``: one line naming the module, never the user's traceback.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

log = logging.getLogger("llmops")


def import_user_module(
    spec: str, *, what: str, package: str, error: Callable[[str], Exception]
) -> ModuleType:
    """The module of ``spec``; ``what`` names it in errors ("scorer module"), ``package`` is the
    dotted prefix files are imported under."""
    path = Path(spec)
    is_file = spec.endswith(".py") or "/" in spec or "\\" in spec
    try:
        return _import_file(path, package, what, error) if is_file else importlib.import_module(spec)
    except FileNotFoundError as exc:
        raise error(f"{what} {spec}: file not found") from exc
    except ModuleNotFoundError as exc:
        raise error(f"{what} {spec!r} cannot be imported: {exc}") from exc
    except Exception as exc:  # the user's code failed while loading: say where, in one line
        if isinstance(exc, type(error(""))):
            raise
        log.debug("loading %s %s failed", what, spec, exc_info=True)
        raise error(f"{what} {spec}: {type(exc).__name__}: {exc}") from exc


def _import_file(path: Path, package: str, what: str, error: Callable[[str], Exception]) -> ModuleType:
    resolved = path.resolve(strict=True)
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"{package}.{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise error(f"{what} {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
