"""The one error type of ``gantool serve``'s requests."""

from __future__ import annotations

from translator.errors import GantoolError


class ServeError(GantoolError):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
