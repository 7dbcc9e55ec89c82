"""E-mail over SMTP with STARTTLS: plain text and HTML in one message.

The Message-ID is derived from the notification's key, so a message sent twice after a lost
answer carries the same id and mail clients show it once; the resolve of a group replies to
its trigger (`In-Reply-To`), so they thread together.
"""

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.channels.base import Outcome, SendResult, redact
from opsplane.links import web_link
from opsplane.notify.models import EmailChannel, Notification, Status


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@opsplane>"


def format_email(notification: Notification, *, sender: str, to: list[str], clock: Clock | None = None
                 ) -> EmailMessage:
    """The message: subject is the title, the body the details, runbook and links, twice
    (text/plain for terminals and filters, text/html for mail clients)."""
    n = notification
    message = EmailMessage()
    message["Subject"] = n.title()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime((clock or SystemClock()).now())
    message["Message-ID"] = message_id(n.key)
    thread = message_id(f"group:{n.group}")
    if n.status is Status.TRIGGER:
        message["References"] = thread
    else:
        message["In-Reply-To"] = thread
        message["References"] = thread
    message["X-Opsplane-Group"] = n.group
    message["X-Opsplane-Severity"] = n.severity.value
    message.set_content(_plain(n))
    message.add_alternative(_html(n), subtype="html")
    return message


def _plain(n: Notification) -> str:
    lines = [n.title(), "", f"Severity: {n.severity.value}", f"Status:   {n.status.value}"]
    if n.service:
        lines.append(f"Service:  {n.service}")
    if n.details:
        lines += ["", n.details]
    if n.runbook:
        lines += ["", f"Runbook: {n.runbook}"]
    for link in n.links:
        lines.append(f"{link.text}: {link.href}")
    lines += ["", f"-- {n.source}, group {n.group}"]
    return "\n".join(lines) + "\n"


def _html(n: Notification) -> str:
    e = html.escape
    rows = [("Severity", n.severity.value), ("Status", n.status.value)]
    if n.service:
        rows.append(("Service", n.service))
    table = "".join(f"<tr><th align=\"left\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    parts = [f"<h2>{e(n.title())}</h2>", f"<table>{table}</table>"]
    if n.details:
        parts.append(f"<pre>{e(n.details)}</pre>")
    links = ([("Runbook", n.runbook)] if n.runbook else []) + [(x.text, x.href) for x in n.links]
    if links:
        items = "".join(f"<li><a href=\"{e(href, quote=True)}\">{e(text)}</a></li>" if web_link(href)
                        else f"<li>{e(text)}: <code>{e(href)}</code></li>" for text, href in links)
        parts.append(f"<ul>{items}</ul>")
    parts.append(f"<p><small>{e(n.source)}, group {e(n.group)}</small></p>")
    return "<html><body>" + "".join(parts) + "</body></html>\n"


class EmailDriver:
    def __init__(self, name: str, settings: EmailChannel, *, password: str | None,
                 clock: Clock | None = None) -> None:
        self.name = name
        self._settings = settings
        self._password = password
        self._clock = clock
        self._tls = ssl.create_default_context(cafile=settings.ca_file)

    def send(self, notification: Notification) -> SendResult:
        s = self._settings
        # a page to one person goes to that person, not to the channel's list
        to = [notification.to] if notification.to else s.to
        message = format_email(notification, sender=s.sender, to=to, clock=self._clock)
        secrets = (self._password,) if self._password else ()
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if s.username and self._password:
                    smtp.login(s.username, self._password)
                refused = smtp.send_message(message)
        except smtplib.SMTPNotSupportedError:
            return SendResult(Outcome.FAILED, f"{s.host}:{s.port} does not offer STARTTLS")
        except smtplib.SMTPResponseException as exc:
            # 4xx: the server asks us to come back later; 5xx: it refuses this message
            text = redact(exc.smtp_error.decode(errors="replace")
                          if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error), secrets)
            outcome = Outcome.RETRY if 400 <= exc.smtp_code < 500 else Outcome.FAILED
            return SendResult(outcome, f"SMTP {exc.smtp_code}: {text}"[:300], exc.smtp_code)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            outcome = Outcome.RETRY if all(400 <= c < 500 for c in codes) else Outcome.FAILED
            return SendResult(outcome, f"every recipient refused: {sorted(exc.recipients)}")
        except ssl.SSLCertVerificationError as exc:
            return SendResult(Outcome.FAILED, f"certificate of {s.host} not trusted ({exc.verify_message});"
                              " set ca_file to the CA that signed it")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult(Outcome.RETRY, redact(f"{type(exc).__name__}: {exc}", secrets)[:300])
        if refused:
            return SendResult(Outcome.DELIVERED, f"delivered; refused by the server: {sorted(refused)}")
        return SendResult(Outcome.DELIVERED, "accepted")

    def close(self) -> None:
        pass
