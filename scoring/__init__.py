"""Pure scoring: features of candidate sessions, the likelihood model, calibration, pool sizing
(Erlang B), and the traffic simulator with replay evaluation.

Nothing here does I/O or imports asyncio; time is always passed in as epoch seconds (float).
The engine (`gateway.engine`) describes the sessions that saw a dialled number as `Timeline`s
(handed over column by column, `TimelineColumns`) and calls `score()`; the simulator drives the
engine in virtual time.
"""
