"""Serving swap.js: size budget, caching headers, conditional requests, versioned URLs and the
demo page (HTTP only; the browser tests load the same bytes)."""

from __future__ import annotations

import gzip

from gateway.web.static import STATIC_DIR, Asset, accepts_gzip
from tests.conftest import Gateway

GZIP_BUDGET = 4096  # issue 4: <= 4 KiB gzipped
SHORT = "public, max-age=300"
IMMUTABLE = "public, max-age=31536000, immutable"
SOURCE = (STATIC_DIR / "swap.js").read_bytes()
VERSION = Asset.load(STATIC_DIR / "swap.js").version


async def test_swap_js_is_served_as_written_and_fits_the_size_budget(gateway: Gateway) -> None:
    plain = await gateway.client.get("/swap.js", headers={"Accept-Encoding": "identity"})
    assert plain.status == 200 and "Content-Encoding" not in plain.headers
    assert plain.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert await plain.read() == SOURCE  # no build step: the file in the repo is the file served
    zipped = await gateway.client.get("/swap.js", headers={"Accept-Encoding": "gzip, br"},
                                      auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = await zipped.read()
    assert len(body) <= GZIP_BUDGET, f"swap.js is {len(body)} bytes gzipped"
    assert gzip.decompress(body) == SOURCE
    assert zipped.headers["Vary"] == "Accept-Encoding"


async def test_plain_url_revalidates_with_etag_and_304(gateway: Gateway) -> None:
    c = gateway.client
    first = await c.get("/swap.js")
    etag = first.headers["ETag"]
    assert etag == f'W/"{VERSION}"' and first.headers["Cache-Control"] == SHORT
    again = await c.get("/swap.js", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == SHORT
    strong = await c.get("/swap.js", headers={"If-None-Match": f'"other", "{VERSION}"'})
    assert strong.status == 304  # If-None-Match compares weakly
    stale = await c.get("/swap.js", headers={"If-None-Match": 'W/"0123456789ab"'})
    assert stale.status == 200 and await stale.read() == SOURCE
    head = await c.head("/swap.js")
    assert head.status == 200 and head.headers["ETag"] == etag


async def test_versioned_urls_are_immutable_and_old_versions_still_load(gateway: Gateway) -> None:
    c = gateway.client
    for path in (f"/swap.js?v={VERSION}", f"/swap.{VERSION}.js"):
        resp = await c.get(path)
        assert resp.status == 200 and await resp.read() == SOURCE, path
        assert resp.headers["Cache-Control"] == IMMUTABLE, path
    for path in ("/swap.js?v=0123456789ab", "/swap.0123456789ab.js"):
        resp = await c.get(path)  # a page cached across a release: today's file, short-lived
        assert resp.status == 200 and await resp.read() == SOURCE, path
        assert resp.headers["Cache-Control"] == SHORT, path
    resp = await c.get("/swap.js")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"  # usable with crossorigin + SRI
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_demo_page_pastes_in_the_versioned_snippet(gateway: Gateway) -> None:
    resp = await gateway.client.get("/demo")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert f'<script async src="/swap.js?v={VERSION}" data-site="demo"></script>' in page


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=0.000")
    assert not accepts_gzip("")
