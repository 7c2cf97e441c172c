"""`make space`'s folder (`dcm_spark.app.space`): written from the checkout, it serves the app
on its own demo table when started from that folder alone (what the Space's Docker image
runs, minus Docker: the Delta jars copied in as its build step resolves them)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dcm_spark.app.space import requirements, write_space
from dcm_spark.session import IVY_DIR
from tests.helpers import free_port, pydicom_path


def test_requirements_are_pinned_and_hold_the_app() -> None:
    pins = requirements()
    assert all("==" in p for p in pins)
    names = {p.split("==")[0] for p in pins}
    assert {"gradio", "pyspark", "delta-spark", "pydicom", "sqlglot"} <= names
    assert not names & {"pytest", "selenium", "ruff", "moto"}  # dev extras stay out


@pytest.mark.slow
def test_space_folder_serves_the_app_alone(tmp_path: Path) -> None:
    out = write_space(tmp_path / "space")
    front = (out / "README.md").read_text().split("---")[1]
    assert "sdk: docker" in front and "app_port: 7860" in front
    assert "openjdk-17" in (out / "Dockerfile").read_text()
    assert "gradio==" in (out / "requirements.txt").read_text()
    shutil.copytree(IVY_DIR / "jars", out / ".ivy2" / "jars")  # the Dockerfile's build step
    demo = tmp_path / "demo-in"
    demo.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(pydicom_path(name), demo / name)
    port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHON": sys.executable,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DEMO_INPUT": str(demo),
        **{k: v for k, v in os.environ.items() if k in ("JAVA_HOME", "LANG")},
    }
    probe = [sys.executable, "-c", "import dcm_spark; print(dcm_spark.__file__)"]
    found = subprocess.run(
        probe, cwd=out, env={**env, "PYTHONPATH": str(out)}, capture_output=True, text=True
    )
    assert found.stdout.strip() == str(out / "dcm_spark" / "__init__.py")
    log = (tmp_path / "space.log").open("w")
    server = subprocess.Popen(
        ["sh", "start.sh"],
        cwd=out,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, config = time.monotonic() + 150, {}
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as got:
                    config = json.load(got)
                    break
            except OSError:
                time.sleep(1)
        assert config.get("title") == "dcm-spark", (tmp_path / "space.log").read_text()[-2000:]
        assert (out / "demo" / "dicom" / "_delta_log").is_dir()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
