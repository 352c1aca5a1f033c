"""Dashboard sign-in: a signed session cookie, CSRF tokens and the same-origin check.

The dashboard (gateway/web/ui.py) is signed into with the admin API key. There is no session
table: the cookie carries `<expires>.<nonce>.<mac>`, the MAC being HMAC-SHA256 over
`<expires>.<nonce>` with a secret derived from the admin key. Deriving it (instead of drawing a
random one) lets every worker process behind one address accept the same cookie and makes a
change of the admin key sign everybody out; the key itself never leaves the process.

CSRF: every state-changing form carries a token bound to the cookie's nonce (another HMAC under
the same secret) that is compared in constant time, and the request's Origin (or, without one,
its Referer) must be the gateway's own. The sign-in form is protected the same way with a
short-lived pre-session cookie holding a nonce of its own. The cookie is HttpOnly and
SameSite=Strict, and Secure when the gateway's public URL is https.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

SESSION_COOKIE = "dni_ui"
PRESIGN_COOKIE = "dni_ui_signin"
COOKIE_PATH = "/ui"  # the API never reads the cookie, so it is never sent there
SESSION_TTL_S = 12 * 3600  # a working day: sign in once in the morning
PRESIGN_TTL_S = 3600  # a sign-in form left open for an hour still works
NONCE_BYTES = 16  # 128 random bits: not guessable, short enough for a cookie
MAX_TOKEN_LENGTH = 256  # a real token is ~90 characters; longer input is refused unread
SIGNOUT_MEMORY = 10_000  # signed-out nonces remembered (until expiry) before the oldest go
_KDF_LABEL = b"dni-gateway dashboard session v1"  # domain separation from other uses of the key


@dataclass(frozen=True, slots=True)
class UiSession:
    """A signed-in dashboard session: its nonce and when it expires (epoch seconds)."""

    nonce: str
    expires: int


def _mac(secret: bytes, *parts: str) -> str:
    msg = "\x1f".join(parts).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


class UiAuth:
    """Issues and checks dashboard session cookies and CSRF tokens for one admin key."""

    def __init__(self, admin_key: str, *, secure: bool,
                 clock: Callable[[], float] = time.time) -> None:
        self.admin_key = admin_key
        self.secure = secure
        self._secret = hmac.new(admin_key.encode(), _KDF_LABEL, hashlib.sha256).digest()
        self._clock = clock
        self._signed_out: dict[str, int] = {}

    # -- sessions ---------------------------------------------------------------------------

    def issue(self) -> UiSession:
        return UiSession(secrets.token_urlsafe(NONCE_BYTES), int(self._clock()) + SESSION_TTL_S)

    def token(self, session: UiSession) -> str:
        body = f"{session.expires}.{session.nonce}"
        return f"{body}.{_mac(self._secret, 'session', body)}"

    def verify(self, raw: str | None) -> UiSession | None:
        """The session a cookie value stands for, or None (forged, expired, signed out)."""
        if not raw or len(raw) > MAX_TOKEN_LENGTH or raw.count(".") != 2:
            return None
        expires, nonce, mac = raw.split(".")
        if not hmac.compare_digest(mac, _mac(self._secret, "session", f"{expires}.{nonce}")):
            return None
        if not expires.isdigit() or int(expires) <= self._clock():
            return None
        if nonce in self._signed_out:
            return None
        return UiSession(nonce, int(expires))

    def sign_out(self, session: UiSession) -> None:
        """Refuse this session's cookie from now on in this process (the browser drops it)."""
        now = self._clock()
        self._signed_out = {n: e for n, e in self._signed_out.items() if e > now}
        if len(self._signed_out) >= SIGNOUT_MEMORY:
            self._signed_out.pop(next(iter(self._signed_out)))
        self._signed_out[session.nonce] = session.expires

    # -- CSRF -------------------------------------------------------------------------------

    def csrf(self, nonce: str) -> str:
        """The form token of a session (or of a sign-in form's pre-session nonce)."""
        return _mac(self._secret, "csrf", nonce)

    def csrf_ok(self, nonce: str | None, given: object) -> bool:
        if not nonce or not isinstance(given, str) or len(given) > MAX_TOKEN_LENGTH:
            return False
        return hmac.compare_digest(given.encode(), self.csrf(nonce).encode())

    # -- cookies ----------------------------------------------------------------------------

    def set_session(self, resp: web.StreamResponse, session: UiSession) -> None:
        self._set(resp, SESSION_COOKIE, self.token(session), SESSION_TTL_S)
        resp.del_cookie(PRESIGN_COOKIE, path=COOKIE_PATH)

    def clear_session(self, resp: web.StreamResponse) -> None:
        resp.del_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=self.secure, httponly=True,
                        samesite="Strict")

    def presign_nonce(self, request: web.Request) -> str | None:
        raw = request.cookies.get(PRESIGN_COOKIE, "")
        return raw if 0 < len(raw) <= MAX_TOKEN_LENGTH else None

    def set_presign(self, resp: web.StreamResponse, nonce: str) -> None:
        self._set(resp, PRESIGN_COOKIE, nonce, PRESIGN_TTL_S)

    def _set(self, resp: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        secure=self.secure, samesite="Strict")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower-case; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """True when the request comes from one of the gateway's own pages: its Origin (or, when a
    browser sends none, its Referer) is the address the request was made to, or the public URL
    (what the browser sees when a TLS proxy sits in front)."""
    own = {f"{request.scheme}://{request.host}".lower()}
    if public_url:
        own.add(origin_of(public_url) or "")
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.lower() in own  # "null" (sandboxed, privacy-redirected) never matches
    referer = request.headers.get("Referer")
    return referer is not None and origin_of(referer) in own
