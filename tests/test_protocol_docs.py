"""docs/protocol.md shows the state tables exactly as the code has them."""

from __future__ import annotations

from pathlib import Path

from smtpx.protocol.states import ISSUE, ON_REPLY, State

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()

WAITING = {
    State.TLS_HANDSHAKE: "— (the edge does the handshake, then calls `tls_established()`)",
    State.CLOSED: "— (`SessionClosed`)",
}


def state_table() -> str:
    lines = ["| state | meaning | allows (→ next state) |", "|---|---|---|"]
    for state in State:
        moves = ISSUE.get(state)
        allows = (
            ", ".join(
                f"`{intent.name}`" + (f" → `{then.name}`" if then is not None else "")
                for intent, then in moves.items()
            )
            if moves
            else WAITING.get(state, "— (waits for a reply)")
        )
        lines.append(f"| `{state.name}` | {state.value} | {allows} |")
    return "\n".join(lines)


def reply_table() -> str:
    lines = ["| in state | the reply to | positive → | negative → |", "|---|---|---|---|"]
    for (state, command), (good, bad) in ON_REPLY.items():
        lines.append(f"| `{state.name}` | {command.name} | `{good.name}` | `{bad.name}` |")
    return "\n".join(lines)


def test_the_state_table_is_the_code_s() -> None:
    assert state_table() in PAGE


def test_the_reply_table_is_the_code_s() -> None:
    assert reply_table() in PAGE
