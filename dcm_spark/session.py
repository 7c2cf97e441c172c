"""The one place that configures Spark for this project.

``configure(builder)`` adds Delta, the jars, the Python interpreter and Arrow settings to a
``SparkSession.Builder``; ``conf/spark-defaults.conf`` carries the same settings for
``spark-submit --properties-file`` (the JVM starts before a job's Python code, so jars set
on the builder inside a job come too late).

Run ``python -m dcm_spark.session`` to check Java and resolve the Delta jars once into
``.ivy2/`` inside the project (later sessions load them from there without network), and to
compile this project's own JVM code (`JVM_JAR`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from dcm_spark.errors import EnvironmentProblem

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
MIN_JAVA = 17
PROJECT_ROOT = Path(__file__).resolve().parent.parent
IVY_DIR = PROJECT_ROOT / ".ivy2"
#: This project's own JVM code (jvm/), built by `make setup`: `dcm_spark.IdcViewPruning`, a
#: Spark SQL extension that prunes the `dicom_all` views to the columns a query reads while
#: Spark analyses it. Without it (no JDK at set-up) every query still runs, only slower.
JVM_JAR = PROJECT_ROOT / ".cache" / "jvm" / "dcm-spark-jvm.jar"

#: Settings every session of this project gets (also in conf/spark-defaults.conf).
BASE_CONF: dict[str, str] = {
    # Delta's, and this project's (`JVM_JAR`: skipped with a warning if it was not built)
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension,dcm_spark.IdcViewPruning",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "1000",
    "spark.sql.session.timeZone": "UTC",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Delta's log of this table is small: 50 partitions to replay it cost seconds a run.
    "spark.databricks.delta.snapshotPartitions": "2",
    # List directories on the driver below 1024 of them, not with a Spark job per run.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1024",
}

#: Settings for local masters only: the Python workers start from the installed pyspark's
#: compiled modules (`dcm_spark.daemon`). A cluster's executors may not have dcm_spark
#: installed when they start their daemon, so conf/spark-defaults.conf does not carry
#: them: `configure` adds them when the master is local (`job_session` reads the master
#: ``spark-submit`` was given).
LOCAL_CONF: dict[str, str] = {
    "spark.python.daemon.module": "dcm_spark.daemon",
}


def java_version(java: str | None = None) -> int:
    """Return the major version of the ``java`` Spark will start.

    Raises
    ------
    EnvironmentProblem
        If no Java is found or its version cannot be read.
    """
    java = java or _java_executable()
    if java is None:
        raise EnvironmentProblem(
            f"Java not found: Spark needs Java {MIN_JAVA} or newer. Install a JDK "
            "(e.g. `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME."
        )
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise EnvironmentProblem(f"cannot run {java}: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise EnvironmentProblem(f"cannot read the version printed by {java} -version")
    major = int(match.group(1))
    # Java 8 and older print "1.8.0_xxx".
    return int(match.group(2) or 0) if major == 1 else major


def check_java(java: str | None = None) -> int:
    """Raise a clear `EnvironmentProblem` unless Java >= 17 is available."""
    major = java_version(java)
    if major < MIN_JAVA:
        raise EnvironmentProblem(
            f"Java {major} found, Spark 4 needs Java {MIN_JAVA} or newer. Install a newer "
            "JDK and point JAVA_HOME at it."
        )
    return major


def _java_executable() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def cached_jars(ivy_dir: Path = IVY_DIR) -> list[Path]:
    """The Delta jars already resolved into ``ivy_dir`` (empty if not resolved yet)."""
    jars = sorted((ivy_dir / "jars").glob("*.jar"))
    return jars if any(j.name.startswith("io.delta_delta-spark") for j in jars) else []


#: The driver's Java option (conf/spark-defaults.conf) that keeps the JVM's JIT to C1: a job
#: runs for seconds to minutes, and the optimising JIT (C2) took ~7 CPU-seconds of a
#: 30,000-file ingest from the cores the Python workers parse on.
SHORT_JOB_JIT = "-XX:TieredStopAtLevel=1"


def server_java_options(conf_file: Path = PROJECT_ROOT / "conf" / "spark-defaults.conf") -> str:
    """The driver's Java options of ``conf_file`` for a session that runs for hours (the
    app: ``make app``, the Space), `SHORT_JOB_JIT` left out: there C2 compiles what runs
    again and again (Spark's planning and generated code; on a wide table a warm
    ``dicom_series`` of one study took about half the time, see bench/README.md)."""
    for line in conf_file.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "spark.driver.extraJavaOptions":
            return " ".join(o for o in value.split() if o != SHORT_JOB_JIT)
    return ""


def configure(
    builder: SparkSession.Builder,
    *,
    master: str | None = None,
    ivy_dir: Path = IVY_DIR,
    python: str | None = None,
) -> SparkSession.Builder:
    """Add this project's settings to a Spark session builder and return it.

    Parameters
    ----------
    builder
        ``SparkSession.builder``, with the app name already set (or not).
    master
        The master URL, if the session chooses it (``spark-submit --master`` does
        otherwise). A local one, with the interpreter running now, also gets
        `LOCAL_CONF`; under ``spark-submit`` that comes from the properties file.
    ivy_dir
        Where Spark's Maven resolution caches the Delta jars. When the jars are
        already there they are passed with ``spark.jars`` and nothing is resolved.
    python
        Interpreter for the Python workers; defaults to the one running now, so
        the workers import the same packages as the driver.
    """
    python = python or sys.executable
    os.environ["PYSPARK_PYTHON"] = python
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python)
    if master is not None:
        builder = builder.master(master)
    local = master is not None and master.startswith("local") and python == sys.executable
    for key, value in (BASE_CONF | LOCAL_CONF if local else BASE_CONF).items():
        builder = builder.config(key, value)
    builder = builder.config("spark.pyspark.python", python)
    jars = cached_jars(ivy_dir)
    if not jars:
        builder = builder.config("spark.jars.packages", DELTA_PACKAGE).config(
            "spark.jars.ivy", str(ivy_dir)
        )
    if JVM_JAR.exists():
        jars.append(JVM_JAR)
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    return builder


def job_session(app_name: str) -> SparkSession:
    """The session of a ``jobs/*.py`` script: this project's settings for the master
    ``spark-submit`` was given (`LOCAL_CONF` only if it is local), Spark's log at WARN (the
    jobs print their own progress)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    SparkContext._ensure_initialized()  # spark-submit's JVM: its conf holds the master
    master = SparkConf().get("spark.master", "local[*]")
    spark = configure(SparkSession.builder.appName(app_name), master=master).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def resolve_jars(ivy_dir: Path = IVY_DIR) -> list[Path]:
    """Resolve the Delta jars into ``ivy_dir`` once (no-op when they are cached)."""
    check_java()
    jars = cached_jars(ivy_dir)
    if jars:
        return jars
    from pyspark.sql import SparkSession

    builder = configure(SparkSession.builder, master="local[1]", ivy_dir=ivy_dir)
    try:
        spark = builder.config("spark.ui.enabled", "false").getOrCreate()
        spark.stop()
    except Exception as exc:  # the JVM reports resolution failures as a generic error
        raise EnvironmentProblem(
            f"could not resolve {DELTA_PACKAGE} from Maven Central into {ivy_dir}: {exc}. "
            "Check network access to repo1.maven.org, or copy the jars into "
            f"{ivy_dir / 'jars'}."
        ) from exc
    jars = cached_jars(ivy_dir)
    if not jars:
        raise EnvironmentProblem(f"Spark started but no Delta jar appeared in {ivy_dir}/jars")
    return jars


def build_jvm_jar(jar: Path = JVM_JAR) -> Path | None:
    """Compile jvm/ against the installed pyspark's jars into ``jar``, unless it is newer
    than every source; None when no ``javac`` is found (a JRE only)."""
    sources = sorted((PROJECT_ROOT / "jvm").rglob("*.java"))
    home = os.environ.get("JAVA_HOME")
    javac = str(Path(home) / "bin" / "javac") if home else shutil.which("javac")
    if not sources or javac is None or not Path(javac).exists():
        return None
    if jar.exists() and jar.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return jar
    import pyspark

    spark_jars = Path(pyspark.__file__).parent / "jars" / "*"
    with tempfile.TemporaryDirectory() as classes:
        command = [javac, "--release", "17", "-nowarn", "-cp", str(spark_jars), "-d", classes]
        done = subprocess.run([*command, *map(str, sources)], capture_output=True, text=True)
        if done.returncode:
            raise EnvironmentProblem(f"javac failed on jvm/: {done.stderr.strip()[-2000:]}")
        jar.parent.mkdir(parents=True, exist_ok=True)
        partial = jar.with_suffix(".tmp")
        with zipfile.ZipFile(partial, "w") as archive:  # a jar is a zip of the classes
            for path in sorted(Path(classes).rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
        partial.replace(jar)
    return jar


def main() -> int:
    try:
        major = check_java()
        jars = resolve_jars()
        own = build_jvm_jar()
    except EnvironmentProblem as exc:
        print(f"dcm-spark setup: {exc}", file=sys.stderr)
        return 2
    print(f"Java {major}; {len(jars)} jars cached in {IVY_DIR / 'jars'}")
    if own is None:
        print(f"warning: no javac (a JDK): dicom_all queries run without {JVM_JAR.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
