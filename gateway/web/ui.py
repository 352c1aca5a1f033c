"""The dashboard at /ui: server-rendered pages for marketers, signed into with the admin key.

Pages: the call log (filters, likelihood bars, cursor pagination), a call with its candidate
sessions and the "use" override, the accuracy report with its charts, and the configuration
with each pool's live state. Jinja2 renders them with autoescaping on; the charts are inline SVG
drawn in `ui_charts`; no script is needed, and none runs (see `CSP`).

Everything is read through the same code the JSON API uses (`calls.call_filter`,
`calls.call_view`, `calls.apply_override`, `reports.accuracy_report`, `engine.pool_stats`), so
the dashboard shows what the API returns. Sign-in, the session cookie and CSRF are in
`ui_auth`; every page here goes through `Dashboard.page` or `Dashboard.form`, which check them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from gateway import __version__, log
from gateway.engine import Engine
from gateway.engine.errors import EngineError
from gateway.store import calls_repo, reports
from gateway.web import calls, ui_views, validate
from gateway.web.auth import key_matches
from gateway.web.errors import ApiError
from gateway.web.keys import SETTINGS, STATE
from gateway.web.static import Asset
from gateway.web.ui_auth import SESSION_COOKIE, UiAuth, UiSession, same_origin

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"ui.css": "text/css"}  # the dashboard's own files under /ui/static/
HOME = "/ui/calls"
SIGNIN = "/ui/signin"
PAGE_SIZE = 50  # calls per page of the log: one screen of rows on a laptop, quick to render
WHO = "admin (dashboard)"  # the actor a dashboard override is recorded under in the history
# After a "use", the page the browser is sent back to reads Postgres: wait (bounded) for the
# write-behind flush, which runs every ~0.2 s, so it shows the change rather than the old match.
USE_SETTLE_S = 1.5
USE_POLL_S = 0.02
ASSET_MAX_AGE_S = 31_536_000  # versioned asset URLs (?v=<content hash>) never change
# Only the gateway's own styles and forms; no script at all; never framed.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # our forms keep a Referer; other sites never get one
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Cache-Control": "no-store",  # call data must not linger in shared or back-button caches
}
# A "use" that failed: the engine's error code -> what the call page says (a fixed table, so
# the redirect's query string cannot put arbitrary text on the page).
USE_ERRORS = {
    "unknown_session": "That session is no longer held in memory, so it cannot be attached.",
    "unknown_call": "This call is no longer held in memory, so its match cannot change.",
    "not_ready": "The gateway is still starting; try again in a moment.",
}
FORBIDDEN = ("This form was not sent from this dashboard, or it has expired. "
             "Reload the page and try again.")
UNREADABLE = "This form could not be read. Reload the page and try again."

Page = Callable[[web.Request, UiSession], Awaitable[web.StreamResponse]]
Form = Callable[[web.Request, UiSession, MultiDictProxy[Any]], Awaitable[web.StreamResponse]]

_log = log.get("gateway.web.ui")


def _engine(request: web.Request) -> Engine:
    engine = request.app[STATE].engine
    if engine is None:
        raise ApiError(503, "the engine is still loading")
    return engine


def _pool(request: web.Request) -> Any:
    pool = request.app[STATE].pool
    if pool is None:
        raise ApiError(503, "the database is not ready")
    return pool


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if not raw or "\\" in raw:
        return HOME
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not (raw == "/ui" or raw.startswith("/ui/")):
        return HOME
    return raw


def call_url(call_id: str, **query: str) -> str:
    return f"/ui/calls/{quote(call_id, safe='')}" + (f"?{urlencode(query)}" if query else "")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


class Dashboard:
    """The dashboard's handlers, bound to its templates and assets."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        ui_views.install(self.env)
        self.env.filters["call_url"] = call_url
        self.assets = {name: Asset.load(STATIC_DIR / name) for name in ASSETS}
        self.env.globals.update(
            version=__version__,
            asset=lambda name: f"/ui/static/{name}?v={self.assets[name].version}")
        self._auth: UiAuth | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def auth(self, request: web.Request) -> UiAuth:
        """The signer for the current admin key (built on first use, after the app's state)."""
        key = request.app[STATE].admin_key
        if self._auth is None or self._auth.admin_key != key:
            public = request.app[SETTINGS].public_url or ""
            self._auth = UiAuth(key, secure=public.startswith("https://"))
        return self._auth

    def render(self, request: web.Request, template: str, session: UiSession | None,
               status: int = 200, **context: Any) -> web.Response:
        csrf = self.auth(request).csrf(session.nonce) if session else ""
        text = self.env.get_template(template).render(
            signed_in=session is not None, csrf=csrf, **context)
        return web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8")

    def _error(self, request: web.Request, session: UiSession | None, status: int,
               message: str) -> web.Response:
        return self.render(request, "error.html", session, status=status, status_code=status,
                           message=message, nav="")

    def _session(self, request: web.Request) -> UiSession | None:
        return self.auth(request).verify(request.cookies.get(SESSION_COOKIE))

    def page(self, handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A page for signed-in users: others are sent to sign in and brought back after."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                nxt = urlencode({"next": request.path_qs})
                return _harden(_redirect(f"{SIGNIN}?{nxt}"))
            return _harden(await self._guard(handler(request, session), request, session))
        return wrapped

    def form(self, handler: Form) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A state-changing POST: same origin, signed in, and the session's CSRF token."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if not same_origin(request, request.app[SETTINGS].public_url):
                _log.warning("ui_cross_site_post_refused", path=request.path,
                             origin=request.headers.get("Origin", "")[:200])
                return _harden(self._error(request, session, 403, FORBIDDEN))
            if session is None:
                return _harden(_redirect(SIGNIN))
            data = await _read_form(request)
            if data is None:
                return _harden(self._error(request, session, 400, UNREADABLE))
            if not self.auth(request).csrf_ok(session.nonce, data.get("csrf")):
                _log.warning("ui_csrf_refused", path=request.path)
                return _harden(self._error(request, session, 403, FORBIDDEN))
            return _harden(await self._guard(handler(request, session, data), request, session))
        return wrapped

    async def _guard(self, pending: Awaitable[web.StreamResponse], request: web.Request,
                     session: UiSession) -> web.StreamResponse:
        """Refusals from the API layer and the engine become an HTML page, not JSON."""
        try:
            return await pending
        except ApiError as exc:
            return self._error(request, session, exc.status, exc.message)
        except EngineError as exc:
            return self._error(request, session, exc.status_hint, exc.message)
        except web.HTTPException:
            raise
        except Exception:  # a page, not the API's JSON, even when something is broken
            _log.exception("ui_page_failed", path=request.path)
            return self._error(request, session, 500, "Internal error; see the gateway log.")

    # -- sign-in ----------------------------------------------------------------------------

    async def signin_form(self, request: web.Request) -> web.StreamResponse:
        if self._session(request) is not None:
            return _harden(_redirect(safe_next(request.query.get("next"))))
        return _harden(self._signin_page(request, request.query.get("next"), 200, ""))

    def _signin_page(self, request: web.Request, nxt: str | None, status: int,
                     error: str) -> web.Response:
        auth = self.auth(request)
        nonce = auth.presign_nonce(request) or auth.issue().nonce
        resp = self.render(request, "signin.html", None, status=status, nav="",
                           signin_csrf=auth.csrf(nonce), next=safe_next(nxt), error=error)
        auth.set_presign(resp, nonce)
        return resp

    async def signin(self, request: web.Request) -> web.StreamResponse:
        auth = self.auth(request)
        if not same_origin(request, request.app[SETTINGS].public_url):
            return _harden(self._error(request, None, 403, FORBIDDEN))
        data = await _read_form(request)
        if data is None:
            return _harden(self._signin_page(request, None, 400, UNREADABLE))
        nxt = str(data.get("next", ""))
        if not auth.csrf_ok(auth.presign_nonce(request), data.get("csrf")):
            return _harden(self._signin_page(request, nxt, 403, FORBIDDEN))
        given = data.get("key")
        if not isinstance(given, str) or not key_matches(given.strip(),
                                                         request.app[STATE].admin_key):
            _log.warning("ui_signin_refused")
            # 403, not 401: a form has no WWW-Authenticate challenge to offer (RFC 9110 15.5.2).
            return _harden(self._signin_page(request, nxt, 403, "That key is not right."))
        resp = _redirect(safe_next(nxt))
        auth.set_session(resp, auth.issue())
        _log.info("ui_signed_in")
        return _harden(resp)

    async def signout(self, request: web.Request, session: UiSession,
                      _data: MultiDictProxy[Any]) -> web.StreamResponse:
        auth = self.auth(request)
        auth.sign_out(session)
        resp = _redirect(SIGNIN)
        auth.clear_session(resp)
        return resp

    # -- pages ------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        return _harden(_redirect(HOME))

    async def call_log(self, request: web.Request, session: UiSession) -> web.StreamResponse:
        config = _engine(request).config
        form = request.query
        rows: list[dict[str, Any]] = []
        nxt, error, status = None, "", 200
        try:
            rows, nxt = await self._calls(request, ui_views.api_query(form))
        except ValueError as exc:
            error, status = str(exc), 422
        except ApiError as exc:
            error, status = exc.message, exc.status
        filters = ui_views.filter_values(form)
        return self.render(
            request, "calls.html", session, status=status, nav="calls", rows=rows,
            error=error, filters=filters, sites=config.sites,
            sources=ui_views.source_names(config), confidences=ui_views.CONFIDENCE_LABELS,
            next_url=f"{HOME}?{urlencode({**filters, 'cursor': nxt})}" if nxt else "",
            first_url=f"{HOME}?{urlencode(filters)}" if form.get("cursor") else "")

    async def _calls(self, request: web.Request,
                     query: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the log through the API's own filter parsing, with landing pages."""
        api = request.clone(rel_url=request.rel_url.with_query(
            {**query, "limit": str(PAGE_SIZE)}))
        f = calls.call_filter(api)
        async with _pool(request).acquire() as conn:
            rows = await calls_repo.list_calls(conn, f)
            details = await calls_repo.sessions(conn, [r["session"] for r in rows
                                                       if r["session"]])
        for row in rows:
            row["landing_page"] = (details.get(row["session"]) or {}).get("landing_url")
        # The API's own cursor, so a page link is the same cursor `GET /v1/calls` hands out.
        nxt = calls.cursor_out(rows[-1]) if len(rows) == f.limit else None
        return rows, nxt

    async def call_detail(self, request: web.Request, session: UiSession) -> web.StreamResponse:
        call_id = request.match_info["call"]
        async with _pool(request).acquire() as conn:
            call = await calls.call_view(conn, call_id)
        if call is None:
            raise ApiError(404, "There is no call with this id.")
        return self.render(request, "call.html", session, nav="calls", call=call,
                           candidates=ui_views.candidates(call),
                           campaign=ui_views.campaign(call.get("attached")),
                           notice=_use_notice(call, request.query))

    async def use(self, request: web.Request, session: UiSession,
                  data: MultiDictProxy[Any]) -> web.StreamResponse:
        """The "use" button: attach the chosen candidate, then show the call again."""
        call_id, chosen = request.match_info["call"], data.get("session")
        if not isinstance(chosen, str) or not chosen:
            raise ApiError(422, "Choose a session to use.")
        try:
            await calls.apply_override(request.app, call_id, chosen, WHO)
        except (EngineError, ApiError) as exc:
            return _redirect(call_url(call_id, failed=exc.code))
        await _settle(request)
        return _redirect(call_url(call_id, used=chosen))

    async def report(self, request: web.Request, session: UiSession) -> web.StreamResponse:
        engine = _engine(request)
        sites = engine.config.sites
        site = request.query.get("site") or (sites[0].key if sites else "")
        if site not in {s.key for s in sites}:
            raise ApiError(404, "There is no site with this key.")
        found, error, status = None, "", 200
        period = _period_form(request.query)
        try:
            since, until = ui_views.report_period(request.query, time.time())
        except ValueError as exc:
            error, status = str(exc), 422
        else:
            period = ui_views.period_form(since, until)
            try:
                found = await reports.accuracy_report(_pool(request), engine.config, site=site,
                                                      since=since, until=until)
            except reports.ReportError as exc:
                error, status = exc.message, exc.status
        return self.render(request, "report.html", session, status=status, nav="report",
                           sites=sites, site=site, error=error, report=found,
                           sources=ui_views.report_sources(found or {}), period=period)

    async def sources(self, request: web.Request, session: UiSession) -> web.StreamResponse:
        engine = _engine(request)
        return self.render(request, "sources.html", session, nav="sources",
                           sites=ui_views.sources_view(engine.config, engine.pool_stats()),
                           now=time.time())

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asset = self.assets.get(name)
        if asset is None:
            raise web.HTTPNotFound
        current = request.query.get("v") == asset.version
        cache = f"public, max-age={ASSET_MAX_AGE_S}, immutable" if current else "no-cache"
        return web.Response(body=asset.body, content_type=ASSETS[name], charset="utf-8",
                            headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})


async def _read_form(request: web.Request) -> MultiDictProxy[Any] | None:
    """The posted form, or None when its body cannot be parsed (a multipart body without its
    boundary, an unknown charset): a 400 page rather than an internal error."""
    try:
        form: MultiDictProxy[Any] = await validate.read_form(request)
    except (ValueError, LookupError, HttpProcessingError):  # bad charset, boundary, part
        return None
    return form


def _harden(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers.update(PAGE_HEADERS)
    return resp


def _period_form(query: Mapping[str, str]) -> dict[str, str]:
    return {"from": query.get("from", ""), "to": query.get("to", "")}


def _use_notice(call: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, str] | None:
    """The line shown after a "use": done, still saving, or why it failed."""
    failed, used = query.get("failed"), query.get("used")
    if failed:
        return {"kind": "error", "text": USE_ERRORS.get(failed, "The match could not change.")}
    if not used or used not in {c["session"] for c in call.get("candidates", [])}:
        return None
    if call.get("session") == used:
        return {"kind": "ok", "text": "This call is now attached to the session you chose."}
    return {"kind": "info", "text": "Your choice is being saved; reload in a moment."}


async def _settle(request: web.Request) -> None:
    """Ask the write-behind writer to flush now and wait (bounded) until its queue is empty."""
    writer = request.app[STATE].writer
    if writer is None:
        return
    writer.kick()
    deadline = time.monotonic() + USE_SETTLE_S
    # The writer offers no "flushed" event to wait on; polling its queue depth is bounded.
    while writer.depth and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(USE_POLL_S)


def routes() -> list[web.RouteDef]:
    ui = Dashboard()
    return [
        web.get("/ui", ui.home),
        web.get("/ui/", ui.home),
        web.get(SIGNIN, ui.signin_form),
        web.post(SIGNIN, ui.signin),
        web.post("/ui/signout", ui.form(ui.signout)),
        web.get(HOME, ui.page(ui.call_log)),
        web.get("/ui/calls/{call}", ui.page(ui.call_detail)),
        web.post("/ui/calls/{call}/use", ui.form(ui.use)),
        web.get("/ui/reports/accuracy", ui.page(ui.report)),
        web.get("/ui/sources", ui.page(ui.sources)),
        web.get("/ui/static/{name}", ui.asset),
    ]
