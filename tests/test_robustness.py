"""`convert_file` against hostile inputs: it returns, fast, small, without leaking values.

The corpus (`tests.mutations`) is built and converted once per module, in this process,
every case twice: by path, and as a binary file object opened the way the ingest job
opens it (``open(path, "rb")``); the second run is traced by tracemalloc (one run per
case: tracing makes pydicom about eight times slower). Each check then runs per mutation
kind, so a failure names the kind, the cases and what went wrong:

* ``returns``: a `Header` or a `FileError`, never an exception (with where it came from);
* ``time``: at most `SLOW_SECONDS` per case; a case still running after `HARD_SECONDS` is
  interrupted (SIGALRM) and reported as a hang;
* ``memory``: a tracemalloc peak of at most `MAX_PEAK_BYTES` per case (file-object run);
* ``canary``: no ``CANARY`` in a `FileError`'s class or message (the sources carry it as
  PatientName and PatientID);
* ``log``: no ``CANARY`` in what pydicom logs while converting (pydicom logs each warning
  it gives, to the ``pydicom`` logger, and some quote the offending value);
* ``arrow``: every row becomes a RecordBatch alone, and all rows of a kind together;
* ``intact``: when the damage lies after the canary elements, the row still holds them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import pytest

from dcm_spark.dicom.header import FileError, Header, HeaderOptions, convert_file, to_record_batch
from tests import mutations
from tests.mutations import CANARY, KINDS, Case

SLOW_SECONDS = 2.0
HARD_SECONDS = 2.25
MAX_PEAK_BYTES = 64 << 20
BUDGET_SECONDS = 50.0  # for the whole corpus: a converter that hangs everywhere stops here
MIN_CASES = 1000
MODES = ("path", "handle")
CHECKS = ("returns", "time", "memory", "canary", "log", "arrow", "intact")
OPTIONS = HeaderOptions()
ROOT = Path(__file__).resolve().parent.parent


class Interrupted(BaseException):
    """Raised by SIGALRM in a case that runs too long; not an Exception, so that
    `convert_file`'s ``except Exception`` cannot swallow it."""


@dataclass
class Outcome:
    case: Case
    mode: str  # "path" or "handle"
    result: Header | FileError | None = None
    escaped: str = ""  # an exception out of convert_file: "Type: message at file:line"
    interrupted: str = ""  # where the case was when HARD_SECONDS ran out
    seconds: float = 0.0
    peak: int | None = None  # tracemalloc peak of the case (handle mode only)
    arrow: str = ""  # why the row cannot become a RecordBatch
    logs: list[str] = field(default_factory=list)  # pydicom's log records during the call

    @property
    def label(self) -> str:
        return f"{self.case.id} [{self.mode}]"


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "site-packages" in f.filename or "dcm_spark" in f.filename]
    spots = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in (inner or frames)[-3:]]
    return " <- ".join(reversed(spots))


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _materialize(case: Case, root: Path, index: int) -> Path:
    if case.make is not None:
        folder = root / f"fs{index:05d}"
        folder.mkdir()
        return case.make(folder)
    assert case.data is not None
    path = root / f"{index:05d}.dcm"
    path.write_bytes(case.data)
    return path


