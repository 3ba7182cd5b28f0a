"""A Celery app module written for a test, imported here, and a real worker process
running it: ``with celery_worker(dir, name, source, env, flags) as module:``."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest


@contextlib.contextmanager
def celery_worker(
    workdir: Path, name: str, source: str, env: dict[str, str], flags: Sequence[str]
) -> Iterator[ModuleType]:
    """Write ``source`` as module ``name`` in ``workdir``, start ``celery -A name worker
    *flags`` with ``env`` (set in this process too, while the worker runs), import the
    module here once the worker answers a ping; stop both afterwards."""
    (workdir / f"{name}.py").write_text(textwrap.dedent(source))
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(workdir), *sys.path])}
    log_path = workdir / "worker.log"
    log = log_path.open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", name, "worker", *flags],
        cwd=workdir,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    sys.path.insert(0, str(workdir))
    module: ModuleType | None = None
    try:
        module = importlib.import_module(name)
        deadline = time.monotonic() + 30
        while not module.app.control.ping(timeout=0.5):
            if worker.poll() is not None:
                pytest.fail(f"the Celery worker exited; its log:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not answer; its log:\n{log_path.read_text()}")
        yield module
    finally:
        if module is not None:
            gc.collect()  # the tests' AsyncResults let go of the backend while it is up
            module.app.backend.result_consumer.stop()
            module.app.close()
        sys.path.remove(str(workdir))
        sys.modules.pop(name, None)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
