"""Every size limit of the SMTP session, in one place.

The reply framer, the strict reply parser and the I/O edges read them from here.
"""

from __future__ import annotations

__all__ = ["MAX_LINES", "MAX_LINE_LENGTH", "MAX_UNREAD", "WRITE_SLICE"]

# RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets; real servers exceed it in
# EHLO and banner lines, so we allow 1000 (the text-line limit) and no more.
MAX_LINE_LENGTH = 1000
# An endless multi-line reply must not exhaust memory.
MAX_LINES = 100
# Reply octets kept unframed; a thousand pipelined one-line replies fit.
MAX_UNREAD = 1024 * 1024
# Octets an edge hands to its transport at a time: a large message goes in slices of
# the caller's own buffer (no copy), so the transport's buffer stays small.
WRITE_SLICE = 256 * 1024
# The transport's buffer may hold this much before the edge stops handing it slices,
# and is refilled once it is down to WRITE_BUFFER_LOW: enough that the socket does
# not run dry while the event loop comes round (with asyncio's default of 64 KiB the
# client waited for each slice to drain), little next to a large message (asyncio
# on Python 3.11 copies what it buffers).
WRITE_BUFFER_HIGH = 512 * 1024
WRITE_BUFFER_LOW = 128 * 1024
