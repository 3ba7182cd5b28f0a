"""LoopThread: the one event-loop thread behind SyncClient, send_sync, Django and testing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pathlib
import threading

import pytest

import smtpx
from smtpx.loopthread import LoopThread, result_of
from smtpx.testing import serve_in_thread

SOURCE = pathlib.Path(smtpx.__file__).parent


class Boom(Exception):
    pass


async def forever(cancelled: threading.Event, started: threading.Event | None = None) -> None:
    if started is not None:
        started.set()
    try:
        await asyncio.Event().wait()
    finally:
        cancelled.set()


def test_run_returns_the_result_on_the_loops_own_thread() -> None:
    runner = LoopThread("smtpx-test-loop")

    async def where() -> tuple[threading.Thread, bool]:
        return threading.current_thread(), runner.in_thread()

    try:
        thread, inside = runner.run(where())
        assert thread is runner.thread
        assert thread is not threading.current_thread()
        assert thread.name == "smtpx-test-loop" and thread.daemon
        assert inside and not runner.in_thread()
    finally:
        runner.stop()


def test_an_exception_is_raised_as_is_not_wrapped() -> None:
    runner = LoopThread("smtpx-test-loop")
    raised = Boom("the very object")

    async def fail() -> None:
        raise raised

    try:
        with pytest.raises(Boom) as info:
            runner.run(fail())
        assert info.value is raised
    finally:
        runner.stop()


def test_stop_leaves_no_thread_behind_executor_threads_included() -> None:
    before = set(threading.enumerate())
    runner = LoopThread("smtpx-test-loop")

    async def use_the_executor() -> str:
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    worker = runner.run(use_the_executor())
    assert worker != "smtpx-test-loop"  # a second thread, the loop's executor
    assert len(set(threading.enumerate()) - before) >= 2
    runner.stop()
    assert set(threading.enumerate()) <= before
    assert not runner.running and runner.thread is None


def test_stop_cancels_what_is_still_pending() -> None:
    runner = LoopThread("smtpx-test-loop")
    cancelled, started = threading.Event(), threading.Event()
    future = runner.submit(forever(cancelled, started))
    assert started.wait(timeout=10)
    runner.stop()
    assert cancelled.is_set()
    assert future.cancelled()


def test_an_interrupted_wait_cancels_the_call() -> None:
    runner = LoopThread("smtpx-test-loop")
    cancelled = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            runner.run(forever(cancelled), timeout=0)  # gives up at once, as Ctrl-C would
        assert cancelled.wait(timeout=10)
    finally:
        runner.stop()


def test_result_of_cancels_a_future_it_gave_up_on() -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    with pytest.raises(TimeoutError):
        result_of(future, timeout=0)
    assert future.cancelled()


def test_it_restarts_on_a_new_thread_after_stop() -> None:
    runner = LoopThread("smtpx-test-loop")

    async def thread() -> threading.Thread:
        return threading.current_thread()

    first = runner.run(thread())
    runner.stop()
    assert not first.is_alive()
    second = runner.run(thread())
    try:
        assert second is not first and second.is_alive()
    finally:
        runner.stop()
    assert not second.is_alive()


def test_stop_from_the_loops_own_thread_does_not_deadlock() -> None:
    runner = LoopThread("smtpx-test-loop")

    async def stop_myself() -> threading.Thread:
        runner.stop()  # cannot join itself: stops without waiting
        return threading.current_thread()

    thread = runner.submit(stop_myself())
    thread.result(timeout=10).join(timeout=10)
    assert not runner.running


def test_stop_and_call_soon_when_stopped_do_nothing() -> None:
    runner = LoopThread("smtpx-test-loop")
    runner.stop()
    assert runner.call_soon(lambda: None) is False
    assert not runner.running
    assert "stopped" in repr(runner)


def test_call_soon_runs_on_the_loop_thread() -> None:
    runner = LoopThread("smtpx-test-loop")
    runner.start()
    ran_on: list[threading.Thread] = []
    done = threading.Event()

    def record() -> None:
        ran_on.append(threading.current_thread())
        done.set()

    try:
        assert runner.call_soon(record)
        assert done.wait(timeout=10)
        assert ran_on == [runner.thread]
    finally:
        runner.stop()


def test_serve_in_thread_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with serve_in_thread() as server:
        assert server.port != 0
        names = {t.name for t in threading.enumerate()}
        assert "smtpx-scripted-server" in names
    assert set(threading.enumerate()) <= before


def test_only_loopthread_starts_event_loop_threads() -> None:
    # One implementation: every other module runs its loop thread through LoopThread.
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.name != "loopthread.py"
        and any(
            call in path.read_text()
            for call in ("new_event_loop(", "threading.Thread(", "run_coroutine_threadsafe(")
        )
    ]
    assert offenders == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_forked_child_starts_its_own_loop_thread() -> None:
    runner = LoopThread("smtpx-test-loop")

    async def pid() -> int:
        return os.getpid()

    assert runner.run(pid()) == os.getpid()  # running in the parent before the fork
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit status
            try:
                ok = not runner.running and runner.run(pid(), timeout=30) == os.getpid()
                runner.stop()
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert runner.run(pid()) == os.getpid()  # the parent's thread is untouched
    finally:
        runner.stop()
