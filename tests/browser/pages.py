"""The customer page the browser tests load: the business number in every common format, in
tel: links, in an opted-out element and in places swap.js must never touch."""

from __future__ import annotations

# The optional anti-flicker CSS exactly as the README documents it.
ANTI_FLICKER = """html.dni-pending .dni-number { visibility: hidden;
  animation: dni-release 0s 1.5s forwards; }
@keyframes dni-release { to { visibility: visible; } }"""

FORMATS = {  # element id -> the page's own text
    "paren": "(800) 555-0100",
    "dash": "800-555-0100",
    "dot": "800.555.0100",
    "space": "800 555 0100",
    "intl": "+1 800 555 0100",
    "long": "1-800-555-0100",
    "digits": "8005550100",
}
UNTOUCHED = {  # element id -> text that must survive swapping as it is
    "optout": "Billing: (800) 555-0100",
    "optout-child": "800-555-0100",
    "other": "Fax: (800) 555-0199",
}


def expected(number: str) -> dict[str, str]:
    """What each format must read after swapping to `number` (E.164, North American)."""
    n = number.removeprefix("+1")
    a, b, c = n[:3], n[3:6], n[6:]
    return {"paren": f"({a}) {b}-{c}", "dash": f"{a}-{b}-{c}", "dot": f"{a}.{b}.{c}",
            "space": f"{a} {b} {c}", "intl": f"+1 {a} {b} {c}", "long": f"1-{a}-{b}-{c}",
            "digits": n}


def page_html(gateway: str, *, attrs: str = 'data-ping="1"', before: str = "",
              src: str = "swap.js") -> str:
    rows = "\n".join(f'<p>{k}: <span id="{k}" class="dni-number">{v}</span></p>'
                     for k, v in FORMATS.items())
    return f"""<!doctype html>
<html lang="en" class="dni-pending">
<head>
<meta charset="utf-8">
<title>Acme Plumbing</title>
<link rel="icon" href="data:,">
<style>{ANTI_FLICKER}
body {{ font: 18px/1.4 sans-serif; margin: 1.5rem; }}</style>
{before}
<script async src="{gateway}{src}" data-site="acme" {attrs}></script>
</head>
<body>
<h1>Acme Plumbing</h1>
{rows}
<p id="sentence">Call (800) 555-0100 today, or text 800.555.0100 after hours.</p>
<p><a id="tel" href="tel:+18005550100">Tap to call</a>
   <a id="tel-dash" href="tel:800-555-0100">800-555-0100</a></p>
<div id="optout" data-dni-noswap>Billing: (800) 555-0100</div>
<div data-dni-noswap><p><b id="optout-child">800-555-0100</b></p></div>
<p id="other">Fax: (800) 555-0199</p>
<textarea id="textarea">(800) 555-0100</textarea>
<input id="input" value="800-555-0100">
<script id="inline">var ownNumber = "800-555-0100";</script>
<div id="host"></div>
</body>
</html>
"""
