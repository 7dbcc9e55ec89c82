"""A real SMTP server (aiosmtpd, plain SMTP on loopback) that answers by script: refuse some
recipients for now (greylisting), or take its time over each step (a tarpit)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email import message_from_bytes, policy
from types import TracebackType
from typing import Any

# a recipient address -> None to take it, or the SMTP reply that refuses it ("450 ...")
RecipientAnswer = Callable[[str], str | None]
# called, blocking, before each of MAIL, RCPT and DATA is answered, with the command's name
Step = Callable[[str], None]


class ScriptedMailServer:
    """SMTP on 127.0.0.1:`port`; `messages` holds what it accepted, parsed, with the envelope
    recipients in `recipients`."""

    def __init__(self, port: int, *, recipient: RecipientAnswer | None = None,
                 step: Step | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.port = port
        self.messages: list[Any] = []
        self.recipients: list[list[str]] = []
        outer = self

        async def pause(command: str) -> None:
            if step is not None:
                # in a worker thread: the step may wait for things this server must keep serving
                await asyncio.get_running_loop().run_in_executor(None, step, command)

        class _Handler:
            async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                                  options: list[str]) -> str:
                await pause("MAIL")
                envelope.mail_from = address
                envelope.mail_options.extend(options)
                return "250 OK"

            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                                  options: list[str]) -> str:
                await pause("RCPT")
                refusal = recipient(address) if recipient is not None else None
                if refusal is not None:
                    return refusal
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                await pause("DATA")
                outer.recipients.append(list(envelope.rcpt_tos))
                outer.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 Message accepted"

        self._controller = Controller(_Handler(), hostname="127.0.0.1", port=port)

    def __enter__(self) -> ScriptedMailServer:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()
