"""Shared fixtures: real Postfix and smtp-sink servers (started once, stopped by PID)."""

from realservers import postfix_server, smtp_sink  # noqa: F401
