"""SIP bridge: a redirect server that attributes calls arriving from a SIP trunk.

Layers, each importable on its own and none doing I/O except the last:
- `gateway.sip.errors`: `SipError` and its kinds, each with the status it maps to;
- `gateway.sip.codec`: bytes <-> `Request`/`Response` dataclasses, `StreamParser` for TCP,
  `make_response`, header helpers;
- `gateway.sip.transaction`: RFC 3261 server transactions and timers, driven by the caller's
  clock, returning what to send and what the application must decide;
- `gateway.sip.server`: the asyncio UDP/TCP endpoint and the attribution glue.

Nothing is imported here, so `import gateway.sip.codec` stays cheap.
"""
