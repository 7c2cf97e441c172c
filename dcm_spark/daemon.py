"""pyspark imported from the installed package's compiled modules, not from pyspark.zip
compiled again; run as Spark's Python daemon (``spark.python.daemon.module``).

Spark starts a job's Python driver, and the Python daemon that forks the workers, with
``pyspark.zip`` and the py4j zip first on ``PYTHONPATH``. Python caches no bytecode for
modules imported from a zip: the driver, the daemon and each worker (which imports
``pyspark.worker`` after the fork) compiled pyspark again, ~0.4 s of CPU each, paid by
every run before its first file was parsed. When the zips are the ones inside the
installed pyspark package (``pip install pyspark``:
``<site-packages>/pyspark/python/lib/pyspark.zip``) and the installed py4j has the zip's
version, the installed modules are the same code, compiled once (by pip at install time,
or by Python on first import), and the zips are dropped from the path. Any other layout (a
Spark distribution's own ``SPARK_HOME``, another py4j) keeps Spark's path as it is.

The daemon is for local masters: a cluster's executors may not have dcm_spark installed
when they start their daemon (see `dcm_spark.session.LOCAL_CONF`).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import re
import sys


def spark_zips(path: list[str]) -> list[str]:
    """The entries of ``path`` that are Spark's own zips inside the installed pyspark
    package, or none if pyspark or the zip's py4j version is not installed, or Spark's
    zips come from elsewhere."""
    zips = [p for p in path if os.path.basename(p).startswith(("pyspark", "py4j"))]
    zips = [p for p in zips if p.endswith(".zip")]
    rest = [p for p in path if p not in zips]
    pyspark = importlib.machinery.PathFinder.find_spec("pyspark", rest)
    if not zips or pyspark is None or not pyspark.submodule_search_locations:
        return []
    package = next(iter(pyspark.submodule_search_locations))
    lib = os.path.realpath(os.path.join(package, "python", "lib"))
    if any(os.path.dirname(os.path.realpath(z)) != lib for z in zips):
        return []
    py4j = {d.version for d in importlib.metadata.distributions(name="py4j", path=rest)}
    for z in zips:
        version = re.fullmatch(r"py4j-(.+)-src\.zip", os.path.basename(z))
        if version and py4j != {version.group(1)}:
            return []
    return zips


def use_installed_pyspark() -> None:
    """Drop Spark's zips from ``sys.path`` when they are the installed pyspark's own
    (see the module's doc). Call it before pyspark is first imported."""
    if "pyspark" in sys.modules:
        return
    for entry in spark_zips(sys.path):
        sys.path.remove(entry)


if __name__ == "__main__":
    use_installed_pyspark()
    from pyspark.daemon import manager

    manager()
