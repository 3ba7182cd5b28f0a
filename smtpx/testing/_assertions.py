"""Assertions on what a ScriptedServer received, with failure messages that say why."""

from __future__ import annotations

from collections.abc import Iterable

from smtpx.testing._server import ReceivedMessage, ScriptedServer

__all__ = ["assert_not_sent", "assert_sent"]


def _matching(
    server: ScriptedServer,
    to: str | Iterable[str] | None,
    sender: str | None,
    subject: str | None,
    contains: str | None,
) -> tuple[list[ReceivedMessage], list[str]]:
    wanted_to = [to] if isinstance(to, str) else list(to or ())
    wanted = {address.casefold() for address in wanted_to}
    found = []
    for message in list(server.messages):
        rcpts = {r.casefold() for r in message.rcpt_tos}
        if not wanted <= rcpts:
            continue
        if sender is not None and message.mail_from.casefold() != sender.casefold():
            continue
        if subject is not None and message.subject != subject:
            continue
        if contains is not None and contains not in message.text:
            continue
        found.append(message)
    criteria = [f"to {', '.join(f'<{a}>' for a in wanted_to)}"] if wanted_to else []
    if sender is not None:
        criteria.append(f"from <{sender}>")
    if subject is not None:
        criteria.append(f"with subject {subject!r}")
    if contains is not None:
        criteria.append(f"containing {contains!r}")
    return found, criteria


def _report(server: ScriptedServer) -> str:
    lines = [f"the server accepted {len(server.messages)} message(s)"]
    lines += [f"  #{n} {m.describe()}" for n, m in enumerate(server.messages, 1)]
    fired = [rule for rule in server.rules if rule.hits]
    if fired:
        lines.append("scripted replies sent:")
        for rule in fired:
            action = rule.reply if rule.reply is not None else (rule.raw or b"")
            action = repr(action) + (" and closed" if rule.close else "")
            action += " and hung" if rule.hang else ""
            where = f" matching {rule.match!r}" if rule.match else ""
            lines.append(f"  {rule.command}{where}: {action} x{rule.hits}")
    return "\n".join(lines)


def assert_sent(
    server: ScriptedServer,
    *,
    to: str | Iterable[str] | None = None,
    sender: str | None = None,
    subject: str | None = None,
    contains: str | None = None,
    count: int | None = None,
) -> list[ReceivedMessage]:
    """Assert that *server* accepted messages matching every criterion given; return them.

    :param to: a recipient (or several) that must each be in the message's envelope
        (compared case-insensitively).
    :param sender: the envelope sender (MAIL FROM).
    :param subject: the exact decoded Subject.
    :param contains: text that must appear in a decoded ``text/*`` part.
    :param count: how many messages must match; ``None``: at least one.

    The failure message lists what the server did receive and which scripted replies
    it sent, so a failing test says why nothing arrived.
    """
    __tracebackhide__ = True
    found, criteria = _matching(server, to, sender, subject, contains)
    if (count is None and found) or len(found) == count:
        return found
    expected = "at least 1" if count is None else str(count)
    described = " ".join(criteria) if criteria else "(any)"
    raise AssertionError(
        f"expected {expected} message(s) {described}, found {len(found)};\n{_report(server)}"
    )


def assert_not_sent(
    server: ScriptedServer,
    *,
    to: str | Iterable[str] | None = None,
    sender: str | None = None,
    subject: str | None = None,
    contains: str | None = None,
) -> None:
    """Assert that *server* accepted no message matching the criteria (none at all when
    no criterion is given)."""
    __tracebackhide__ = True
    found, criteria = _matching(server, to, sender, subject, contains)
    if found:
        described = " ".join(criteria) if criteria else "at all"
        raise AssertionError(
            f"expected no message {described}, found {len(found)};\n{_report(server)}"
        )
