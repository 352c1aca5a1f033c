"""Synthetic website traffic and phone calls with ground truth.

Follows `shared/traffic-model.md`: every figure is a field of `TrafficParams` with the documented
default, and `SCENARIOS` names variants that differ in session length, call delay and mobile
share (add one by adding an entry). `generate(params, days, seed)` returns sessions (each with
its browser events) and calls (each naming the true caller visitor and the session whose number
was dialled); it knows nothing about numbers, which the runner (`scoring.simulate`) resolves
against the engine at replay time, so every pool size sees the very same traffic.

Generative story per visitor (the Bayes-optimal reference in `scoring.oracle` inverts it):
a visitor arrives (Poisson per hour on a diurnal curve), is a caller with probability
`call_rate`, and if so calls during the visit, within the hour after it, or hours to two days
later (half of those after coming back to the site first); some callers call again; some
visitors come back without calling; noise calls come from people who got a number from somebody
shown it in the last 30 days (so a number's noise grows with its exposure).
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field, replace

DAY_S = 86_400.0
HOUR_S = 3_600.0
EPOCH = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday: day 0 of every simulation

# Call classes (ground truth labels).
DURING = "during"
AFTER = "after"
LATE = "late"
LATE_RETURN = "late_return"
REPEAT = "repeat"
NOISE = "noise"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One online source of the simulated site."""

    name: str
    share: float  # share of the site's daily visitors
    landing: str  # query string of the landing URL ("" for none)
    referrer: str
    match: tuple[tuple[str, str | bool], ...]  # the site config's match rule for the source


# traffic-model.md: Google Ads 200, Google Organic 120, Bing 40, Email 40 (per 400 visitors).
DEFAULT_SOURCES = (
    SourceSpec("Google Ads", 0.5, "gclid=sim", "https://www.google.com/", (("gclid", True),)),
    SourceSpec("Google Organic", 0.3, "", "https://www.google.com/",
               (("referrer_host", "google.com"),)),
    SourceSpec("Bing Ads", 0.1, "msclkid=sim", "https://www.bing.com/", (("msclkid", True),)),
    SourceSpec("Email", 0.1, "utm_source=newsletter&utm_medium=email", "",
               (("utm_medium", "email"),)),
)


@dataclass(frozen=True, slots=True)
class TrafficParams:
    """Every figure of the traffic model; defaults are the documented ones."""

    daily_visitors: float = 1000.0  # weekday new visitors, whole site
    sources: tuple[SourceSpec, ...] = DEFAULT_SOURCES
    peak_hour_share: float = 0.12  # traffic-model.md: peak hour ~12% of the day
    peak_hour: int = 14  # local hour of the peak (UTC in the simulation)
    weekend_factor: float = 0.7  # traffic-model.md: weekends ~30% lower
    session_median_s: float = 150.0  # traffic-model.md: log-normal, median ~150 s
    session_sigma: float = 1.0
    bounce_rate: float = 0.5  # traffic-model.md: 45-60% bounce after one page
    page_interval_s: tuple[float, float] = (30.0, 60.0)  # pages every 30-60 s
    ping_interval_s: tuple[float, float] = (15.0, 30.0)  # snippet pings every 15-30 s
    hidden_on_leave: float = 0.6  # leaving fires visibilitychange->hidden in most browsers
    idle_tab_share: float = 0.05  # tabs left open and visible after the visit
    idle_tab_median_s: float = 2400.0  # ... for ~40 min (log-normal, sigma 1)
    mobile_share: float = 0.6  # traffic-model.md: ~60% mobile
    return_rate: float = 0.2  # visitors who come back once (besides a caller's return)
    return_median_s: float = 20 * HOUR_S  # ... after ~20 h (log-normal, RETURN_SIGMA)
    call_rate: float = 0.03  # traffic-model.md: a few percent call (sweep 1-5%)
    p_during: float = 0.5  # traffic-model.md: about half during the visit
    p_after: float = 1 / 3  # ... a third within the hour after leaving
    after_mean_s: float = 600.0  # ... exponential, mean ~10 min
    late_window_s: tuple[float, float] = (HOUR_S, 48 * HOUR_S)  # the rest: hours to two days
    late_return_share: float = 0.5  # ... about half of those after coming back first
    late_return_lead_s: tuple[float, float] = (30.0, 300.0)  # return visit start before call
    caller_duration_factor: float = 1.5  # callers read longer (engaged visitors)
    caller_bounce_factor: float = 0.6  # ... and bounce less
    c2c_mobile: float = 0.85  # mobile callers during the visit mostly tap tel: first
    c2c_desktop: float = 0.1  # desktop tel: links open a softphone; few use them
    c2c_lead_s: tuple[float, float] = (3.0, 10.0)  # tap -> call ringing at the gateway
    hide_lead_s: tuple[float, float] = (1.0, 3.0)  # dialer opens -> tab hidden, before call
    spurious_c2c: float = 0.02  # non-callers tapping tel: and cancelling, per session
    repeat_rate: float = 0.15  # callers who call again ...
    repeat_window_s: tuple[float, float] = (HOUR_S, 5 * DAY_S)  # ... an hour to 5 days later
    withheld_rate: float = 0.1  # callers who withhold their caller ID
    noise_share: float = 0.05  # calls from people never shown the number (share of calls)


