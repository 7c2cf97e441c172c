"""Each file's time budget, through SIGALRM: a hung read or a pathological file becomes
a `FileTimeout` instead of a stalled task. Main thread only (signals are delivered there)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.getsignal without its enum (3.6 us)
import contextlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


class time_budget:  # noqa: N801 (a context manager used as a function's call)
    """``with time_budget(seconds):`` raises `FileTimeout` once ``seconds`` have passed
    (None: no budget; off the main thread: none either, signals go to the main thread).

    A class: entered once a file, a generator-based context manager's frames and
    ``signal.getsignal``'s enum conversion cost 3-4% of a task.
    """

    __slots__ = ("seconds", "_outer")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._outer: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> None:
        if self.seconds is None or not _alarms_usable():
            self.seconds = None
            return
        if _signal.getsignal(signal.SIGALRM) is not _on_alarm:  # not within file_timeouts()
            self._outer = file_timeouts()
            self._outer.__enter__()
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.seconds is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._outer is not None:
            self._outer.__exit__(None, None, None)
        if kind is not None and issubclass(kind, FileTimeout):
            raise FileTimeout(
                f"reading took longer than the time budget of {self.seconds} s"
            ) from None
