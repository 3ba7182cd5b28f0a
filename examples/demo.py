"""Demo: classify a few real-world server replies (the client demo replaces this soon)."""

from __future__ import annotations

import smtpx

REPLIES = [
    (smtpx.Command.RCPT, "550 5.1.1 <bob@example.com>: Recipient address rejected"),
    (smtpx.Command.RCPT, "450 4.2.1 Greylisted, try again in 300 seconds"),
    (smtpx.Command.AUTH, "535 5.7.8 Authentication credentials invalid"),
    (smtpx.Command.RCPT, "250 2.1.5 Ok"),
]

for command, raw in REPLIES:
    result = smtpx.classify(command, smtpx.Reply.parse(raw + "\r\n"))
    print(f"{command.label:>8} {raw}\n         -> {type(result).__name__}: {result}\n")