# Named scenarios: they differ in session length, call delay and mobile share.
SCENARIOS: dict[str, TrafficParams] = {
    "default": TrafficParams(),
    "long-sessions": TrafficParams(
        session_median_s=600.0, session_sigma=1.2, bounce_rate=0.35, idle_tab_share=0.15
    ),
    "late-callers": TrafficParams(
        p_during=0.25, p_after=0.35, after_mean_s=1200.0, late_return_share=0.3, repeat_rate=0.3
    ),
    "mobile-heavy": TrafficParams(mobile_share=0.85, c2c_mobile=0.7, spurious_c2c=0.05),
    "desktop-short": TrafficParams(
        mobile_share=0.2, session_median_s=60.0, bounce_rate=0.6, after_mean_s=300.0
    ),
    "busy-low-calls": TrafficParams(call_rate=0.01, noise_share=0.15, return_rate=0.35),
}


@dataclass(slots=True)
class SimSession:
    """One browser session with its events after the first page view."""

    index: int
    visitor: int
    source: int
    start: float
    mobile: bool
    returning: bool
    natural_s: float  # planned length of the active part (the oracle's latent fact)
    bounce: bool
    end: float = 0.0  # last event of the session
    active_end: float = 0.0  # when the human left (before any idle tail)
    events: list[tuple[float, str]] = field(default_factory=list)  # (at, kind), sorted


@dataclass(frozen=True, slots=True)
class SimCall:
    """One phone call with its ground truth."""

    at: float
    kind: str  # DURING / AFTER / LATE / LATE_RETURN / REPEAT / NOISE
    visitor: int | None  # true caller visitor (None for noise)
    anchor: int | None  # session whose shown number is dialled (None: a repeat call)
    repeat_of: int | None  # index of the earlier call whose number is redialled
    caller: str | None  # caller ID, None when withheld (noise callers withhold as often)
    source: int
    soon: bool  # during the visit or within 30 min after it


@dataclass(frozen=True, slots=True)
class Traffic:
    params: TrafficParams
    days: int
    sessions: tuple[SimSession, ...]  # sorted by start
    calls: tuple[SimCall, ...]  # sorted by time
    visitors: int
    first_session: tuple[int, ...]  # visitor -> index of their first session
    sessions_of: tuple[tuple[int, ...], ...]  # visitor -> their session indexes


RETURN_SIGMA = 1.2  # spread of the return delay (log-normal)
NOISE_EXPOSURE_S = 30 * DAY_S  # noise numbers come from sessions of the last 30 days
SOON_S = 1800.0  # issue 6: "during the visit or within 30 minutes after it"


