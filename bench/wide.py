"""The wide corpus and its benchmark (``make bench-wide``): a table of thousands of fields.

    python -m bench.wide --files 100000 [--seed 0]

Templates (replicated with new UIDs by `bench.corpus.generate`, deterministic):

- the benchmark's own (pydicom's test files, `bench.corpus.default_templates`);
- every other file pydicom and pydicom-data ship that reads cleanly (enhanced multi-frame MR
  and CT, RT, waveforms...), pixel data dropped where it is over the benchmark's limit
  (header replicas: the ingest never reads pixels);
- highdicom's objects (`tests.corpus.build_highdicom_objects`): SR TID 1500 and a deep SR,
  SEG, KOS, a parametric map, a VL whole slide microscopy header;
- `VENDORS` vendor-style variants of CT and MR: each carries private blocks of its own
  creators (``DCMSPARK VENDOR nn``: text, numbers, a private sequence whose items hold
  standard attributes) and `EXTRA_ATTRIBUTES` standard attributes of pydicom's dictionary
  that the other templates lack, with dummy values of their VR (synthetic: the width a
  hospital archive reaches through many SOP classes and vendors).

Measured on ``--files`` files, one run: the ingest job (its stages; the write stage holds
the schema merge and the commit), ``jobs/schema.py``, registering the views, three queries
(``count(*) GROUP BY Modality``, a filter on a nested field, ``dicom_series`` of one study),
the Delta log's bytes and one data file's Parquet footer; with the same for the
benchmark's corpus of the same size, so what grows with the width shows.
Results: ``bench/results/<date>-<files>-wide.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

#: Vendor-style variants, each with private blocks of its own creators.
VENDORS = 40
#: Standard attributes (absent from the other templates) each variant adds.
EXTRA_ATTRIBUTES = 40

_DUMMY: dict[str, Any] = {
    "AE": "BENCH", "AS": "042Y", "CS": "BENCH", "DA": "20240101", "DS": "1.5",
    "DT": "20240101120000", "FD": 1.5, "FL": 1.5, "IS": "2", "LO": "bench", "LT": "bench",
    "PN": "Bench^Value", "SH": "bench", "SL": -2, "SS": -2, "ST": "bench", "TM": "120000",
    "UC": "bench", "UL": 2, "UR": "http://bench", "US": 2, "UT": "bench", "SV": -2, "UV": 2,
}  # fmt: skip


def _pick_keywords(taken: set[str], rng: random.Random, count: int) -> list[str]:
    from pydicom.datadict import DicomDictionary

    usable = sorted(
        entry[4]
        for tag, entry in DicomDictionary.items()
        if entry[4] and entry[0] in _DUMMY and entry[1] == "1" and entry[3] == ""
        and tag >> 16 not in (0x0002, 0x0000) and entry[4] not in taken
    )  # fmt: skip
    return rng.sample(usable, count)


def _vendor_variant(base: Path, k: int, taken: set[str], out: Path) -> Path:
    """``base`` with vendor ``k``'s private blocks and standard attributes."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    rng = random.Random(k)
    ds = pydicom.dcmread(base)
    creator = f"DCMSPARK VENDOR {k:02d}"
    group = 0x0009 + 2 * (k % 16)
    block = ds.private_block(group, creator, create=True)
    block.add_new(0x01, "LO", f"protocol {k}")
    block.add_new(0x02, "DS", "2.5")
    block.add_new(0x03, "US", k)
    block.add_new(0x04, "OB", bytes(range(64)))
    items = []
    inner = _pick_keywords(taken, rng, 8)
    for i in range(2):
        item = Dataset()
        for keyword in inner:
            setattr(item, keyword, _DUMMY[pydicom.datadict.dictionary_VR(keyword)])
        item.private_block(group, creator, create=True).add_new(0x01, "LO", f"item {i}")
        items.append(item)
    block.add_new(0x10, "SQ", Sequence(items))
    for keyword in _pick_keywords(taken | set(inner), rng, EXTRA_ATTRIBUTES):
        setattr(ds, keyword, _DUMMY[pydicom.datadict.dictionary_VR(keyword)])
    target = out / f"vendor-{k:02d}-{base.name}"
    ds.save_as(target, enforce_file_format=True)
    return target