class _Records(logging.Handler):
    """Keeps the messages pydicom logs (it logs every warning it gives, values included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


RECORDS = _Records()


def _convert(case: Case, mode: str, path: Path, outcome: Outcome) -> None:
    """One call of convert_file, timed, interrupted after HARD_SECONDS."""
    handle: IO[bytes] | None = None
    RECORDS.messages = outcome.logs
    signal.setitimer(signal.ITIMER_REAL, HARD_SECONDS)
    start = time.perf_counter()
    try:
        if mode == "handle":
            handle = open(path, "rb")  # noqa: SIM115 - closed below, like tasks._open
        source: str | IO[bytes] = handle if handle is not None else str(path)
        outcome.result = convert_file(source, OPTIONS, path=case.id)
    except Interrupted as exc:
        outcome.interrupted = _where(exc)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # anything out of convert_file is a failure, even SystemExit
        outcome.escaped = f"{type(exc).__name__}: {exc} at {_where(exc)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        outcome.seconds = time.perf_counter() - start
        if handle is not None:
            handle.close()


def _run(case: Case, mode: str, path: Path, hung: bool = False) -> Outcome:
    """Convert a case; by handle under tracemalloc, by path without (it costs ~8x).

    A traced run that looks slow is timed again untraced (the time check must not count
    tracemalloc's own cost), unless the case also hung by path (`hung`).
    """
    outcome = Outcome(case, mode)
    if mode == "handle":
        tracemalloc.start(1)
        try:
            _convert(case, mode, path, outcome)
            outcome.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if outcome.seconds > SLOW_SECONDS and not (hung and outcome.interrupted):
            again = Outcome(case, mode)
            _convert(case, mode, path, again)
            outcome.seconds, outcome.interrupted = again.seconds, again.interrupted
    else:
        _convert(case, mode, path, outcome)
    if isinstance(outcome.result, Header):
        try:
            to_record_batch([Header(dict(outcome.result.values), dict(outcome.result.types))])
        except Exception as exc:
            outcome.arrow = f"{type(exc).__name__}: {exc} at {_where(exc)}"
    return outcome


def _modes(case: Case, path: Path) -> Iterator[str]:
    yield MODES[0]
    # the ingest job opens files itself: a FIFO would block there, a directory, a symlink
    # loop or an unreadable file fail there, before convert_file is called
    regular = case.make is None or path.is_file() or path.is_char_device()
    if regular and os.access(path, os.R_OK):
        yield MODES[1]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return mutations.build()


@pytest.fixture(scope="module")
def outcomes(cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    root = tmp_path_factory.mktemp("mutations")
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already tracing (python -X tracemalloc?)")
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM: a hanging case would hang the test run")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    pydicom_log = logging.getLogger("pydicom")
    propagate = pydicom_log.propagate
    pydicom_log.addHandler(RECORDS)
    pydicom_log.propagate = False  # thousands of warnings: keep them out of pytest's capture
    found: list[Outcome] = []
    deadline = time.perf_counter() + BUDGET_SECONDS
    try:
        for index, case in enumerate(cases):
            if time.perf_counter() > deadline:
                break  # test_every_case_ran fails, naming the cases left
            path = _materialize(case, root, index)
            hung = False
            for mode in _modes(case, path):
                found.append(_run(case, mode, path, hung))
                hung = hung or bool(found[-1].interrupted)
            if case.data is not None:
                path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
        pydicom_log.removeHandler(RECORDS)
        pydicom_log.propagate = propagate
        for entry in root.rglob("*"):  # chmod 000 and the FIFO must not stop the cleanup
            if not entry.is_symlink() and entry.exists() and not entry.is_dir():
                entry.chmod(0o600)
    return found


# -- the checks: each returns a description of what went wrong, or "" -----------------


def _returns(o: Outcome) -> str:
    if o.escaped:
        return f"raised {o.escaped}"
    if o.interrupted or isinstance(o.result, Header | FileError):
        return ""
    return f"returned {type(o.result).__name__}"


def _time(o: Outcome) -> str:
    if o.interrupted:
        return f"still running after {HARD_SECONDS} s, in {o.interrupted}"
    return f"took {o.seconds:.2f} s" if o.seconds > SLOW_SECONDS else ""


def _memory(o: Outcome) -> str:
    if o.peak is None or o.peak <= MAX_PEAK_BYTES:
        return ""
    return f"tracemalloc peak {o.peak / 2**20:,.0f} MB"


def _canary(o: Outcome) -> str:
    if isinstance(o.result, FileError):
        text = f"{o.result.error_class} {o.result.message}"
        if CANARY.lower() in text.lower():
            return f"leaks the canary: {text!r}"
    return ""


def _log(o: Outcome) -> str:
    leaked = [m for m in o.logs if CANARY.lower() in m.lower()]
    if not leaked:
        return ""
    at = leaked[0].lower().index(CANARY.lower())
    return f"pydicom logged the canary {len(leaked)}x: ...{leaked[0][max(0, at - 80) : at + 20]!r}"


def _arrow(o: Outcome) -> str:
    return f"no RecordBatch: {o.arrow}" if o.arrow else ""


def _intact(o: Outcome) -> str:
    if not o.case.expect or o.interrupted or o.escaped:
        return ""
    if isinstance(o.result, FileError):
        return f"lost the intact part: {o.result.error_class}: {o.result.message}"
    assert isinstance(o.result, Header)
    wrong = []
    for keyword, expected in o.case.expect:
        got = o.result.values.get(keyword)
        if got != expected:
            wrong.append(f"{keyword}={str(got)[:60]!r}")
    return ("wrong or missing " + ", ".join(wrong)) if wrong else ""


CHECK: dict[str, Callable[[Outcome], str]] = {
    "returns": _returns,
    "time": _time,
    "memory": _memory,
    "canary": _canary,
    "log": _log,
    "arrow": _arrow,
    "intact": _intact,
}


def _report(problems: list[str], limit: int = 25) -> str:
    shown = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} case(s):\n{shown}{more}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("check", CHECKS)
def test_mutations(outcomes: list[Outcome], check: str, kind: str) -> None:
    mine = [o for o in outcomes if o.case.kind == kind]
    assert mine, f"no case of kind {kind}"
    problems = [f"{o.label}: {text}" for o in mine if (text := CHECK[check](o))]
    if check == "arrow":
        # copies: union() conforms the rows it is given in place (a VM-1 column that holds
        # a list in one row becomes a list in all), which would change what the others see
        rows = [
            Header(dict(o.result.values), dict(o.result.types))
            for o in mine
            if isinstance(o.result, Header) and not o.arrow
        ]
        try:
            to_record_batch(rows)
        except Exception as exc:
            problems.append(f"the {len(rows)} rows together: {type(exc).__name__}: {exc}")
    assert not problems, _report(problems)


# -- the corpus itself -----------------------------------------------------------------


def _digest(cases: list[Case]) -> str:
    sha = hashlib.sha256()
    for case in cases:
        sha.update(f"{case.id}\0{case.kind}\0{case.expect!r}\0".encode())
        sha.update(case.data if case.data is not None else b"<filesystem>")
    return sha.hexdigest()


def test_corpus_is_large_and_covers_every_kind(cases: list[Case]) -> None:
    assert len(cases) >= MIN_CASES
    assert {c.kind for c in cases} == set(KINDS)
    assert sum(1 for c in cases if c.expect) >= MIN_CASES // 2


def test_corpus_is_deterministic(cases: list[Case]) -> None:
    """Another interpreter, with another hash seed, builds byte-identical cases."""
    code = "from tests import mutations, test_robustness as t; print(t._digest(mutations.build()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip() == _digest(cases)


def test_every_case_ran(cases: list[Case], outcomes: list[Outcome]) -> None:
    left = [c.id for c in cases if c.id not in {o.case.id for o in outcomes}]
    assert not left, f"{BUDGET_SECONDS} s were not enough; {len(left)} left, from {left[0]}"
    assert {o.mode for o in outcomes} == set(MODES)
    assert sum(1 for o in outcomes if o.mode == MODES[1]) >= len(cases) - 10
    # the checks have something to bite on: many errors (canary), many rows (intact, arrow)
    assert sum(1 for o in outcomes if isinstance(o.result, FileError)) >= 200
    assert sum(1 for o in outcomes if isinstance(o.result, Header)) >= 1000


def test_the_checks_catch_what_they_look_for() -> None:
    case = Case("x/y", "flip", b"", expect=mutations.INTACT)
    leak = Outcome(case, "path", FileError("x", "ValueError", "bad PN CANARY^SECRET"))
    assert _canary(leak) and _intact(leak)
    assert _log(Outcome(case, "path", logs=["Invalid value for VR UI: 'CANARY.1.2'"]))
    assert _memory(Outcome(case, "handle", peak=MAX_PEAK_BYTES + 1))
    assert _time(Outcome(case, "path", seconds=SLOW_SECONDS + 0.1))
    assert _returns(Outcome(case, "path", escaped="ValueError: x at header.py:1 f"))
    row = Header({"PatientID": mutations.CANARY_ID}, {})
    assert "PatientName" in _intact(Outcome(case, "path", row))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads a chmod-000 file; the fs/chmod-000 case then only checks the rules",
)
def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "unreadable.dcm"
    path.write_bytes(mutations.load_source("ct").data)
    path.chmod(0)
    try:
        result = convert_file(str(path))
    finally:
        path.chmod(0o600)
    assert isinstance(result, FileError)
    assert result.error_class == "PermissionError"


@pytest.mark.parametrize("name", list(mutations.SOURCES))
def test_sources_hold_the_canary(name: str) -> None:
    """Sanity of the harness: every unmutated source converts, canary included."""
    source = mutations.load_source(name)
    row = convert_file(io.BytesIO(source.data))
    assert isinstance(row, Header)
    for keyword, expected in mutations.INTACT:
        assert row.values[keyword] == expected
