"""dcm_spark.dicom.budget: a file that hangs becomes a FileTimeout error record, and many
files share one signal handler."""

from __future__ import annotations

import io
import time

from dcm_spark.dicom.header import (
    FileError,
    Header,
    HeaderOptions,
    convert_file,
)
from tests.helpers import make_file


class SlowFile(io.BytesIO):
    """A file whose reads hang (a stalled network mount)."""

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(1.0)
        return super().read(size)


def test_a_file_that_hangs_is_stopped_by_the_time_budget() -> None:
    data = make_file(PatientName="SMITH^JOHN")
    slow = SlowFile(data)
    started = time.monotonic()
    result = convert_file(slow, HeaderOptions(time_budget=0.5))
    assert isinstance(result, FileError)
    assert result.error_class == "FileTimeout"
    assert time.monotonic() - started < 5


def test_many_files_under_one_handler_each_get_their_own_budget() -> None:
    """What a task does (`dcm_spark.tasks`): files in a row under one handler; a slow one
    stops, the next starts with a full budget, and the process's signal state is restored."""
    import signal

    from dcm_spark.dicom.budget import file_timeouts

    data = make_file(PatientName="SMITH^JOHN")
    before = signal.getsignal(signal.SIGALRM)
    with file_timeouts():
        slow = convert_file(SlowFile(data), HeaderOptions(time_budget=0.5))
        fine = convert_file(io.BytesIO(data), HeaderOptions(time_budget=0.5))
        slow_again = convert_file(SlowFile(data), HeaderOptions(time_budget=0.5))
    assert isinstance(slow, FileError) and isinstance(slow_again, FileError)
    assert slow.error_class == slow_again.error_class == "FileTimeout"
    assert "0.5 s" in slow.message
    assert isinstance(fine, Header)
    assert fine.values["PatientName"]["Alphabetic"] == {"FamilyName": "SMITH", "GivenName": "JOHN"}
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
