"""Errors enriched after they are made (command, recipient, refusals, undelivered, attempts).

``smtpx.errors.enrich`` is the one place that happens; ``str(error)`` and ``error.args``
are computed from the attributes, so whatever was added, in whatever order, both say the
final state, and a pickled copy (Celery, arq and Django's test runner pickle errors) says
the same.  The last test holds the "one place" to the code: no other module assigns
these attributes on an error.
"""

from __future__ import annotations

import ast
import pathlib
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx
from smtpx import Command, Reply
from smtpx.errors import enrich, recipients_refused

ERROR_CLASSES = [
    getattr(smtpx.errors, name)
    for name in smtpx.errors.__all__
    if not issubclass(getattr(smtpx.errors, name), smtpx.RecipientsRefused)
]
ADDRESSES = st.sampled_from(["a@example.com", "b@example.com", "c@example.org"])


def _refusal(address: str, code: int) -> smtpx.SMTPError:
    error = smtpx.classify(Command.RCPT, Reply.build(code, "no"), recipient=address)
    assert isinstance(error, smtpx.SMTPError)
    return error


REFUSALS = st.dictionaries(ADDRESSES, st.sampled_from([450, 452, 550, 553]), max_size=3).map(
    lambda codes: {a: _refusal(a, c) for a, c in codes.items()}
)


@st.composite
def errors(draw: st.DrawFn) -> smtpx.SMTPError:
    """Any error smtpx raises: every class, with a reply or without, and the groups."""
    if draw(st.booleans()):
        refusals = draw(REFUSALS.filter(bool))
        return recipients_refused(refusals, command=Command.RCPT)
    kind = draw(st.sampled_from(ERROR_CLASSES))
    reply = draw(st.none() | st.sampled_from([Reply.build(421, "bye"), Reply.build(554, "no")]))
    command = draw(st.none() | st.sampled_from(list(Command)))
    error: smtpx.SMTPError = kind(draw(st.none() | st.just("detail")), command=command)
    if reply is not None:
        enrich(error)  # a no-op enrichment changes nothing
        error.reply = reply
    return error


ENRICHMENTS: dict[str, Any] = {
    "command": st.none() | st.sampled_from(list(Command)),
    "recipient": st.none() | ADDRESSES,
    "rejected": REFUSALS,
    "undelivered": st.lists(ADDRESSES, max_size=3).map(tuple),
    "attempts": st.lists(st.builds(lambda: smtpx.ConnectionLost("lost")), max_size=2).map(tuple),
}


@given(
    errors(),
    st.lists(
        st.sampled_from(sorted(ENRICHMENTS)).flatmap(
            lambda key: ENRICHMENTS[key].map(lambda value: (key, value))
        ),
        max_size=6,
    ),
)
@settings(max_examples=300, deadline=None)
def test_str_and_args_say_the_final_state(
    error: smtpx.SMTPError, steps: list[tuple[str, Any]]
) -> None:
    expected: dict[str, Any] = {}
    for key, value in steps:
        assert enrich(error, **{key: value}) is error
        expected[key] = value
        assert error.args == (str(error),)
    for key, value in expected.items():
        got = getattr(error, key)
        assert got == (dict(value) if key == "rejected" else value), key
    sentence = str(error)
    if error.command is not None:
        assert sentence.startswith(error.command.label)
    if error.recipient is not None:
        assert f"<{error.recipient}>" in sentence
    for address in error.rejected:
        assert f"<{address}>" in sentence  # no refusal is lost from the message

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == sentence and copy.args == error.args
    assert copy.command is error.command and copy.recipient == error.recipient
    assert copy.undelivered == error.undelivered
    assert {a: str(r) for a, r in copy.rejected.items()} == {
        a: str(r) for a, r in error.rejected.items()
    }
    assert [str(a) for a in copy.attempts] == [str(a) for a in error.attempts]


def test_a_group_says_its_refusals_from_the_start() -> None:
    refusals = {"a@example.com": _refusal("a@example.com", 550)}
    group = recipients_refused(refusals, command=Command.RCPT)
    assert "[refused: <a@example.com> 550]" in group.args[0]
    assert group.args == (str(group),)


def test_an_attribute_set_directly_shows_in_args_too() -> None:
    # the reply parser names the command a malformed reply answered once it knows it
    error = smtpx.ProtocolError("bad", raw=b"xyz")
    error.command, error.recipient = Command.RCPT, "a@example.com"
    assert error.args == (str(error),)
    assert error.args[0].startswith("RCPT TO <a@example.com> failed")


def test_args_assigned_explicitly_stand() -> None:
    """The Django backend gives its errors smtplib's ``args``; they survive pickling."""
    error = smtpx.MailboxBusy(command=Command.RCPT, reply=Reply.build(450, "busy"))
    error.args = (450, b"busy")
    enrich(error, recipient="a@example.com")
    assert error.args == (450, b"busy")
    assert pickle.loads(pickle.dumps(error)).args == (450, b"busy")


@pytest.mark.parametrize("kind", ERROR_CLASSES)
def test_every_class_enriched_end_to_end(kind: type[smtpx.SMTPError]) -> None:
    error = enrich(
        kind("detail"),
        command=Command.DATA_END,
        rejected={"b@example.com": _refusal("b@example.com", 550)},
        undelivered=("a@example.com",),
    )
    assert error.args == (str(error),)
    assert "[refused: <b@example.com> 550]" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.args == error.args and copy.undelivered == ("a@example.com",)


ENRICHED = {"command", "recipient", "rejected", "undelivered", "attempts"}


def test_only_enrich_changes_an_error_after_it_is_made() -> None:
    root = pathlib.Path(smtpx.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        where = str(path.relative_to(root.parent))
        if where == "smtpx/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            for target in targets:
                for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (
                        isinstance(item, ast.Attribute)
                        and item.attr in ENRICHED
                        and not (isinstance(item.value, ast.Name) and item.value.id == "self")
                    ):
                        found.add((where, item.attr))
    assert not found, found
