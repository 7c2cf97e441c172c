"""Write a Hugging Face Docker Space that serves the app on the demo table (``make space``).

``python -m dcm_spark.app.space dist/space`` writes, from this checkout alone:

- ``README.md`` with the Space's front matter (``sdk: docker``, ``app_port: 7860``);
- ``Dockerfile``: Debian's Python 3.11 with Java 17, the pinned requirements, the Delta jars
  resolved, ``jvm/`` compiled and the demo table (pydicom's test files) ingested at build time;
- ``requirements.txt``: every runtime requirement of dcm-spark, at the version installed here;
- ``start.sh``: makes the demo table if it is missing, then ``spark-submit jobs/app.py``;
- the library (``dcm_spark/``), ``jvm/``, ``jobs/app.py``, ``jobs/ingest.py`` and ``conf/``.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dcm_spark.session import PROJECT_ROOT

FRONT_MATTER = """---
title: dcm-spark
emoji: 🩻
colorFrom: blue
colorTo: gray
sdk: docker
app_port: 7860
pinned: false
license: apache-2.0
short_description: DICOM headers as a queryable Delta table, with Spark
---
"""

README = """
# dcm-spark

DICOM headers as an evolving, queryable Delta table, built with Apache Spark: browse the
schema as BigQuery shows it, query with Spark SQL or BigQuery SQL, open series and instances,
and ingest your own files. This Space starts with pydicom's test files; uploads are kept only
while the Space runs. Source and documentation: the dcm-spark project's README.
"""

DOCKERFILE = """FROM python:3.11-slim-bookworm
RUN apt-get update \\
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless procps \\
 && rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH \\
    GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /home/user/app
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
COPY --chown=user . .
# the Delta jars into ./.ivy2, jvm/ compiled into ./.cache/jvm and the demo table into
# ./demo/dicom, once, at build time
RUN python -m dcm_spark.session && sh start.sh --build-only
EXPOSE 7860
CMD ["sh", "start.sh"]
"""

START = """#!/bin/sh
# Serve the app on the demo table (made first if missing). HOST, PORT, TABLE, DEMO_INPUT
# may be set; --build-only makes the table and exits.
set -e
cd "$(dirname "$0")"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PYSPARK_PYTHON="$PYTHON" PYSPARK_DRIVER_PYTHON="$PYTHON"
TABLE="${TABLE:-demo/dicom}"
SUBMIT="spark-submit --properties-file conf/spark-defaults.conf --master local[*]"
if [ ! -d "$TABLE/_delta_log" ]; then
  SAMPLE='import os, pydicom.data as d; print(os.path.dirname(d.get_testdata_file("CT_small.dcm")))'
  INPUT="${DEMO_INPUT:-$("$PYTHON" -c "$SAMPLE")}"
  $SUBMIT jobs/ingest.py --input "$INPUT" --table "$TABLE"
fi
[ "$1" = "--build-only" ] && exit 0
# a server's JVM keeps its optimising JIT (dcm_spark.session.server_java_options)
OPTIONS="$("$PYTHON" -c 'import dcm_spark.session as s; print(s.server_java_options())')"
exec $SUBMIT --driver-java-options "$OPTIONS" \\
  jobs/app.py --table "$TABLE" --host "${HOST:-0.0.0.0}" --port "${PORT:-7860}"
"""


def requirements(project: str = "dcm-spark") -> list[str]:
    """``name==version`` of every runtime requirement of ``project``, transitively, as
    installed here (extras such as ``dev`` left out)."""
    pinned: dict[str, str] = {}
    todo = [(Requirement(r), "") for r in metadata.requires(project) or []]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement of another platform or Python
        seen = name in pinned
        pinned[name] = version
        wanted = [""] + sorted(requirement.extras)
        for sub_extra in wanted:
            if seen and sub_extra == "":
                continue
            for r in metadata.requires(name) or []:
                todo.append((Requirement(r), sub_extra))
    return [f"{name}=={version}" for name, version in sorted(pinned.items())]


def write_space(out: Path, root: Path = PROJECT_ROOT) -> Path:
    """Write the Space's folder at ``out`` (replacing it); return it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "dcm_spark", out / "dcm_spark", ignore=ignore)
    (out / "jobs").mkdir()
    for job in ("app.py", "ingest.py"):
        shutil.copy(root / "jobs" / job, out / "jobs" / job)
    shutil.copytree(root / "conf", out / "conf", ignore=ignore)
    shutil.copytree(root / "jvm", out / "jvm", ignore=ignore)
    (out / "README.md").write_text(FRONT_MATTER + README, encoding="utf-8")
    (out / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    (out / "start.sh").write_text(START, encoding="utf-8")
    (out / "start.sh").chmod(0o755)
    pins = [r for r in requirements() if not r.startswith("dcm-spark==")]
    (out / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    (out / ".gitignore").write_text(".ivy2/\n.cache/\ndemo/\n__pycache__/\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    target = write_space(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/space"))
    print(f"wrote {target}: push it to a Hugging Face Space (Docker SDK)")
