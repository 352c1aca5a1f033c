"""The functional core of dni-gateway: sources, rotation rings, sessions and calls, in memory.

Pure: no I/O, no asyncio, no clock. Time is the `at` argument (epoch seconds, float), so the same
code runs live, in tests with virtual time and in the simulator. Given the same config, the same
seed and the same calls in the same order, every result and record is identical.

Contract (public and stable; the design document's "The engine contract")::

    engine = Engine.from_config(config)           # dict {"sites": [...]}; ConfigError if invalid
    v = engine.visit(site="acme", url=..., referrer=..., user_agent=..., visitor=None, at=t)
    # v.visitor, v.session (None: untracked), v.source, v.number (E.164), v.formatted
    engine.activity(session=v.session, kind="ping", at=t)  # or pageview, click_to_call, hidden
    c = engine.call(to="+14155550101", caller="+14155559999", call_id="CA123", at=t)
    # c.source, c.forward_to, c.match, c.visitor, c.likelihood, c.candidates (best first)
    engine.override(call_id="CA123", session="s_...", by="user")
    records = engine.drain()                      # for the write-behind writer

Visits. A visitor whose latest session is live (last pageview/ping/click_to_call within the
source's idle_timeout) continues it: a "pageview", same number, the source keeps the first touch.
Otherwise the landing is classified: the site's active online sources in config order, each
source's rules in order, first match wins (`classify.py`, `rules.py` for the rule language and
the built-in presets). No match, a bot user agent, an inactive site, or a full pool under the
"site_number" policy: the site's own number, `session` None, no records. A returning visitor
(same id, last seen within the site's stickiness_days) gets the number they had from that source
before; everyone else gets the pool number free the longest (`ring.py`). When every number is
reserved the source's overflow policy applies: "share" (the number idle longest; counted, both
sessions marked shared), "overflow_number", or "site_number".

Calls. Candidates are the sessions shown the dialled number within the source's match_window;
`scoring.model.score` gives their likelihoods; the best is attached. Calls are idempotent per
call_id. Offline numbers: source only (match None, likelihood None, no candidates).

Ids are `secrets`-grade ("v_"/"s_" + 22 URL-safe characters) unless `seed=` is given.
Errors are `EngineError` subclasses with `status_hint` and `code`; nothing else escapes.
"""

from gateway.engine.config import Config, SiteConfig, SourceConfig, config_to_dict, parse_config
from gateway.engine.engine import Engine
from gateway.engine.errors import (
    ConfigError,
    EngineError,
    InvalidInput,
    UnknownCall,
    UnknownNumber,
    UnknownSession,
    UnknownSite,
)
from gateway.engine.records import (
    CallRecord,
    CallState,
    CandidateRecord,
    MatchOverride,
    Record,
    SessionEvent,
    SessionStarted,
    SessionState,
)
from gateway.engine.results import Call, Candidate, NumberInfo, PoolStats, Visit

__all__ = [
    "Call",
    "CallRecord",
    "CallState",
    "Candidate",
    "CandidateRecord",
    "Config",
    "ConfigError",
    "Engine",
    "EngineError",
    "InvalidInput",
    "MatchOverride",
    "NumberInfo",
    "PoolStats",
    "Record",
    "SessionEvent",
    "SessionStarted",
    "SessionState",
    "SiteConfig",
    "SourceConfig",
    "UnknownCall",
    "UnknownNumber",
    "UnknownSession",
    "UnknownSite",
    "Visit",
    "config_to_dict",
    "parse_config",
]
