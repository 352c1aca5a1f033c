"""Who is asking: the client address, honouring X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from gateway.web.keys import SETTINGS


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _trusted(addr: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in _networks(cidrs))


def client_address(request: web.Request) -> str:
    remote = request.remote or "unknown"
    trusted = request.app[SETTINGS].trusted_proxies
    if trusted and _trusted(remote, trusted):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        # The right-most address not added by one of our proxies is the client.
        for hop in reversed(hops):
            if not _trusted(hop, trusted):
                return hop[:64]
    return remote
