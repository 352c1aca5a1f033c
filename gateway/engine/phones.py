"""Phone numbers: parse to E.164 and format for display, with `phonenumbers`.

Used by the config parser (every configured number is stored in E.164) and by `Engine.call`
(the dialled and calling numbers a carrier sends). Formatting is done once per number at
configuration time, never on the swap path.
"""

from __future__ import annotations

import functools

import phonenumbers

DEFAULT_REGION = "US"  # numbers written without +country are North American (the product's home)
# Parsing with phonenumbers costs ~50 us; dialled numbers repeat on every call and callers
# often. 65,536 entries of short strings is a few MB.
PARSE_CACHE_SIZE = 65_536
MAX_NUMBER_LENGTH = 64  # longest phone-number text accepted; E.164 is at most 16 characters


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The number in E.164 (`+14155550101`), or None when `raw` is not a valid phone number."""
    if len(raw) > MAX_NUMBER_LENGTH:
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national(e164: str) -> str:
    """The national display format of an E.164 number (`(415) 555-0101`)."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
