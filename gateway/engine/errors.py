"""The engine's errors: one base class carrying an HTTP status hint and a stable code.

Every way the engine refuses input raises one of these, never a bare KeyError or ValueError.
The HTTP shell turns them into `{"error": {"code", "message", "field"}}` in one place, using
`status_hint`, `code`, `field` and `str(error)`; the SIP shell maps the status hint to its own
responses (404 stays 404).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    status_hint: int = 400
    code: str = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigError(EngineError):
    """The configuration is invalid; `field` is a path like `sites[0].sources[1].numbers[2]`."""

    status_hint = 422
    code = "invalid_config"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field)
        self.message = message


class InvalidInput(EngineError):
    """An argument to an engine call is malformed (wrong type, too long, unparsable)."""

    status_hint = 422
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field)
        self.message = message


class UnknownSite(EngineError):
    """No site has this key."""

    status_hint = 404
    code = "unknown_site"

    def __init__(self, site: str) -> None:
        super().__init__(f"unknown site {site!r}", "site")


class UnknownSession(EngineError):
    """No session with this id is held in memory (never existed, or older than retention)."""

    status_hint = 404
    code = "unknown_session"

    def __init__(self, session: str) -> None:
        super().__init__(f"unknown session {session!r}", "session")


class UnknownNumber(EngineError):
    """The number is not a tracking number of this configuration (or is inactive)."""

    status_hint = 404
    code = "unknown_number"

    def __init__(self, number: str, reason: str = "not a tracking number") -> None:
        super().__init__(f"{number!r}: {reason}", "to")


class UnknownCall(EngineError):
    """No call with this id is held in memory."""

    status_hint = 404
    code = "unknown_call"

    def __init__(self, call_id: str) -> None:
        super().__init__(f"unknown call {call_id!r}", "call_id")
