"""The foundation: Delta-enabled Spark, mapInArrow into nested Delta columns, mergeSchema."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from dcm_spark.errors import EnvironmentProblem
from dcm_spark.session import check_java, java_version


def test_java_is_17_or_newer() -> None:
    assert java_version() >= 17


def test_missing_java_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EnvironmentProblem, match="cannot run"):
        java_version(str(tmp_path / "no-java"))


def test_old_java_is_a_clear_error(tmp_path) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(EnvironmentProblem, match="Java 11 found"):
        check_java(str(fake))


ITEM_V1 = pa.struct([("CodeValue", pa.string())])
ITEM_V2 = pa.struct([("CodeValue", pa.string()), ("CodingSchemeDesignator", pa.string())])


def _batches(item: pa.DataType, rows: list[dict]) -> Iterator[pa.RecordBatch]:
    schema = pa.schema([("SOPInstanceUID", pa.string()), ("CodeSequence", pa.list_(item))])
    yield pa.RecordBatch.from_pylist(rows, schema=schema)


def test_nested_delta_roundtrip_with_merge_schema(spark, tmp_path) -> None:
    table = str(tmp_path / "smoke")
    first = [{"SOPInstanceUID": "1.2.3", "CodeSequence": [{"CodeValue": "T-04000"}]}]
    second = [
        {
            "SOPInstanceUID": "1.2.4",
            "CodeSequence": [{"CodeValue": "121071", "CodingSchemeDesignator": "DCM"}],
        }
    ]
    seed = spark.range(1, numPartitions=1)
    df1 = seed.mapInArrow(
        lambda _: _batches(ITEM_V1, first),
        "SOPInstanceUID string, CodeSequence array<struct<CodeValue: string>>",
    )
    df1.write.format("delta").save(table)
    df2 = seed.mapInArrow(
        lambda _: _batches(ITEM_V2, second),
        "SOPInstanceUID string, "
        "CodeSequence array<struct<CodeValue: string, CodingSchemeDesignator: string>>",
    )
    df2.write.format("delta").mode("append").option("mergeSchema", "true").save(table)

    rows = spark.sql(
        f"SELECT SOPInstanceUID, c.CodeValue, c.CodingSchemeDesignator "
        f"FROM delta.`{table}` LATERAL VIEW explode(CodeSequence) AS c ORDER BY 1"
    ).collect()
    assert [tuple(r) for r in rows] == [
        ("1.2.3", "T-04000", None),
        ("1.2.4", "121071", "DCM"),
    ]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()
    assert history == 2


def _spark_defaults() -> dict[str, str]:
    from dcm_spark.session import PROJECT_ROOT

    conf: dict[str, str] = {}
    for line in (PROJECT_ROOT / "conf" / "spark-defaults.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    return conf


def test_spark_submit_defaults_carry_every_session_setting_for_any_master() -> None:
    """The shipped properties file holds what every master needs and nothing local-only:
    a plain ``spark-submit --master spark://...`` with it must not name a daemon module
    the executors may not have."""
    from dcm_spark.session import BASE_CONF, LOCAL_CONF

    conf = _spark_defaults()
    assert {k: conf.get(k) for k in BASE_CONF} == BASE_CONF
    assert not set(LOCAL_CONF) & set(conf)


def _installed_pyspark() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def test_workers_of_a_local_session_import_the_installed_pyspark(spark) -> None:
    """The tests' local[2] session starts its workers through `dcm_spark.daemon`: they
    import pyspark from the installed package, not from the pyspark.zip Spark puts first."""

    def where(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import sys

        for _ in batches:
            origin = sys.modules["pyspark"].__file__
            yield pa.RecordBatch.from_pylist([{"origin": origin}])

    origins = {
        r.origin
        for r in spark.range(4, numPartitions=2).mapInArrow(where, "origin string").collect()
    }
    assert {str(Path(o).resolve().parent) for o in origins} == {str(_installed_pyspark())}


@pytest.mark.parametrize("job", ["ingest", "query", "schema"])
def test_a_job_started_with_sparks_path_imports_the_installed_pyspark(job) -> None:
    """spark-submit starts a job's driver with its zips first on PYTHONPATH, as here; the
    job puts the installed pyspark first before importing it (a plain import: the zip's)."""
    from dcm_spark.session import PROJECT_ROOT

    lib = _installed_pyspark() / "python" / "lib"
    zips = sorted(lib.glob("*.zip"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*zips, PROJECT_ROOT]))}
    run_job = (
        f"import runpy, sys; sys.argv = ['{job}.py', '--help']\n"
        "try: runpy.run_path('jobs/{job}.py', run_name='__main__')\n"
        "except SystemExit: pass\n"
    ).replace("{job}", job)
    imported = "import pyspark, py4j; print(pyspark.__file__, py4j.__file__)"
    origins = [
        subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-2:]
        for code in (imported, run_job + imported)
    ]
    (py4j_zip,) = [z for z in zips if z.name.startswith("py4j")]
    assert origins[0] == [
        str(lib / "pyspark.zip" / "pyspark" / "__init__.py"),
        str(py4j_zip / "py4j" / "__init__.py"),
    ]
    assert [str(Path(o).resolve().parent.parent) for o in origins[1]] == [
        str(_installed_pyspark().parent)
    ] * 2


