"""Which addresses opsplane shows as links: web addresses only.

Runbooks, annotation URLs and generator URLs come from the inventory and from alerts that
other systems send; a `javascript:` or `data:` address among them must never become
something a person clicks. Everything that draws a link from such a value (the dashboard's
pages, e-mail, Slack buttons, PagerDuty links) asks `web_link` first and shows any other
value as plain text.
"""

from __future__ import annotations

from urllib.parse import urlsplit

WEB_SCHEMES = ("http", "https")


def web_link(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) address with a host and nothing a browser would
    strip or rewrite (spaces, tabs, line breaks, other control characters); None otherwise."""
    if not url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket, for one
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
        return None
    return url
