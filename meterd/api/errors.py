"""The API's refusal: an HTTP status and a message for the client."""

from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses; carries the HTTP status and a message for the client (served
    as ``{"error": message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
