"""`opsplane config validate` refuses a literal secret, in a secret field or where a plain value
is expected, naming file, line and field and saying to use a reference, with exit 3; the
message never repeats the secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsplane.config import loads
from opsplane.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
USE = "use a secret reference: env:NAME or file:PATH"
HEAD = "platform: {name: shop}\n"


@pytest.mark.parametrize(("body", "where", "what", "secret"), [
    ("databases:\n  main:\n    host: db\n    password: hunter2hunter2\n",
     "opsplane.yaml:5:15: databases.main.password", "a literal secret where a secret reference is expected",
     "hunter2hunter2"),
    ("services:\n  api:\n    url: postgresql://shop:pa55word@db/shop\n",
     "opsplane.yaml:4:10: services.api.url", "a password in a URL", "pa55word"),
    ("services:\n  api:\n    run:\n      argv: [app]\n      env:\n        API_TOKEN: tok-4471\n",
     "opsplane.yaml:7:20: services.api.run.env.API_TOKEN", "keep it in secret_env", "tok-4471"),
    ("channels:\n  named:\n    ops: {type: webhook, url: 'https://hooks.slack.com/services/T1/B2/xyz789'}\n",
     "opsplane.yaml:4:31: channels.named.ops.url", "a webhook URL that is itself the credential", "xyz789"),
    ("channels:\n  named:\n    pd: {type: pagerduty, routing_key: R0123456789abcdef0123456789abcd}\n",
     "opsplane.yaml:4:40: channels.named.pd.routing_key", "a literal secret", "R0123456789abcdef"),
    ("services:\n  api:\n    checks:\n      - {type: http, url: 'https://api.example.com/ping?api_key=k-55x'}\n",
     "opsplane.yaml:5:27: services.api.checks[0].url", "a token in a URL's query", "k-55x"),
])
def test_a_literal_secret_is_refused_where_it_is(body: str, where: str, what: str, secret: str) -> None:
    with pytest.raises(ConfigError) as raised:
        loads(HEAD + body)
    message = str(raised.value)
    assert where in message and what in message and USE in message, message
    assert secret not in message


def test_references_and_ordinary_values_pass() -> None:
    loads(HEAD + "services:\n  api:\n    url: http://127.0.0.1:8080/health?page=2\n    run:\n"
          "      argv: [app, '{port}']\n      env: {TOKEN_TTL: '{port}', LOG_LEVEL: info}\n"
          "      secret_env: {API_TOKEN: env:API_TOKEN}\n"
          "channels:\n  named:\n    ops: {type: slack, webhook_url: env:SLACK_WEBHOOK}\n")


def test_config_validate_exits_3_and_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "opsplane.yaml").write_text(HEAD + "services:\n  api:\n    url: postgresql://u:pw-9981@h/db\n")
    ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", "config", "validate"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert ran.returncode == 3, ran.stderr
    assert "opsplane.yaml:4:10: services.api.url: a password in a URL" in ran.stderr
    assert "pw-9981" not in ran.stderr + ran.stdout
