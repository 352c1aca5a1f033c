"""Errors of the SIP bridge, each carrying the response status it maps to.

One base, `SipError`, for the whole `gateway.sip` area. The shells turn an error into a
response in one place (`TransactionLayer.handle_error`), so an error says what status it
deserves and, for a parse error, whether a response is possible at all: a response needs
the request's Via, From, To, Call-ID and CSeq, which is why `SipParseError` may carry the
partially parsed request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sip.codec import Request


class SipError(Exception):
    """Base of every error raised by `gateway.sip`.

    `status_hint` is the SIP status a response to the offending message should carry.
    """

    status_hint: int = 500

    def __init__(self, message: str, status_hint: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_hint is not None:
            self.status_hint = status_hint


class SipParseError(SipError):
    """Input bytes are not an acceptable SIP message.

    `request` is the request as far as it could be parsed when its start line and the
    headers a response copies (Via, From, To, Call-ID, CSeq) were readable, else None;
    `can_respond` tells whether a `status_hint` response may be sent back, or whether the
    message must be dropped (and counted).
    """

    status_hint = 400

    def __init__(
        self, message: str, status_hint: int = 400, request: Request | None = None
    ) -> None:
        super().__init__(message, status_hint)
        self.request = request

    @property
    def can_respond(self) -> bool:
        """True when `request` holds enough to build a response to it."""
        return self.request is not None


class SipEncodeError(SipError):
    """The application asked for a message that cannot be put on the wire.

    Raised for a status outside 100-699, a header name that is not a token, a value with
    CR or LF in it (header injection), or a final response without a To tag. It is a bug
    in the caller, never something a peer can trigger.
    """

    status_hint = 500
