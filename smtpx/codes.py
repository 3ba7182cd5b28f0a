"""The reference data smtpx classifies by: reply codes, the command table, the registry.

- ``CATALOGUE``: every basic reply code smtpx knows (a ``CodeInfo``: meaning, source);
  ``describe(code, command)`` says what a code means, in reply to that command if given.
- ``TABLE``: for each ``Command``, the ``Row`` of codes the command table lists as its
  positive and negative replies; ``is_expected(command, code)`` reads it together with
  the codes RFC 5321 allows for every command.
- ``REGISTRY``: the IANA registry of enhanced status codes (RFC 3463), a
  ``RegistryEntry`` per ``(subject, detail)``; ``smtpx.EnhancedStatus.entry`` looks one up.

Pure data and lookups; what a reply *means* for your program is ``smtpx.classify``.
"""

from smtpx import _codes, _registry, _table
from smtpx._codes import *  # noqa: F403 - re-exported: the names are each module's __all__
from smtpx._registry import *  # noqa: F403
from smtpx._table import *  # noqa: F403

__all__: list[str] = []
__all__ += _codes.__all__
__all__ += _table.__all__
__all__ += _registry.__all__
