"""Integrations with frameworks and task queues, each behind its own extra.

- :mod:`smtpx.contrib.django`: a Django email backend (``smtpx[django]``).
- :mod:`smtpx.contrib.arq`: an arq task that reschedules transient failures (``smtpx[arq]``).
- :mod:`smtpx.contrib.redis`: a rate limit and a concurrency cap shared by every process
  through Redis (``smtpx[redis]``).

The FastAPI recipe is an example, not a module: ``examples/fastapi_app.py``.
"""

__all__: list[str] = []
