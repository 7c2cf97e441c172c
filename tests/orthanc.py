"""A throwaway Orthanc server with its DICOMweb plugin, for the tests of
`dcm_spark.sources.dicomweb`.

`orthanc_server` writes a configuration into a temporary directory (free HTTP and DICOM
ports on 127.0.0.1, storage and index in that directory, the DICOMweb plugin and no other),
starts ``/usr/sbin/Orthanc`` as a subprocess, waits for ``GET /system`` to answer and stops
it on exit. Debian packages it: ``apt-get install orthanc orthanc-dicomweb``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_HINT = "apt-get install orthanc orthanc-dicomweb"
ROOT = "/dicom-web/"


def missing() -> str | None:
    """Why Orthanc cannot run here (a message for pytest.skip), or None."""
    for needed in (ORTHANC, DICOMWEB_PLUGIN):
        if not needed.exists():
            return f"{needed} is missing: {INSTALL_HINT}"
    return None


@dataclass
class Orthanc:
    """A running server: its REST API at ``url``, DICOMweb at ``dicomweb``."""

    url: str  # http://127.0.0.1:port
    log: Path
    stored: dict[Path, str] = field(default_factory=dict)  # file -> Orthanc's instance id
    refused: dict[Path, str] = field(default_factory=dict)  # file -> why Orthanc refused it

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root as a dcm-spark input URI."""
        return "dicomweb+" + self.url + ROOT.rstrip("/")

    def upload(self, path: Path) -> str | None:
        """``POST /instances`` one file; its instance id, or None (and why in ``refused``)."""
        request = urllib.request.Request(
            self.url + "/instances", data=path.read_bytes(), method="POST"
        )
        request.add_header("Content-Type", "application/dicom")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            self.refused[path] = f"HTTP {exc.code}: {exc.read()[:200]!r}"
            return None
        if not isinstance(answer, dict) or "ID" not in answer:
            self.refused[path] = f"unexpected answer: {str(answer)[:200]}"
            return None
        if answer.get("Status") == "AlreadyStored":
            self.refused[path] = "AlreadyStored: another file has its SOPInstanceUID"
            return None
        self.stored[path] = str(answer["ID"])
        return self.stored[path]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _config(work: Path, http_port: int, dicom_port: int) -> dict[str, object]:
    return {
        "Name": "dcm-spark-tests",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "DCMSPARKTEST",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": ROOT, "EnableWado": False},
        "StorageCompression": False,
        "OverwriteInstances": False,
        "SaveJobs": False,
        "HttpTimeout": 60,
        "StableAge": 3600,
    }


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def orthanc_server(work: Path, start_timeout: float = 30.0) -> Iterator[Orthanc]:
    """Run Orthanc with its DICOMweb plugin in ``work`` (a fresh directory) until exit.

    Raises
    ------
    RuntimeError
        If it does not answer ``GET /system`` within ``start_timeout`` seconds (the message
        ends with the tail of its log).
    """
    work.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = work / "orthanc.json"
    config.write_text(json.dumps(_config(work, http_port, dicom_port), indent=2))
    server = Orthanc(f"http://127.0.0.1:{http_port}", work / "orthanc.log")
    with open(server.log, "wb") as log:
        process = subprocess.Popen(
            [str(ORTHANC), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
            preexec_fn=_die_with_parent,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(server.url + "/system", timeout=2) as response:
                    json.load(response)
                break
            except (OSError, ValueError):
                if process.poll() is not None or time.monotonic() > deadline:
                    state = "exited" if process.poll() is not None else "did not answer"
                    raise RuntimeError(
                        f"Orthanc {state} at {server.url} within {start_timeout} s; "
                        f"its log ends:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