def scenario(name: str, **overrides: object) -> TrafficParams:
    """A named scenario's parameters, with optional field overrides."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return replace(SCENARIOS[name], **overrides)  # type: ignore[arg-type]


def diurnal_weights(peak_share: float, peak_hour: int) -> tuple[float, ...]:
    """24 hourly shares of a day, a smooth bump whose peak hour carries `peak_share`."""
    lo, hi = 0.0, 20.0
    for _ in range(60):  # bisection on the bump's sharpness
        k = (lo + hi) / 2
        shares = _bump(k, peak_hour)
        lo, hi = (k, hi) if max(shares) < peak_share else (lo, k)
    return _bump(lo, peak_hour)


def _bump(k: float, peak_hour: int) -> tuple[float, ...]:
    raw = [math.exp(k * math.cos(2 * math.pi * (h - peak_hour) / 24)) for h in range(24)]
    total = sum(raw)
    return tuple(r / total for r in raw)


def generate(params: TrafficParams, days: int, seed: int) -> Traffic:
    """Sessions and calls for `days` days; deterministic per seed."""
    return _Generator(params, seed).run(days)


class _Generator:
    def __init__(self, params: TrafficParams, seed: int) -> None:
        self.p = params
        self.rng = random.Random(seed)
        self.sessions: list[SimSession] = []
        self.calls: list[SimCall] = []
        self.visitor_source: list[int] = []
        self.visitor_phone: list[str | None] = []
        self.visitor_mobile: list[bool] = []

    def run(self, days: int) -> Traffic:
        hourly = diurnal_weights(self.p.peak_hour_share, self.p.peak_hour)
        for day in range(days):
            factor = self.p.weekend_factor if day % 7 >= 5 else 1.0
            for hour in range(24):
                for source, spec in enumerate(self.p.sources):
                    mean = self.p.daily_visitors * spec.share * factor * hourly[hour]
                    start = EPOCH + day * DAY_S + hour * HOUR_S
                    for _ in range(_poisson(self.rng, mean)):
                        self._new_visitor(source, start + self.rng.random() * HOUR_S)
        self._noise_calls(days, hourly)
        return self._finish(days)

    def _finish(self, days: int) -> Traffic:
        end = EPOCH + days * DAY_S
        sessions = sorted((s for s in self.sessions if s.start < end), key=lambda s: s.start)
        remap = {s.index: i for i, s in enumerate(sessions)}
        for i, s in enumerate(sessions):
            s.index = i
        calls = _sorted_calls(self.calls, end, remap)
        by_visitor: list[list[int]] = [[] for _ in self.visitor_source]
        for s in sessions:
            by_visitor[s.visitor].append(s.index)
        first = tuple(v[0] if v else -1 for v in by_visitor)
        return Traffic(
            self.p, days, tuple(sessions), tuple(calls), len(by_visitor), first,
            tuple(tuple(v) for v in by_visitor),
        )

    def _new_visitor(self, source: int, at: float) -> None:
        p, rng = self.p, self.rng
        visitor = len(self.visitor_source)
        self.visitor_source.append(source)
        self.visitor_mobile.append(rng.random() < p.mobile_share)
        phone = f"+16502{visitor % 1_000_000:06d}"
        self.visitor_phone.append(None if rng.random() < p.withheld_rate else phone)
        caller = rng.random() < p.call_rate
        first = self._session(visitor, at, returning=False, engaged=caller)
        came_back = caller and self._caller(visitor, first)
        if not came_back and rng.random() < p.return_rate:
            gap = rng.lognormvariate(math.log(p.return_median_s), RETURN_SIGMA)
            self._session(visitor, first.active_end + gap, returning=True, engaged=False)

    def _session(
        self, visitor: int, at: float, *, returning: bool, engaged: bool
    ) -> SimSession:
        p, rng = self.p, self.rng
        median = p.session_median_s * (p.caller_duration_factor if engaged else 1.0)
        bounce_p = p.bounce_rate * (p.caller_bounce_factor if engaged else 1.0)
        s = SimSession(
            index=len(self.sessions), visitor=visitor, source=self.visitor_source[visitor],
            start=at, mobile=self.visitor_mobile[visitor], returning=returning,
            natural_s=rng.lognormvariate(math.log(median), p.session_sigma),
            bounce=rng.random() < bounce_p,
        )
        self.sessions.append(s)
        _fill_events(s, s.start + s.natural_s, p, rng)
        return s

    def _caller(self, visitor: int, first: SimSession) -> bool:
        """Schedule a caller's call; True when the call comes on a return visit."""
        p, rng = self.p, self.rng
        u = rng.random()
        if u < p.p_during:
            at = first.start + rng.random() * first.natural_s
            self._call_in_session(first, at, DURING)
            return False
        if u < p.p_during + p.p_after:
            at = first.active_end + rng.expovariate(1.0 / p.after_mean_s)
            self._add_call(at, AFTER, first, soon=at - first.active_end <= SOON_S)
            return False
        at = first.active_end + rng.uniform(*p.late_window_s)
        if rng.random() < p.late_return_share:
            back = self._session(visitor, at - rng.uniform(*p.late_return_lead_s),
                                 returning=True, engaged=False)
            self._call_in_session(back, at, LATE_RETURN)
            return True
        self._add_call(at, LATE, first, soon=False)
        return False

    def _call_in_session(self, s: SimSession, at: float, kind: str) -> None:
        """A call while `s` is open: tel: tap, dialer hiding the tab (mobile), then the call."""
        p, rng = self.p, self.rng
        at = max(at, s.start + p.c2c_lead_s[1])  # no call before the page was seen
        tapped = rng.random() < (p.c2c_mobile if s.mobile else p.c2c_desktop)
        marks: list[tuple[float, str]] = []
        if tapped:
            marks.append((at - rng.uniform(*p.c2c_lead_s), "click_to_call"))
        if s.mobile:  # the dialer takes over the screen: the tab goes hidden, the visit ends
            hidden = at - rng.uniform(*p.hide_lead_s)
            s.events = [e for e in s.events if e[0] < hidden and e[1] != "hidden"]
            marks.append((hidden, "hidden"))
            s.end = s.active_end = hidden
        s.events = sorted(s.events + marks)
        self._add_call(at, kind, s, soon=True)

    def _add_call(self, at: float, kind: str, anchor: SimSession, *, soon: bool) -> None:
        visitor = anchor.visitor
        call = SimCall(at, kind, visitor, anchor.index, None, self.visitor_phone[visitor],
                       anchor.source, soon)
        self.calls.append(call)
        if self.rng.random() < self.p.repeat_rate:
            again = at + self.rng.uniform(*self.p.repeat_window_s)
            self.calls.append(SimCall(again, REPEAT, visitor, None, len(self.calls) - 1,
                                      call.caller, anchor.source, False))

    def _noise_calls(self, days: int, hourly: tuple[float, ...]) -> None:
        """Calls from people never shown the number, on numbers shown in the last 30 days."""
        p, rng = self.p, self.rng
        real_per_day = p.daily_visitors * p.call_rate * (1 + p.repeat_rate)
        mean = real_per_day * p.noise_share / (1.0 - p.noise_share)
        order = sorted(range(len(self.sessions)), key=lambda i: self.sessions[i].start)
        starts = [self.sessions[i].start for i in order]
        for day in range(days):
            factor = p.weekend_factor if day % 7 >= 5 else 1.0
            for hour in range(24):
                for _ in range(_poisson(rng, mean * factor * hourly[hour])):
                    at = EPOCH + day * DAY_S + hour * HOUR_S + rng.random() * HOUR_S
                    lo = bisect.bisect_left(starts, at - NOISE_EXPOSURE_S)
                    hi = bisect.bisect_left(starts, at)
                    if hi > lo:
                        self._noise_call(at, self.sessions[order[rng.randrange(lo, hi)]])

    def _noise_call(self, at: float, seen: SimSession) -> None:
        phone = f"+16503{self.rng.randrange(1_000_000):06d}"
        caller = None if self.rng.random() < self.p.withheld_rate else phone
        self.calls.append(SimCall(at, NOISE, None, seen.index, None, caller, seen.source, False))


