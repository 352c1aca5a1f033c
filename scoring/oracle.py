"""The Bayes-optimal reference: the posterior over candidates under the simulator's own model.

`scoring.traffic` generates calls from a known story, so for every call the simulator can weigh
each visitor who was shown the dialled number by how likely that story makes *their* call at
that moment, given their sessions: a call-time density per call class (during the visit, after
it, hours later directly or on a return visit, a repeat call), times the likelihood ratio of the
evidence each class leaves (a tel: tap, a hidden tab, engagement) against the same data from a
visitor who does not call. Like the engine, it always names somebody when there is a candidate.

This is an upper bound for any call-time method: it reads latent facts the engine never sees
(the planned length of a visit, when the human left an idle tab, who really made earlier calls).
Its accuracy minus the engine's is the "gap to the best achievable" in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scoring.traffic import RETURN_SIGMA, SimSession, Traffic, TrafficParams

SPURIOUS_DESKTOP = 0.1  # desktop share of the spurious tap rate (traffic._tap_device_share)
EPS_S = 1e-6  # guards divisions by a zero-length window


@dataclass(frozen=True, slots=True)
class EarlierCall:
    at: float
    number: str
    caller: str | None


def lognormal_pdf(x: float, median: float, sigma: float) -> float:
    if x <= 0:
        return 0.0
    z = (math.log(x) - math.log(median)) / sigma
    return math.exp(-0.5 * z * z) / (x * sigma * math.sqrt(2 * math.pi))


class Oracle:
    """Call-time weights of candidate visitors under the generative model of `traffic`."""

    def __init__(self, traffic: Traffic) -> None:
        self.t = traffic
        self.p: TrafficParams = traffic.params

    def visitor_weight(
        self, sessions: list[int], at: float, *, caller: str | None,
        earlier: list[EarlierCall], number: str,
    ) -> float:
        """Density (per second) that the visitor of `sessions` (shown `number`) calls at `at`.

        `earlier`: the visitor's earlier calls (the truth, as an oracle knows it)."""
        if earlier:  # only a repeat call is possible from somebody who already called
            return self._repeat(earlier, at, caller, number)
        total = 0.0
        for index in sessions:
            s = self.t.sessions[index]
            total += self._late_return(s, at) if s.returning else self._first(s, at)
        return self.p.call_rate * total

    # ---- classes of a first call --------------------------------------------------------------

    def _first(self, s: SimSession, at: float) -> float:
        p = self.p
        weight = 0.0
        if s.start <= at <= s.start + s.natural_s + p.c2c_lead_s[1]:
            weight += p.p_during / max(s.natural_s, EPS_S) * self._evidence(s, at)
        if at > s.active_end:
            gap = at - s.active_end
            weight += p.p_after * math.exp(-gap / p.after_mean_s) / p.after_mean_s
            lo, hi = p.late_window_s
            if lo <= gap <= hi:
                weight += (1 - p.p_during - p.p_after) * (1 - p.late_return_share) / (hi - lo)
        return weight * self._engagement(s)

    def _late_return(self, s: SimSession, at: float) -> float:
        """A call on a return visit: the return itself is evidence, weighed against chance."""
        p = self.p
        first = self.t.sessions[self.t.first_session[s.visitor]]
        lead_lo, lead_hi = p.late_return_lead_s
        lo, hi = p.late_window_s
        lead, delay = at - s.start, at - first.active_end
        if not (lead_lo <= lead <= lead_hi + p.c2c_lead_s[1] and lo <= delay <= hi):
            return 0.0
        p_late = 1 - p.p_during - p.p_after
        caller = p_late * p.late_return_share / (hi - lo) / (lead_hi - lead_lo)
        chance = p.return_rate * lognormal_pdf(
            s.start - first.active_end, p.return_median_s, RETURN_SIGMA
        )
        ratio = caller / max(chance, 1e-300)
        return ratio * self._evidence(s, at) * self._engagement(first)

    def _repeat(
        self, earlier: list[EarlierCall], at: float, caller: str | None, number: str
    ) -> float:
        p = self.p
        lo, hi = p.repeat_window_s
        weight = 0.0
        for call in earlier:
            if call.number == number and call.caller == caller and lo <= at - call.at <= hi:
                weight += p.repeat_rate / (hi - lo)
        return weight

    # ---- likelihood ratios of the evidence ----------------------------------------------------

    def _evidence(self, s: SimSession, at: float) -> float:
        """Tap and hidden-tab evidence of a call during `s`, against a visitor who does not call."""
        p = self.p
        tapped = any(
            k == "click_to_call" and p.c2c_lead_s[0] <= at - e <= p.c2c_lead_s[1]
            for e, k in s.events
        )
        tap_p = p.c2c_mobile if s.mobile else p.c2c_desktop
        if tapped:
            spurious = p.spurious_c2c * (1.0 if s.mobile else SPURIOUS_DESKTOP)
            width = p.c2c_lead_s[1] - p.c2c_lead_s[0]
            ratio = tap_p * max(s.natural_s, EPS_S) / (width * max(spurious, 1e-9))
        else:
            ratio = 1.0 - tap_p
        if not s.mobile:
            return ratio
        hidden = [e for e, k in s.events if k == "hidden"]
        lo, hi = p.hide_lead_s
        if not any(lo <= at - e <= hi for e in hidden):
            return 0.0  # the dialer always hides a phone's tab before a call during the visit
        end_density = lognormal_pdf(s.natural_s, p.session_median_s, p.session_sigma)
        chance = p.hidden_on_leave * max(end_density, 1e-12) * (hi - lo)
        return ratio / chance

    def _engagement(self, first: SimSession) -> float:
        """Callers read longer and bounce less: ratio of their first visit's likelihoods."""
        p = self.p
        caller_median = p.session_median_s * p.caller_duration_factor
        num = lognormal_pdf(first.natural_s, caller_median, p.session_sigma)
        den = lognormal_pdf(first.natural_s, p.session_median_s, p.session_sigma)
        b, cb = p.bounce_rate, p.bounce_rate * p.caller_bounce_factor
        bounce = cb / b if first.bounce else (1 - cb) / (1 - b)
        return num / max(den, 1e-300) * bounce
