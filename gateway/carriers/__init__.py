"""Carrier adapters: request signatures and call-control documents (TwiML), built with the
carriers' own libraries. No I/O here; the web shell feeds requests in."""
