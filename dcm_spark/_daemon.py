"""Spark's Python daemon (``spark.python.daemon.module``), started with pyspark's compiled
modules when they are the very files of pyspark.zip.

Spark starts its Python daemon, which forks the workers, with ``pyspark.zip`` and the
py4j zip first on ``PYTHONPATH``. Python does not cache bytecode for modules imported from
a zip: the daemon and every worker compile pyspark again, ~0.4 s of CPU each, paid by
every run before its first file is parsed. When that zip is the one inside the installed
pyspark package (``pip install pyspark``: ``<site-packages>/pyspark/python/lib/pyspark.zip``)
the installed modules are the same code, compiled at install time; the zips are dropped
from the path so they are imported from there. Any other layout (a Spark distribution's
own ``SPARK_HOME``) keeps Spark's path as it is.

`dcm_spark.session` sets this module for local masters only: on a cluster the executors
may not have dcm_spark installed before the job's files arrive.
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


if __name__ == "__main__":
    for entry in spark_zips(sys.path):
        sys.path.remove(entry)
    from pyspark.daemon import manager

    manager()
