"""pyspark imported from the installed package's compiled modules, not from pyspark.zip
compiled again; run as Spark's Python daemon (``spark.python.daemon.module``).

Spark starts the job's Python driver and its Python daemon, which forks the workers,
with ``pyspark.zip`` and the py4j zip first on ``PYTHONPATH``. Python does not cache
bytecode for modules imported from a zip: each of those processes compiled pyspark
again, ~0.4 s of CPU, paid by every run before its first file was parsed. When the zips
are the ones inside the installed pyspark package (``pip install pyspark``:
``<site-packages>/pyspark/python/lib/pyspark.zip``) the installed modules are the same
code, compiled at install time, and the zips are dropped from the path. Any other layout
(a Spark distribution's own ``SPARK_HOME``) keeps Spark's path as it is.

`dcm_spark.session` sets this daemon for local masters only: on a cluster the executors
may not have dcm_spark installed when they start their daemon.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys


def spark_zips(path: list[str]) -> list[str]:
    """The entries of ``path`` that are Spark's own zips inside the installed pyspark
    package, or none if pyspark is not installed or Spark's zips come from elsewhere."""
    zips = [p for p in path if os.path.basename(p).startswith(("pyspark", "py4j"))]
    zips = [p for p in zips if p.endswith(".zip")]
    rest = [p for p in path if p not in zips]
    pyspark = importlib.machinery.PathFinder.find_spec("pyspark", rest)
    py4j = importlib.machinery.PathFinder.find_spec("py4j", rest)
    if not zips or pyspark is None or py4j is None or not pyspark.submodule_search_locations:
        return []
    package = os.path.realpath(next(iter(pyspark.submodule_search_locations)))
    lib = os.path.join(package, "python", "lib")
    if any(os.path.dirname(os.path.realpath(z)) != lib for z in zips):
        return []
    return zips


def use_installed_pyspark() -> None:
    """Drop Spark's zips from ``sys.path`` when they are the installed pyspark's own
    (see the module's doc). Call it before pyspark is imported."""
    for entry in spark_zips(sys.path):
        sys.path.remove(entry)


if __name__ == "__main__":
    use_installed_pyspark()
    from pyspark.daemon import manager

    manager()
