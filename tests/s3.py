"""A throwaway S3 server on 127.0.0.1 for the object-storage tests: moto's server mode
(``moto_server``, installed with the dev extras), started as a subprocess and stopped on
exit. It speaks the S3 REST API, so pyarrow's S3 filesystem reads it as it reads AWS.

moto is pure Python: each request costs it ~4 ms of CPU, on the cores the job runs on.
The benchmark (bench/sources.py) may use `gofakes3_server` instead, a Go server built by
``make bench-tools`` (not needed by the tests).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import free_port

#: What the tests' clients sign with (moto accepts any credentials unless told not to).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@contextlib.contextmanager
def s3_server(log: Path, *, unsigned_actions: int | None = None) -> Iterator[str]:
    """A running S3 server; yields its endpoint URL (``http://127.0.0.1:port``).

    ``unsigned_actions``: after that many requests the server checks credentials against
    its own IAM users (moto's ``INITIAL_NO_AUTH_ACTION_COUNT``), so made-up keys are refused.
    """
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    env = dict(os.environ)
    if unsigned_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unsigned_actions)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out, env=env
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"moto_server did not start: {tail}") from exc
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def gofakes3_server(binary: Path, log: Path) -> Iterator[str]:
    """gofakes3 (https://github.com/johannesboyne/gofakes3, objects in memory) as the S3
    server; yields its endpoint URL. It takes any credentials."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "-backend", "memory", "-host", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gofakes3 did not start: {log.read_text()[-2000:]}"
                    ) from exc
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def bucket_with(endpoint: str, bucket: str, files: dict[str, bytes]) -> None:
    """Create ``bucket`` and put each ``key: bytes`` into it (boto3, as a user would, 8
    at a time). No checksums are sent: gofakes3 would send the whole object's back with
    each range, which pyarrow's client then refuses."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_REGION"],
        config=Config(request_checksum_calculation="when_required"),
    )
    client.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(8) as pool:
        for put in [
            pool.submit(client.put_object, Bucket=bucket, Key=key, Body=data)
            for key, data in files.items()
        ]:
            put.result()
