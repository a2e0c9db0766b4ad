"""The registry's errors, shared by its service and its repository (which finds some under a lock)."""

from __future__ import annotations

from llmops.errors import ConflictError, NotFoundError, UserError


class InvalidModel(UserError):
    """A bad model name, reference, alias, artefact or serving config."""


class ModelNotFound(NotFoundError):
    """No model of that name, or no such version or alias."""


class ModelConflict(ConflictError):
    """The change conflicts with the registry's state (an alias or a deployment uses the version)."""


def aliased(ref: str, aliases: list[str] | tuple[str, ...]) -> ModelConflict:
    """The refusal to delete a version that aliases point at."""
    return ModelConflict(
        f"{ref} has aliases ({', '.join(aliases)}): move them first, or force the deletion", param="version"
    )
