"""Shared builders for the engine tests: a config, an engine, user agents, record folding."""

from __future__ import annotations

import copy
from typing import Any

from gateway.engine import Engine, SessionEvent, SessionStarted, SessionState
from gateway.engine.records import Record

DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Safari/537.36")
PHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BUSINESS = "+18005550100"
ADS = ["+14155550101", "+14155550102", "+14155550103"]
ORGANIC = ["+14155550111", "+14155550112"]
BILLBOARD = "+14155550199"
DAY = 86400.0
IDLE = 1800.0


def config(**ads: Any) -> dict[str, Any]:
    """One site "acme": Google Ads (3 numbers, options overridable), Google Organic, offline."""
    google_ads = {"name": "Google Ads", "kind": "online", "forward_to": BUSINESS,
                  "numbers": list(ADS)} | ads
    return {"sites": [{
        "key": "acme", "name": "Acme Plumbing", "swap_targets": [BUSINESS],
        "allowed_origins": ["https://acme.test"],
        "sources": [
            google_ads,
            {"name": "Google Organic", "kind": "online", "forward_to": BUSINESS,
             "numbers": list(ORGANIC)},
            {"name": "Billboard I-80", "kind": "offline", "forward_to": BUSINESS,
             "numbers": [BILLBOARD]},
        ],
    }]}


def engine(cfg: dict[str, Any] | None = None, seed: int = 7) -> Engine:
    return Engine.from_config(copy.deepcopy(cfg or config()), seed=seed)


def ad_visit(e: Engine, at: float, visitor: str | None = None, ua: str = DESKTOP,
             click: str = "abc") -> Any:
    """A Google Ads landing (gclid) on acme."""
    return e.visit(site="acme", url=f"https://acme.test/?gclid={click}",
                   referrer="https://www.google.com/", user_agent=ua, visitor=visitor, at=at)


def states_from_records(records: list[Record]) -> list[SessionState]:
    """Fold records into SessionStates exactly as the records module documents."""
    started: dict[str, SessionStarted] = {}
    fields: dict[str, dict[str, Any]] = {}
    for r in records:
        if isinstance(r, SessionStarted):
            started[r.session] = r
            fields[r.session] = {"last": r.at, "pageviews": 1, "c2c": None, "hidden": None,
                                 "shared": r.shared}
        elif isinstance(r, SessionEvent):
            f = fields[r.session]
            if r.kind == "shared":
                f["shared"] = True
            elif r.kind == "hidden":
                f["hidden"] = r.at
            else:
                f["last"] = max(f["last"], r.at)
                f["pageviews"] += r.kind == "pageview"
                if r.kind == "click_to_call":
                    f["c2c"] = r.at
    return [SessionState(s.session, s.visitor, s.site, s.source, s.number, s.at,
                         fields[sid]["last"], s.mobile, fields[sid]["shared"],
                         fields[sid]["pageviews"], fields[sid]["c2c"], fields[sid]["hidden"])
            for sid, s in started.items()]