def test_daemon_drops_only_the_installed_packages_own_zips(tmp_path) -> None:
    from dcm_spark.daemon import spark_zips

    lib = _installed_pyspark() / "python" / "lib"
    own = [str(lib / "pyspark.zip"), *map(str, lib.glob("py4j-*-src.zip"))]
    assert len(own) == 2
    path = [*own, str(_installed_pyspark().parent)]
    assert spark_zips(path) == own
    # a Spark distribution's own SPARK_HOME: its zips stay first
    elsewhere = [str(tmp_path / "spark/python/lib/pyspark.zip"), own[1], path[-1]]
    assert spark_zips(elsewhere) == []
    # a py4j zip of another version than the installed py4j: Spark's path as it is
    assert spark_zips([own[0], str(lib / "py4j-0.10.9.7-src.zip"), path[-1]]) == []
    # no installed pyspark next to the zips: nothing else to import it from
    assert spark_zips(own) == []


@pytest.mark.parametrize(
    ("master", "python", "daemon"),
    [
        ("local[2]", None, "dcm_spark.daemon"),
        ("local[*]", None, "dcm_spark.daemon"),
        ("spark://127.0.0.1:7077", None, None),
        ("yarn", None, None),
        (None, None, None),  # spark-submit --master: from the properties file
        ("local[2]", "/usr/bin/python3", None),  # may not have dcm_spark
    ],
)
def test_only_a_local_session_of_this_interpreter_gets_the_daemon(
    master, python, daemon, monkeypatch
) -> None:
    from pyspark.sql import SparkSession

    from dcm_spark.session import configure

    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):  # configure sets them
        monkeypatch.setenv(name, os.environ.get(name, ""))

    builder = configure(SparkSession.builder, master=master, python=python)
    assert builder._options.get("spark.python.daemon.module") == daemon
    assert builder._options.get("spark.master") == master


def test_the_app_jvm_keeps_its_optimising_jit() -> None:
    """Jobs' driver JVM stops its JIT at C1 (conf/spark-defaults.conf); the app's options
    are the same, that one flag left out."""
    from dcm_spark.session import server_java_options

    options = _spark_defaults()["spark.driver.extraJavaOptions"].split()
    assert "-XX:TieredStopAtLevel=1" in options
    assert server_java_options().split() == [o for o in options if "TieredStopAtLevel" not in o]


def test_driver_jvm_maps_the_class_archive_setup_built() -> None:
    """`make setup` dumps the driver's class archive; the JVM spark-submit starts with
    conf/spark-defaults.conf maps it (-Xshare:on makes a mismatch fail the start)."""
    from dcm_spark.session import PROJECT_ROOT

    options = _spark_defaults()["spark.driver.extraJavaOptions"]
    (archive,) = [o.split("=", 1)[1] for o in options.split() if "SharedArchiveFile" in o]
    if not (PROJECT_ROOT / archive).exists():
        pytest.skip("no class archive: `make setup` builds it (or warned why it could not)")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["spark-submit", "--properties-file", "conf/spark-defaults.conf"]
        + ["--driver-java-options", f"{options} -Xshare:on", "--version"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
