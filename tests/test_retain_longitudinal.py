"""Annex E options with the Basic profile: ``--retain-longitudinal`` (dates shifted per
patient, intervals exact: Retain Longitudinal Temporal Information with Modified Dates) and
``--retain-uids``.

Files are real (pydicom's CT_small with its study dates and PatientID changed, as a second
study or a second patient); expected intervals come from the dates written into them.
"""

from __future__ import annotations

import datetime
import io

import pydicom
import pytest

from dcm_spark.dicom.deidentify import Policy, Profile, apply
from dcm_spark.dicom.header import Header, read_header
from tests.helpers import pydicom_path

KEY = b"a key of more than sixteen bytes"


def _study(patient_id: str, date: str, age: str = "042Y") -> tuple[Header, pydicom.Dataset]:
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    ds.PatientID, ds.StudyDate, ds.SeriesDate, ds.PatientAge = patient_id, date, date, age
    ds.AcquisitionDateTime = f"{date}101500"
    out = io.BytesIO()
    ds.save_as(out)
    out.seek(0)
    return read_header(out), ds


def _date(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%Y%m%d").date()


def test_intervals_within_a_patient_are_exact_and_patients_shift_apart() -> None:
    policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_longitudinal=True)
    (first, a), (second, b) = _study("PAT-1", "20200101"), _study("PAT-1", "20200315")
    (other, c) = _study("PAT-2", "20200101")
    one, two, three = (apply(h, policy).values for h in (first, second, other))

    assert two["StudyDate"] - one["StudyDate"] == _date(b.StudyDate) - _date(a.StudyDate)
    shift = _date(a.StudyDate) - one["StudyDate"]
    assert datetime.timedelta(days=1) <= shift <= datetime.timedelta(days=3650)
    assert _date(c.StudyDate) - three["StudyDate"] != shift  # another patient, another shift
    assert one["SeriesDate"] == one["StudyDate"]  # every date of a patient moves together
    acquired = one["AcquisitionDateTime"]
    assert (acquired.hour, acquired.minute) == (10, 15)  # whole days: times stay
    assert acquired.date() == one["StudyDate"]
    assert one["PatientAge"] == a.PatientAge  # ages are kept
    assert one.get("PatientBirthDate") is None
    assert one["LongitudinalTemporalInformationModified"] == "MODIFIED"
    codes = {c["CodeValue"] for c in one["DeidentificationMethodCodeSequence"]}
    assert codes == {"113100", "113107"}
    assert one["PatientID"] != "PAT-1"  # still replaced by its keyed hash


def test_the_same_key_shifts_the_same_way_in_every_run() -> None:
    header, _ = _study("PAT-1", "20200101")
    runs = [Policy(profile=Profile.BASIC, hash_key=KEY, retain_longitudinal=True) for _ in "ab"]
    assert apply(header, runs[0]).values["StudyDate"] == apply(header, runs[1]).values["StudyDate"]


def test_without_the_option_dates_are_dummies_and_ages_go() -> None:
    header, _ = _study("PAT-1", "20200101")
    values = apply(header, Policy(profile=Profile.BASIC, hash_key=KEY)).values
    assert values.get("StudyDate") is None  # Z: zero length
    assert "PatientAge" not in values  # X
    assert "LongitudinalTemporalInformationModified" not in values


def test_without_a_key_the_option_is_refused() -> None:
    with pytest.raises(ValueError, match="random key would shift dates differently"):
        Policy(profile=Profile.BASIC, retain_longitudinal=True)


def test_retain_uids_keeps_every_uid_and_still_removes_names() -> None:
    header, ds = _study("PAT-1", "20200101")
    values = apply(header, Policy(profile=Profile.BASIC, hash_key=KEY, retain_uids=True)).values
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert values[keyword] == ds[keyword].value
    assert values["PatientID"] != ds.PatientID
    assert values.get("PatientName") in (None, {"Alphabetic": {"FamilyName": "ANONYMIZED"}})
    codes = {c["CodeValue"] for c in values["DeidentificationMethodCodeSequence"]}
    assert codes == {"113100", "113110"}


def test_an_unparsable_date_is_null_and_its_text_is_nowhere() -> None:
    """A date that does not parse cannot be shifted: the column is null, and the text the
    file holds is not kept in ``OtherElements`` either (it may be a real date, misspelt)."""
    header, _ = _study("PAT-1", "2020-01-01 or so")  # not a DA value
    assert "2020-01-01 or so" in str(header.values.get("OtherElements"))  # where it went
    values = apply(
        header, Policy(profile=Profile.BASIC, hash_key=KEY, retain_longitudinal=True)
    ).values
    assert values.get("StudyDate") is None and values.get("SeriesDate") is None
    assert "2020-01-01 or so" not in repr(values)
    assert values["LongitudinalTemporalInformationModified"] == "MODIFIED"
