"""The integration examples run as documented and print what they promise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from realservers import real_servers_required

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"{module} is not installed")


def test_django_example() -> None:
    need("django")
    out = run("django_backend.py")
    assert "sent: 1\n" in out
    assert "sent, with bob refused: 1\n" in out
    assert "raised: AllRecipientsRejected" in out
    assert "smtplib's view: {'dave@example.com': (550, b'5.7.1 Relaying denied')}" in out
    assert "raised: AuthRequired 530 auth_required" in out


def test_celery_example() -> None:
    need("celery")
    out = run("celery_task.py").splitlines()
    assert out[:2] == ["attempts: 2", "accepted: alice@example.com, bob@example.com"]
    assert out[2].startswith("rejected: carol@example.com: RCPT TO <carol@example.com> failed")
    assert out[3] == "copies received: {'alice@example.com': 1, 'bob@example.com': 1}"


def test_fastapi_example() -> None:
    need("fastapi")
    need("httpx")
    out = run("fastapi_app.py")
    assert out.splitlines() == [
        "200 {'accepted': ['alice@example.com'], 'rejected': {}}",
        "503 AllRecipientsDeferred 300",
        "422 AllRecipientsRejected",
    ]


def test_arq_example() -> None:
    need("arq")
    if shutil.which("redis-server") is None:
        if real_servers_required():
            pytest.fail("redis-server is not installed [CI=true: not skipping]")
        pytest.skip("redis-server is not installed")
    out = run("arq_task.py")
    assert out.splitlines() == ["delivery 1: alice@example.com", "delivery 2: bob@example.com"]
