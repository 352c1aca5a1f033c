"""User agents: is this a crawler, is this a phone. Two tables, one cached lookup.

Bots get the site's own number and no session (so crawlers cannot drain a pool); the mobile
flag is a scoring signal (mobile callers tap `tel:` links). Real browsers driven headless
(`HeadlessChrome`, as in the browser tests) are deliberately not bots.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Crawlers that execute JavaScript or fetch pages for previews: search engines (Googlebot,
# bingbot, Slurp, DuckDuckBot, Applebot...), SEO spiders, link unfurlers and uptime monitors.
# "bot" must end a word so phone models such as "CUBOT" are not caught. Plain HTTP libraries
# (curl, python-requests, aiohttp) are not listed: they do not run swap.js, and a script that
# calls the swap API directly is the per-client rate limit's job, not this table's.
BOT_PATTERNS = (
    r"(?<!cu)bot\b", r"crawl", r"spider", r"slurp", r"facebookexternalhit", r"facebookcatalog",
    r"mediapartners-google", r"adsbot", r"bingpreview", r"chrome-lighthouse", r"google-pagespeed",
    r"pingdom", r"uptimerobot", r"statuscake", r"scrapy", r"archive\.org_bot", r"embedly",
)
# Tokens of phone and tablet browsers (Mozilla's advice: "Mobi" covers most; the rest are
# Android tablets, iPads with old UAs and legacy platforms).
MOBILE_PATTERNS = (
    r"mobi", r"android", r"iphone", r"ipad", r"ipod", r"blackberry", r"opera mini",
    r"windows phone", r"iemobile", r"silk/", r"kindle",
)
AGENT_CACHE_SIZE = 4096  # distinct user agents remembered; a busy site sees a few hundred a day

_BOT = re.compile("|".join(BOT_PATTERNS), re.IGNORECASE)
_MOBILE = re.compile("|".join(MOBILE_PATTERNS), re.IGNORECASE)


@lru_cache(maxsize=AGENT_CACHE_SIZE)
def agent(user_agent: str) -> tuple[bool, bool]:
    """(is a bot, is mobile) for a user agent; the empty agent is a bot."""
    if not user_agent.strip():
        return True, False
    return _BOT.search(user_agent) is not None, _MOBILE.search(user_agent) is not None
