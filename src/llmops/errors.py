"""The errors a user causes (bad input, unknown names, conflicts), shared by the service areas.

A service raises a subclass of :class:`UserError` with a one-line message; the CLI prints it as
``error: ...`` with exit status 1, and the admin API answers it with OpenAI's error body and the
class's HTTP status. Areas keep their own hierarchy under these (``DatasetNotFound(NotFoundError)``).
"""

from __future__ import annotations

from typing import ClassVar


class UserError(Exception):
    """Bad input: HTTP 400 ``invalid_request_error``; ``param`` names the field at fault, if any."""

    status: ClassVar[int] = 400
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class NotFoundError(UserError):
    """Something named does not exist: HTTP 404."""

    status = 404
    code = "not_found"


class ConflictError(UserError):
    """The request conflicts with what is stored now (a name taken, a state that forbids it): HTTP 409."""

    status = 409
    code = "conflict"
