"""Fuzz target for the reply parser and the classifier, for atheris (libFuzzer).

    pip install atheris
    python fuzz/fuzz_reply.py -max_total_time=60

Any exception other than ``smtpx.ProtocolError`` from ``Reply.parse``, or any
exception at all from ``classify``, is a crash.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import smtpx


def test_one_input(data: bytes) -> None:
    try:
        reply = smtpx.Reply.parse(data)
    except smtpx.ProtocolError:
        return
    for command in smtpx.Command:
        result = smtpx.classify(command, reply)
        str(result)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
