"""smtpx.contrib.celery end to end: a real Redis and a real Celery worker (a subprocess),
both started here, sending to a scripted SMTP server in this process.

Redis comes from the Debian package ``redis-server``. Without it these tests skip, unless
``CI=true`` or ``SMTPX_REQUIRE_REAL_SERVERS=1``: then they fail.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from celeryworker import celery_worker
from redisserver import running_redis

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("celery", reason="the Celery task needs the celery extra")

import smtpx
from smtpx.contrib.celery import Mailer, enqueue_mail
from smtpx.testing import ScriptedServer, assert_sent, serve_in_thread

ALICE, BOB = "alice@example.com", "bob@example.com"
MESSAGE = (
    b"From: shop@example.com\r\nTo: alice@example.com, bob@example.com\r\n"
    b"Subject: Your order\r\n\r\nIt has shipped.\r\n"
)
DELAY = 0.05  # the worker's backoff: each retry waits exactly this long
MAX_HINT = 0.3  # ... or, when the reply asks for longer, this long
GREYLISTED = "450 4.2.0 Greylisted, try again later"
WAIT = 20  # seconds a result may take, at most (a loaded machine)
# Celery's Redis result backend calls a redis-py function in a way redis-py deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Call to 'get_connection':DeprecationWarning")


@pytest.fixture(autouse=True)
def no_cyclic_gc_inside_redis_calls() -> Iterator[None]:
    """Celery's Redis result backend can deadlock when the cyclic garbage collector
    runs an ``AsyncResult.__del__`` in the middle of a pub/sub SUBSCRIBE (it re-enters
    redis-py's lock; celery/celery#10477, seen here hanging a matrix leg for good): the
    collector runs between the tests, never during one."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


# The app the worker runs and this process enqueues to: what a project's celery.py holds.
APP = """
import os

from celery import Celery

import smtpx
from smtpx.contrib.celery import Mailer, register

app = Celery("smtpx_test", broker=os.environ["BROKER_URL"], backend=os.environ["BROKER_URL"])
app.conf.broker_connection_retry_on_startup = True
mailer = Mailer(
    "127.0.0.1",
    int(os.environ["SMTP_PORT"]),
    tls=smtpx.TLSMode.NONE,
    local_hostname="worker.test",
    timeout=5,
    max_attempts=3,
    backoff=smtpx.Backoff(initial={delay}, maximum={delay}, jitter=0, max_hint={max_hint}),
)
send_mail = register(app, mailer)
"""


WORKER_FLAGS = ("--pool=solo", "--without-gossip", "--without-mingle", "--loglevel=INFO")


@pytest.fixture(scope="module")
def smtp() -> Iterator[ScriptedServer]:
    with serve_in_thread() as server:
        yield server


@pytest.fixture(scope="module")
def celery_app(
    smtp: ScriptedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The app module, imported here, with a worker running it in a subprocess."""
    workdir = tmp_path_factory.mktemp("celery")
    with running_redis(workdir) as port:
        env = {"BROKER_URL": f"redis://127.0.0.1:{port}/0", "SMTP_PORT": str(smtp.port)}
        source = APP.format(delay=DELAY, max_hint=MAX_HINT)
        with celery_worker(workdir, "smtpx_celery_app", source, env, WORKER_FLAGS) as module:
            yield module


@pytest.fixture
def server(smtp: ScriptedServer, celery_app: ModuleType) -> ScriptedServer:
    """The module's scripted server, without the rules and mail of the tests before."""
    smtp.clear()
    smtp.messages.clear()
    smtp.transcript.clear()
    return smtp


def send(app: ModuleType, message: bytes = MESSAGE, **options: Any) -> Any:
    return enqueue_mail(app.send_mail, message, **options)


def rcpt_lines(server: ScriptedServer) -> list[bytes]:
    return [line for line in server.transcript if line.upper().startswith(b"RCPT")]


def test_delivered_at_once(server: ScriptedServer, celery_app: ModuleType) -> None:
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome == {
        "attempts": 1,
        "accepted": [ALICE, BOB],
        "rejected": {},
        "unknown": [],
        "gave_up": {},
        "delays": [],
    }
    [received] = assert_sent(server, to=[ALICE, BOB], subject="Your order", count=1)
    assert received.mail_from == "shop@example.com"


def test_a_greylisted_recipient_is_retried_alone(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("RCPT", match=BOB, reply=GREYLISTED, times=1)
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome["attempts"] == 2 and outcome["delays"] == [DELAY]
    assert outcome["accepted"] == [ALICE, BOB]
    assert len(server.received_by(ALICE)) == 1  # never a second copy
    assert len(server.received_by(BOB)) == 1
    assert rcpt_lines(server) == [b"RCPT TO:<" + r.encode() + b">" for r in (ALICE, BOB, BOB)]
    # the retry sends the same bytes: one Message-ID for both copies
    ids = {m.message["Message-ID"] for m in server.messages}
    assert len(ids) == 1


def test_the_servers_hint_sets_the_countdown(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("RCPT", match=BOB, reply="450 4.2.0 Greylisted, try again in 5 seconds", times=1)
    outcome = send(celery_app).get(timeout=WAIT)
    # smtpx.suggested_delay: the server's 5 s, capped by the backoff's max_hint
    assert outcome["delays"] == [MAX_HINT]
    assert outcome["accepted"] == [ALICE, BOB]


def test_a_permanent_refusal_is_never_retried(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("RCPT", match=BOB, reply="550 5.1.1 No such user")
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome["attempts"] == 1 and outcome["accepted"] == [ALICE]
    assert list(outcome["rejected"]) == [BOB] and "550 5.1.1" in outcome["rejected"][BOB]
    assert len(rcpt_lines(server)) == 2


def test_nobody_accepted_fails_with_the_typed_error(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("RCPT", reply="550 5.1.1 No such user")
    result = send(celery_app)
    with pytest.raises(smtpx.AllRecipientsRejected):
        result.get(timeout=WAIT)
    assert result.state == "FAILURE"
    assert len(rcpt_lines(server)) == 2  # one attempt


def test_delivery_unknown_is_never_resent(server: ScriptedServer, celery_app: ModuleType) -> None:
    server.on("DATA_END", close=True, record=True)  # accepted, but the reply is lost
    result = send(celery_app)
    with pytest.raises(smtpx.DeliveryUnknown):
        result.get(timeout=WAIT)
    assert result.state == "FAILURE"  # final: a retry would have been RETRY, then more
    assert len(server.messages) == 1


def test_delivery_unknown_on_a_retry_is_reported(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("RCPT", match=BOB, reply=GREYLISTED, times=1)
    server.on("DATA_END", reply="250 OK", times=1)
    server.on("DATA_END", close=True, record=True)
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome["attempts"] == 2
    assert outcome["accepted"] == [ALICE] and outcome["unknown"] == [BOB]
    assert len(server.messages) == 2  # and no third


def test_gives_up_after_max_attempts(server: ScriptedServer, celery_app: ModuleType) -> None:
    server.on("RCPT", match=BOB, reply=GREYLISTED)
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome["attempts"] == 3 and outcome["delays"] == [DELAY, DELAY]
    assert outcome["accepted"] == [ALICE] and list(outcome["gave_up"]) == [BOB]
    only_alice = send(celery_app, recipients=[BOB])
    with pytest.raises(smtpx.AllRecipientsDeferred):
        only_alice.get(timeout=WAIT)
    assert len(server.received_by(ALICE)) == 1


def test_a_connection_failure_is_retried_for_everyone(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    server.on("CONNECT", reply="421 4.3.2 Try again later", close=True, times=1)
    server.on("MAIL", reply="421 4.3.2 Shutting down", close=True, times=1)
    outcome = send(celery_app).get(timeout=WAIT)
    assert outcome["accepted"] == [ALICE, BOB]
    assert outcome["attempts"] >= 2
    assert len(server.messages) == 1


def test_bcc_is_delivered_without_the_header(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    message = MESSAGE.replace(b"Subject:", b"Bcc: carol@example.com\r\nSubject:")
    outcome = send(celery_app, message).get(timeout=WAIT)
    assert outcome["accepted"] == [ALICE, BOB, "carol@example.com"]
    [received] = server.messages
    assert received.message["Bcc"] is None


def test_ignore_result_passes_through_and_subscribes_to_nothing(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    # what the docs offer against Celery's own pub/sub hang: no SUBSCRIBE for the result
    consumer = celery_app.app.backend.result_consumer
    result = send(celery_app, ignore_result=True)
    assert not any(result.id.encode() in key for key in consumer.subscribed_to)
    deadline = time.monotonic() + WAIT
    while not server.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_sent(server, to=[ALICE, BOB], subject="Your order", count=1)


def test_a_bad_address_fails_in_the_application(
    server: ScriptedServer, celery_app: ModuleType
) -> None:
    with pytest.raises(smtpx.InvalidEnvelope):
        send(celery_app, recipients=["bob@example.com\r\nRCPT TO:<evil@example.com>"])
    backend = celery_app.app.backend.client
    assert backend.llen("celery") == 0  # nothing was queued


def test_mailer_refuses_bad_options() -> None:
    with pytest.raises(smtpx.UsageError):
        Mailer("127.0.0.1", max_attempts=0)
    with pytest.raises(smtpx.UsageError):
        Mailer("127.0.0.1", tls="sometimes")
