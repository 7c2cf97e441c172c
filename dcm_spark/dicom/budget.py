"""Each file's time budget, through SIGALRM: a hung read or a pathological file becomes
a `FileTimeout` instead of a stalled task. Main thread only (signals are delivered there)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from dcm_spark.errors import DcmSparkError


class FileTimeout(DcmSparkError, TimeoutError):
    """A file took longer than ``HeaderOptions.time_budget``."""


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise FileTimeout("reading took longer than the time budget")


def _alarms_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def alarms_free() -> bool:
    """Whether time budgets may take SIGALRM here without disturbing anyone: the main
    thread, no one else's handler, no interval timer running (a host program's timeouts)."""
    return (
        _alarms_usable()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, _on_alarm)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )


@contextmanager
def file_timeouts() -> Iterator[None]:
    """SIGALRM raises `FileTimeout` meanwhile: the handler each file's time budget needs,
    installed once for many files (re-installing it per file cost 4% of a task)."""
    if not _alarms_usable():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    if seconds is None or not _alarms_usable():
        yield
        return
    installed = signal.getsignal(signal.SIGALRM) is _on_alarm
    with nullcontext() if installed else file_timeouts():
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        except FileTimeout:
            raise FileTimeout(f"reading took longer than the time budget of {seconds} s") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
