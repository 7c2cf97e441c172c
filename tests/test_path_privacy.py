"""Paths that name patients never reach a de-identified table (`dcm_spark.pseudonyms`).

A tree named the way archives name it (patient/study/series) is ingested; every folder
name and every identifying value of its files (read with pydicom) is searched for in every
file under the table and its side tables (Parquet pages decoded, the Delta log as text)
and in the job's output.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dcm_spark.dicom.deidentify import Policy, Profile
from dcm_spark.pseudonyms import PathMode, PathPolicy
from jobs.ingest import main as ingest_job
from tests.helpers import ingest, pydicom_path, rows, stored_text

KEY = b"0123456789abcdef-path-privacy-test"
# (InstitutionName is left out: a file whose institution is "TOSHIBA" keeps that text as its
# Manufacturer, which the profile keeps)
IDENTIFYING = ("PatientName", "PatientID", "AccessionNumber", "StudyID", "OtherPatientIDs")
SOURCES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")


def _tree(root: Path) -> list[str]:
    """Files in folders named after their patient and study; returns the names to hide."""
    secrets: set[str] = set()
    for name in SOURCES:
        ds = pydicom.dcmread(pydicom_path(name))
        patient = f"{ds.PatientID}_{str(ds.PatientName).replace('^', ' ')}"
        folder = root / patient / f"study {ds.get('StudyDescription', '') or ds.StudyDate}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(pydicom_path(name), folder / f"{ds.PatientID}-{name}")
        secrets |= {patient, folder.name, f"{ds.PatientID}-{name}"}
        secrets |= {str(ds.get(k)) for k in IDENTIFYING if ds.get(k) not in (None, "")}
    archive = root / "DOE^JANE 0042.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(pydicom_path("CT_small.dcm"), "DOE^JANE 0042/head.dcm")
        zf.writestr("DOE^JANE 0042/notes.dcm", b"not DICOM")
    (root / "SMITH^ANNA 0007").mkdir()
    (root / "SMITH^ANNA 0007" / "broken.dcm").write_bytes(b"\0" * 132)
    secrets |= {"DOE^JANE 0042", "SMITH^ANNA 0007", "head.dcm", "notes.dcm"}
    return sorted(s for s in secrets if len(s) >= 4)


def _found(secrets: list[str], text: str) -> list[str]:
    return [s for s in secrets if s in text or s.replace(" ", "^") in text]


@pytest.mark.parametrize("where", ["spark", "driver"])
def test_no_folder_name_nor_identifying_value_reaches_the_table(spark, tmp_path, where) -> None:
    secrets = _tree(tmp_path / "archive")
    table = tmp_path / "table"
    options: dict[str, Any] = {
        "privacy": Policy(profile=Profile.BASIC, hash_key=KEY),
        "paths": PathPolicy(PathMode.PSEUDONYM, KEY),
        "path_map": str(tmp_path / "path-map.tsv"),
    }
    summary = ingest(spark, [tmp_path / "archive"], table, where=where, **options)
    again = ingest(spark, [tmp_path / "archive"], table, where=where, **options)

    assert (summary.parsed, summary.failed) == (4, 2)
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)  # pseudonyms are stable
    stored = stored_text(table, Path(f"{table}_errors"))
    output = summary.to_json() + summary.text()  # what the job prints and writes
    assert _found(secrets, stored + output) == []
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert all(p.startswith("file:/") and p.count("/") >= 3 for p in paths)
    mapped = dict(line.split("\t") for line in (tmp_path / "path-map.tsv").read_text().splitlines())
    assert any(real.endswith("DOE^JANE 0042.zip") for real in mapped.values())
    assert {p.split("!/")[0] for p in paths} <= set(mapped)


def test_kept_paths_are_found_by_the_same_search(spark, tmp_path) -> None:
    """The search above can fail: without pseudonyms it finds the folder names."""
    secrets = _tree(tmp_path / "archive")
    table = tmp_path / "table"
    ingest(spark, [tmp_path / "archive"], table, where="driver")
    found = _found(secrets, stored_text(table, Path(f"{table}_errors")))
    assert "DOE^JANE 0042" in found and "SMITH^ANNA 0007" in found


def test_dropped_paths_keep_no_tree_and_runs_stay_incremental(spark, tmp_path) -> None:
    secrets = _tree(tmp_path / "archive")
    table = tmp_path / "table"
    options: dict[str, Any] = {"paths": PathPolicy(PathMode.DROP, KEY)}
    ingest(spark, [tmp_path / "archive"], table, where="driver", **options)
    again = ingest(spark, [tmp_path / "archive"], table, where="driver", **options)
    assert again.parsed == 0
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert all(p.startswith("dropped:") and "/" not in p.split("!/")[0] for p in paths)
    assert not [s for s in _found(secrets, "\n".join(paths)) if s not in ("head.dcm",)]


def test_pseudonyms_without_a_key_file_are_refused(tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    code = ingest_job(
        ["--input", str(tmp_path / "in"), "--table", str(tmp_path / "t"), "--deidentify", "basic"]
    )
    assert code == 2
    assert "needs --hash-key-file" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_a_pseudonym_is_per_component_and_keyed() -> None:
    one, two = PathPolicy(PathMode.PSEUDONYM, KEY), PathPolicy(PathMode.PSEUDONYM, KEY[::-1])
    path = "file:/data/DOE^JOHN/CT 2020/1.dcm"
    a, b = one.listed(path, 10, 1000), one.listed("file:/data/DOE^JOHN/MR/2.dcm", 10, 1000)
    assert a.count("/") == path.count("/") and a.startswith("file:/")
    assert a.split("/")[2] == b.split("/")[2] != "DOE^JOHN"  # one patient, one folder
    assert two.listed(path, 10, 1000) != a
    assert one.listed("file:/x/DOE.zip", 1, 1).endswith(".zip")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PathPolicy(PathMode.PSEUDONYM, b"short")
