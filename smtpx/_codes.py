"""The reply-code catalogue: every code smtpx knows, what it means, and where it comes from.

The first block is the Response Codes list of the command table
(``smtpx/data/command-table.txt``), in our own words where the original is
garbled; the second block holds the codes of RFC 5321, 3207, 4954, 7504 and
3463 that the table omits.  Pure data; no I/O.
"""

from __future__ import annotations

import attrs

from smtpx._severity import Severity

__all__ = ["CATALOGUE", "CodeInfo", "describe"]


@attrs.frozen
class CodeInfo:
    """One basic reply code: what it means and where that meaning comes from."""

    code: int
    meaning: str
    source: str

    @property
    def severity(self) -> Severity:
        return Severity.of_code(self.code)


_TABLE = "command table"

CATALOGUE: dict[int, CodeInfo] = {
    info.code: info
    for info in (
        # -- the command table's Response Codes list (48 codes) --
        CodeInfo(101, "could not connect to the server (wrong host name or port)", _TABLE),
        CodeInfo(211, "system status (reply to HELP)", _TABLE),
        CodeInfo(214, "help message (reply to HELP)", _TABLE),
        CodeInfo(220, "server ready", _TABLE),
        CodeInfo(221, "server is closing the connection", _TABLE),
        CodeInfo(235, "authentication succeeded", _TABLE),
        CodeInfo(250, "requested action completed", _TABLE),
        CodeInfo(251, "user not local; the server will forward the message", _TABLE),
        CodeInfo(252, "cannot verify the user, but will accept the message and try", _TABLE),
        CodeInfo(334, "authentication challenge: send the next step", _TABLE),
        CodeInfo(354, "start mail input; end with <CRLF>.<CRLF>", _TABLE),
        CodeInfo(421, "service not available; the server is closing the connection", _TABLE),
        CodeInfo(422, "the recipient's mailbox has exceeded its storage limit", _TABLE),
        CodeInfo(431, "too many messages to this domain (server overloaded)", _TABLE),
        CodeInfo(441, "no response from the recipient's server", _TABLE),
        CodeInfo(442, "connection dropped", _TABLE),
        CodeInfo(446, "internal loop detected", _TABLE),
        CodeInfo(450, "mailbox unavailable (busy or temporarily blocked)", _TABLE),
        CodeInfo(451, "aborted: local error in processing", _TABLE),
        CodeInfo(452, "aborted: insufficient system storage", _TABLE),
        CodeInfo(454, "TLS not available for a temporary reason", _TABLE),
        CodeInfo(455, "server unable to accommodate the parameters", _TABLE),
        CodeInfo(471, "deferred by the server's local spam filter", _TABLE),
        CodeInfo(500, "syntax error: command not recognised (or line too long)", _TABLE),
        CodeInfo(501, "syntax error in parameters or arguments", _TABLE),
        CodeInfo(502, "command not implemented", _TABLE),
        CodeInfo(503, "bad sequence of commands", _TABLE),
        CodeInfo(504, "command parameter not implemented", _TABLE),
        CodeInfo(510, "invalid email address", _TABLE),
        CodeInfo(512, "DNS error: the recipient's domain was not found", _TABLE),
        CodeInfo(523, "the total size of the mailing exceeds the server's limit", _TABLE),
        CodeInfo(530, "authentication required (often: issue STARTTLS first)", _TABLE),
        CodeInfo(535, "authentication credentials invalid", _TABLE),
        CodeInfo(538, "encryption required for the requested authentication mechanism", _TABLE),
        CodeInfo(541, "message rejected by the spam filter", _TABLE),
        CodeInfo(550, "mailbox unavailable (not found, or refused by policy)", _TABLE),
        CodeInfo(551, "user not local; the server names another forward-path", _TABLE),
        CodeInfo(552, "aborted: exceeded storage allocation (mailbox full)", _TABLE),
        CodeInfo(553, "mailbox name not allowed (syntactically incorrect)", _TABLE),
        CodeInfo(554, "transaction failed (or: no SMTP service here)", _TABLE),
        CodeInfo(555, "MAIL FROM/RCPT TO parameters not recognised or not implemented", _TABLE),
        # -- codes the table omits --
        CodeInfo(432, "a password transition is needed", "RFC 4954 §4.7"),
        CodeInfo(453, "system not accepting network messages", "RFC 3463 X.3.2"),
        CodeInfo(458, "unable to queue messages for the node", "RFC 1985"),
        CodeInfo(459, "node not allowed", "RFC 1985"),
        CodeInfo(521, "this host does not accept mail", "RFC 7504"),
        CodeInfo(534, "authentication mechanism is too weak", "RFC 4954 §6"),
        CodeInfo(556, "the recipient's domain does not accept mail", "RFC 7504"),
    )
}
"""Every basic reply code smtpx knows, by code."""


# Codes whose meaning depends on the command they answer.
_IN_REPLY_TO: dict[tuple[str, int], str] = {
    ("AUTH", 454): "temporary authentication failure (RFC 4954)",
    ("AUTH", 334): "authentication challenge: send the next step",
    ("CONNECT", 554): "no SMTP service here",
    ("STARTTLS", 220): "ready to start TLS",
    ("RCPT", 552): "mailbox full or too many recipients; temporary (RFC 5321 §4.5.3.1.10)",
}


def describe(code: int, command: str | None = None) -> str:
    """The meaning of ``code`` (in reply to ``command``, a ``Command`` name, if given)."""
    specific = _IN_REPLY_TO.get((command, code)) if command else None
    if specific is not None:
        return specific
    info = CATALOGUE.get(code)
    if info is not None:
        return info.meaning
    return {
        Severity.SUCCESS: "positive reply (not in the catalogue)",
        Severity.TRANSIENT: "temporary failure (code not in the catalogue)",
        Severity.PERMANENT: "permanent failure (code not in the catalogue)",
    }[Severity.of_code(code)]
