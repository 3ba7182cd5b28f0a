"""smtpx: send mail, and know exactly what every server reply meant.

The public API is re-exported here; see ``smtpx.errors`` for the exception tree and
``smtpx.codes`` for the reference tables (reply codes, command table, enhanced-code
registry).  Each module says what it offers in its own ``__all__``; the names here are
exactly the union of those of the modules below, so no name is listed twice.
"""

import logging as _logging

from smtpx import (
    _classify,
    _commands,
    _compose,
    _dry_run,
    _dsn,
    _end_of_message,
    _enhanced,
    _envelope,
    _explain,
    _message,
    _oauth,
    _oneshot,
    _rate_limit,
    _reasons,
    _reply,
    _secret,
    _severity,
    _tls,
    client,
    config,
    errors,
    pool,
    results,
    retry,
    sync,
)

# smtpx.codes (the reference tables) is public as a module, loaded with the package.
from smtpx import codes as codes

# F403: a star import takes exactly the module's __all__, which is the point here.
from smtpx._classify import *  # noqa: F403
from smtpx._commands import *  # noqa: F403
from smtpx._compose import *  # noqa: F403
from smtpx._dry_run import *  # noqa: F403
from smtpx._dsn import *  # noqa: F403
from smtpx._end_of_message import *  # noqa: F403
from smtpx._enhanced import *  # noqa: F403
from smtpx._envelope import *  # noqa: F403
from smtpx._explain import *  # noqa: F403
from smtpx._message import *  # noqa: F403
from smtpx._oauth import *  # noqa: F403
from smtpx._oneshot import *  # noqa: F403
from smtpx._rate_limit import *  # noqa: F403
from smtpx._reasons import *  # noqa: F403
from smtpx._reply import *  # noqa: F403
from smtpx._secret import *  # noqa: F403
from smtpx._severity import *  # noqa: F403
from smtpx._tls import *  # noqa: F403
from smtpx.client import *  # noqa: F403
from smtpx.config import *  # noqa: F403
from smtpx.errors import *  # noqa: F403
from smtpx.pool import *  # noqa: F403
from smtpx.results import *  # noqa: F403
from smtpx.retry import *  # noqa: F403
from smtpx.sync import *  # noqa: F403

# ``__all__ += module.__all__`` is the form mypy and pyright both read as re-exports.
__all__: list[str] = []
__all__ += _classify.__all__
__all__ += _commands.__all__
__all__ += _compose.__all__
__all__ += _dry_run.__all__
__all__ += _dsn.__all__
__all__ += _end_of_message.__all__
__all__ += _envelope.__all__
__all__ += _enhanced.__all__
__all__ += _explain.__all__
__all__ += _message.__all__
__all__ += _oauth.__all__
__all__ += _oneshot.__all__
__all__ += _rate_limit.__all__
__all__ += _reasons.__all__
__all__ += _reply.__all__
__all__ += _secret.__all__
__all__ += _severity.__all__
__all__ += _tls.__all__
__all__ += client.__all__
__all__ += config.__all__
__all__ += errors.__all__
__all__ += pool.__all__
__all__ += results.__all__
__all__ += retry.__all__
__all__ += sync.__all__

# A library logs, the application decides where to: nothing is printed by default.
_logging.getLogger("smtpx").addHandler(_logging.NullHandler())