def _sorted_calls(calls: list[SimCall], end: float, remap: dict[int, int]) -> list[SimCall]:
    """Calls before `end` in time order, anchors and `repeat_of` re-pointed (orphans dropped)."""
    kept = [
        i for i, c in enumerate(calls)
        if c.at < end and (c.anchor is None or c.anchor in remap)
    ]
    alive = set(kept)
    kept = [i for i in kept if calls[i].repeat_of is None or calls[i].repeat_of in alive]
    kept.sort(key=lambda i: calls[i].at)
    position = {old: new for new, old in enumerate(kept)}
    return [_repoint(calls[old], remap, position) for old in kept]


def _repoint(c: SimCall, sessions: dict[int, int], calls: dict[int, int]) -> SimCall:
    anchor = None if c.anchor is None else sessions[c.anchor]
    repeat_of = None if c.repeat_of is None else calls[c.repeat_of]
    return replace(c, anchor=anchor, repeat_of=repeat_of)


def _fill_events(s: SimSession, active_end: float, p: TrafficParams, rng: random.Random) -> None:
    """Pageviews, pings and the closing `hidden` of one session; sets its end times."""
    events: list[tuple[float, str]] = []
    if not s.bounce:
        t = s.start + rng.uniform(*p.page_interval_s)
        while t < active_end:
            events.append((t, "pageview"))
            t += rng.uniform(*p.page_interval_s)
    end = active_end
    if rng.random() < p.idle_tab_share:
        end += rng.lognormvariate(math.log(p.idle_tab_median_s), 1.0)
    t = s.start + rng.uniform(*p.ping_interval_s)
    while t < end:
        events.append((t, "ping"))
        t += rng.uniform(*p.ping_interval_s)
    if rng.random() < p.spurious_c2c * _tap_device_share(s.mobile):
        events.append((rng.uniform(s.start, active_end), "click_to_call"))
    if rng.random() < p.hidden_on_leave:
        events.append((end, "hidden"))
    events.sort()
    s.events = events
    s.active_end = active_end
    s.end = max(end, events[-1][0]) if events else end


def _tap_device_share(mobile: bool) -> float:
    """Spurious taps happen on phones; desktop tel: links are rarely clicked by accident."""
    return 1.0 if mobile else 0.1


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson sampler (means here are small: visitors per source-hour)."""
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation keeps the loop short for big sites
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, prod = math.exp(-mean), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k