def templates(out: Path) -> list[Path]:
    """The wide corpus's templates, written under ``out`` where they are made here."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from bench.corpus import MAX_PIXEL_BYTES, default_templates
    from tests.corpus import build_highdicom_objects, pydicom_files, testdata_file

    out.mkdir(parents=True, exist_ok=True)
    chosen = list(default_templates())
    names = {p.name for p in chosen}
    stripped = out / "headers"
    stripped.mkdir(exist_ok=True)
    for path in pydicom_files():
        if path.name in names or path.suffix.lower() not in (".dcm", ""):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ds = pydicom.dcmread(path)
                ds.remove_private_tags()  # theirs; ours are below
        except (InvalidDicomError, Exception):  # noqa: BLE001 (the broken files pydicom ships)
            continue
        if "SOPInstanceUID" not in ds or "TransferSyntaxUID" not in ds.file_meta:
            continue
        if len(ds.get("PixelData", b"")) >= MAX_PIXEL_BYTES:
            del ds.PixelData
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        target = stripped / f"{len(chosen):03d}-{path.name}"
        try:
            ds.save_as(target, enforce_file_format=False)
            pydicom.dcmread(target)
        except Exception:  # noqa: BLE001 (one that does not write back: left out)
            continue
        chosen.append(target)
        names.add(path.name)
    chosen += sorted(build_highdicom_objects(out / "highdicom").values())
    taken: set[str] = set()
    for path in chosen:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            taken |= set(pydicom.dcmread(path, stop_before_pixels=True).dir())
    vendors = out / "vendors"
    vendors.mkdir(exist_ok=True)
    bases = [testdata_file("CT_small.dcm"), testdata_file("MR_small.dcm")]
    chosen += [_vendor_variant(bases[k % 2], k, taken, vendors) for k in range(VENDORS)]
    return chosen


def _fields(data_type: Any) -> int:
    """Fields of a Spark type, nested ones included."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(data_type, StructType):
        return sum(1 + _fields(f.dataType) for f in data_type.fields)
    if isinstance(data_type, ArrayType):
        return _fields(data_type.elementType)
    if isinstance(data_type, MapType):
        return _fields(data_type.valueType)
    return 0


def _seconds(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(table: str, repeats: int = 3) -> dict[str, Any]:
    """In this process's Spark session (run under spark-submit)."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from dcm_spark.catalog import register
    from dcm_spark.session import job_session

    spark = job_session("dcm-spark bench wide")
    register(spark, table, idc=False)  # warm-up
    registering = [_seconds(lambda: register(spark, table, idc=False)) for _ in range(repeats)]
    schema = spark.table("dicom").schema
    study = spark.sql("SELECT min(StudyInstanceUID) FROM dicom").first()[0]
    queries = {
        "count_by_modality": "SELECT Modality, count(*) FROM dicom GROUP BY Modality",
        "nested_filter": "SELECT count(*) FROM dicom WHERE exists(ReferencedImageSequence, "
        "r -> r.ReferencedSOPInstanceUID IS NOT NULL)",
        "one_study_series": f"SELECT * FROM dicom_series WHERE StudyInstanceUID = '{study}'",
    }
    timed = {}
    for name, sql in queries.items():
        spark.sql(sql).collect()  # warm-up
        timed[name] = round(
            statistics.median(_seconds(spark.sql(sql).collect) for _ in range(repeats)), 3
        )
    log = Path(table) / "_delta_log"
    files = DeltaTable(table).file_uris()
    footer = pq.ParquetFile(files[0].removeprefix("file://")).metadata.serialized_size
    return {
        "columns": len(schema.fields),
        "fields": _fields(schema),
        "register_s": round(statistics.median(registering), 3),
        "query_s": timed,
        "log_bytes": sum(p.stat().st_size for p in log.iterdir() if p.is_file()),
        "data_files": len(files),
        "footer_bytes_one_file": footer,
    }


def _one_corpus(name: str, corpus: Path, work: Path) -> dict[str, Any]:
    from bench.run import spark_submit
    from dcm_spark.session import server_java_options

    table, summary, result = work / f"{name}-table", work / f"{name}.json", work / f"{name}-m.json"
    ingest_s, peaks = spark_submit(
        "jobs/ingest.py", "--input", str(corpus), "--table", str(table),
        "--summary-json", str(summary),
    )  # fmt: skip
    schema_s, _ = spark_submit("jobs/schema.py", "--table", str(table))
    # measured as the app's session runs: a warm JVM with its optimising JIT
    spark_submit(
        "bench/wide.py", "--measure", str(table), "--result", str(result),
        java_options=server_java_options(),
    )  # fmt: skip
    done = json.loads(summary.read_text())
    return {
        "ingest_job_s": round(ingest_s, 2),
        "ingest_stage_s": done["stage_seconds"],
        "rows": done["rows_written"],
        "schema_job_s": round(schema_s, 2),
        "driver_peak_mb": {k: round(v) for k, v in peaks.items()},
        **json.loads(result.read_text()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.wide", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", metavar="TABLE", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # inside spark-submit
        args.result.write_text(json.dumps(measure(args.measure)))
        return 0

    from bench.corpus import default_templates, generate
    from bench.run import machine, save_result

    result: dict[str, Any] = {"files": args.files, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="dcm-bench-wide-") as scratch:
        work = Path(scratch)
        wide = templates(work / "templates")
        result["templates"] = {"wide": len(wide), "benchmark": len(default_templates())}
        for name, chosen in (("wide", wide), ("benchmark", None)):
            corpus = work / f"{name}-corpus"
            start = time.perf_counter()
            generate(corpus, args.files, args.seed, chosen)
            result[f"{name}_generated_s"] = round(time.perf_counter() - start, 1)
            result[name] = _one_corpus(name, corpus, work)
            shutil.rmtree(corpus)
            print(json.dumps({name: result[name]}), flush=True)
    save_result(result, f"{args.files}-wide", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
