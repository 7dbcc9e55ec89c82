"""Secret-looking parts of text: a password in a URL (`postgresql://user:pw@host/db`), a
webhook URL that is itself the credential (Slack's `hooks.slack.com/services/...`), a token in
a query string (`?token=...`). `findings` says which a value holds (the inventory's check,
`config_secrets.py`); `redact` replaces them, for error reasons that quote a URL."""

from __future__ import annotations

import re

HIDDEN = "***"
# scheme://user:password@ : the password part
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<secret>[^/\s@]+)(?=@)")
# URLs whose path is the credential: everything after the fixed prefix
_CREDENTIAL_URLS = re.compile(
    r"(?P<head>\bhttps?://(?:hooks\.slack\.com/(?:services|workflows|triggers)/|"
    r"(?:discord(?:app)?\.com)/api/webhooks/|[a-z0-9.-]*webhook\.office\.com/webhook\w*/|"
    r"outlook\.office\.com/webhook/))(?P<secret>[^\s\"'<>]+)", re.IGNORECASE)
_QUERY_TOKEN = re.compile(
    r"(?P<head>[?&](?:token|access_token|api_key|apikey|key|secret|password|passwd|pwd|auth|sig|signature|"
    r"routing_key|integration_key)=)(?P<secret>[^&#\s\"'<>]+)", re.IGNORECASE)
_PATTERNS = (("a password in a URL", _USERINFO),
             ("a webhook URL that is itself the credential", _CREDENTIAL_URLS),
             ("a token in a URL's query", _QUERY_TOKEN))


def findings(text: str) -> list[str]:
    """What secret-looking parts `text` holds, in words (never the parts themselves)."""
    return [what for what, pattern in _PATTERNS if pattern.search(text)]


def redact(text: str) -> str:
    """`text` with every secret-looking part replaced by `***`."""
    for _, pattern in _PATTERNS:
        text = pattern.sub(lambda m: m["head"] + HIDDEN, text)
    return text
