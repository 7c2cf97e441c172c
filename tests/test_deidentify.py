"""De-identification of header rows (PS3.15 Annex E Basic Profile, exclude), without Spark.

The files are pydicom's own test files, read with pydicom for the expected side; the actions
expected of the profile are the standard's (``STANDARD`` below), not the module's table.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dcm_spark.dicom import _annex_e
from dcm_spark.dicom.deidentify import DUMMY, Policy, apply
from dcm_spark.dicom.header import HeaderOptions, to_record_batch
from tests.helpers import (
    KEY,
    all_text,
    find_key,
    pydicom_path,
    read_row,
    synthetic_file,
    type_names,
)

# pydicom warns about the odd invalid UID of its own test files when values are read.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

OTHER_KEY = b"another key, also 32 bytes long!"

# DICOM PS3.15 2024b Table E.1-1, "Basic Prof." column, for every attribute of the profile
# that the files below hold (at any depth). Keyed by tag, so that the keyword comes from
# pydicom's dictionary, not from dcm_spark.
STANDARD = {
    0x00020003: "U",  # Media Storage SOP Instance UID
    0x00080012: "X/D",  # Instance Creation Date
    0x00080013: "X/Z/D",  # Instance Creation Time
    0x00080014: "U",  # Instance Creator UID
    0x00080018: "U",  # SOP Instance UID
    0x00080020: "Z",  # Study Date
    0x00080021: "X/D",  # Series Date
    0x00080022: "X/Z",  # Acquisition Date
    0x00080023: "Z/D",  # Content Date
    0x0008002A: "X/Z/D",  # Acquisition DateTime
    0x00080030: "Z",  # Study Time
    0x00080031: "X/D",  # Series Time
    0x00080032: "X/Z",  # Acquisition Time
    0x00080033: "Z/D",  # Content Time
    0x00080050: "Z",  # Accession Number
    0x00080080: "X/Z/D",  # Institution Name
    0x00080081: "X",  # Institution Address
    0x00080090: "Z",  # Referring Physician's Name
    0x00080201: "X",  # Timezone Offset From UTC
    0x00081010: "X/Z/D",  # Station Name
    0x00081030: "X",  # Study Description
    0x0008103E: "X",  # Series Description
    0x00081040: "X",  # Institutional Department Name
    0x00081060: "X",  # Name of Physician(s) Reading Study
    0x00081070: "X/Z/D",  # Operators' Name
    0x00081111: "X/Z/D",  # Referenced Performed Procedure Step Sequence
    0x00081140: "X/Z/U*",  # Referenced Image Sequence
    0x00081155: "U",  # Referenced SOP Instance UID
    0x00082111: "X",  # Derivation Description
    0x00082112: "X/Z/U*",  # Source Image Sequence
    0x00100010: "Z",  # Patient's Name
    0x00100020: "Z/D",  # Patient ID
    0x00100030: "Z",  # Patient's Birth Date
    0x00100040: "Z",  # Patient's Sex
    0x00101000: "X",  # Other Patient IDs
    0x00101002: "X",  # Other Patient IDs Sequence
    0x00101010: "X",  # Patient's Age
    0x00101020: "X",  # Patient's Size
    0x00101030: "X",  # Patient's Weight
    0x00101040: "X",  # Patient's Address
    0x001021B0: "X",  # Additional Patient History
    0x001021C0: "X",  # Pregnancy Status
    0x00180010: "Z/D",  # Contrast/Bolus Agent
    0x00181000: "X/Z/D",  # Device Serial Number
    0x00181030: "X/D",  # Protocol Name
    0x0020000D: "U",  # Study Instance UID
    0x0020000E: "U",  # Series Instance UID
    0x00200010: "Z",  # Study ID
    0x00200052: "U",  # Frame of Reference UID
    0x00204000: "X",  # Image Comments
    0x00321030: "X",  # Reason for Study
    0x00321032: "X",  # Requesting Physician
    0x00321033: "X",  # Requesting Service
    0x00321060: "X/Z",  # Requested Procedure Description
    0x00324000: "X",  # Study Comments
    0x00380010: "X",  # Admission ID
    0x00380300: "X",  # Current Patient Location
    0x00380400: "X",  # Patient's Institution Residence
    0x00384000: "X",  # Visit Comments
    0x00400007: "X",  # Scheduled Procedure Step Description
    0x00400009: "X",  # Scheduled Procedure Step ID
    0x00400275: "X",  # Request Attributes Sequence
    0x00400555: "X/Z",  # Acquisition Context Sequence
    0x00401001: "X",  # Requested Procedure ID
    0x00401002: "X",  # Reason for the Requested Procedure
    0x0040A027: "D",  # Verifying Organization
    0x0040A030: "D",  # Verification DateTime
    0x0040A032: "X/D",  # Observation DateTime
    0x0040A073: "D",  # Verifying Observer Sequence
    0x0040A075: "D",  # Verifying Observer Name
    0x0040A088: "Z",  # Verifying Observer Identification Code Sequence
    0x0040A120: "D",  # DateTime
    0x0040A121: "D",  # Date
    0x0040A122: "D",  # Time
    0x0040A123: "D",  # Person Name
    0x0040A124: "U",  # UID
    0x0040A730: "D",  # Content Sequence
    0x00880140: "U",  # Storage Media File-set UID
    0x00880200: "X",  # Icon Image Sequence
    0x30060002: "D",  # Structure Set Label
    0x30060004: "X",  # Structure Set Name
    0x30060008: "Z",  # Structure Set Date
    0x30060009: "Z",  # Structure Set Time
    0x30060024: "U",  # Referenced Frame of Reference UID
    0x30060026: "Z",  # ROI Name
    0x30060028: "X",  # ROI Description
    0x30060085: "X",  # ROI Observation Label
    0x30060088: "X",  # ROI Observation Description
    0x300600A6: "Z",  # ROI Interpreter
    0x300A0002: "D",  # RT Plan Label
    0x300A0003: "X",  # RT Plan Name
    0x300A0006: "X/D",  # RT Plan Date
    0x300A0007: "X/D",  # RT Plan Time
    0x300A0016: "X",  # Dose Reference Description
    0x300A00B2: "X/Z",  # Treatment Machine Name
    0x300A01B2: "X",  # Setup Technique Description
    0xFFFCFFFC: "X",  # Data Set Trailing Padding
}
# Sequences whose items the profile removes, empties or replaces as a whole.
WHOLE = {"X", "Z", "D", "X/Z", "X/D", "Z/D", "X/Z/D"}

TEST_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "examples_overlay.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
]
CHARSET_FILES = ["chrH31.dcm", "chrH32.dcm", "chrX1.dcm", "chrX2.dcm", "chrArab.dcm", "chrRuss.dcm"]


ALL_FILES = [pytest.param(pydicom_path(n), id=n) for n in TEST_FILES + CHARSET_FILES]


def _dataset(path: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)  # the charset files have no preamble
    return ds


def _elements(ds: Dataset, inside: str = "") -> Iterator[tuple[pydicom.DataElement, str]]:
    """Every element at every depth, with the action of the closest enclosing sequence."""
    for elem in [*(ds.file_meta or ()), *ds] if isinstance(ds, pydicom.FileDataset) else ds:
        yield elem, inside
        if elem.VR == "SQ":
            action = STANDARD.get(elem.tag, "")
            for item in elem.value:
                yield from _elements(item, action if action in WHOLE else inside)


def _strings(elem: pydicom.DataElement) -> set[str]:
    """The text of an element's values as pydicom gives it (PN split into components)."""
    if elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.value is None:
        return set()
    values = (
        elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
    )
    out: set[str] = set()
    for value in values:
        text = str(value).strip()
        out |= {p for p in re.split(r"[=^]", text) if p} if elem.VR == "PN" else {text}
    return out


def _telling(text: str) -> bool:
    """Whether finding ``text`` in a row means it leaked. Very short texts and short
    numbers match unrelated values (a digit of a hashed UID, a "1" of a series number)."""
    digits = text.replace(".", "").replace("-", "").replace("+", "")
    return len(text) >= 3 and not (digits.isdigit() and len(text) < 6)


def _protected(ds: Dataset) -> tuple[set[str], set[str]]:
    """(values the profile must not leave in the row, values it keeps as they are)."""
    protected, kept = set(), set()
    for elem, inside in _elements(ds):
        action = STANDARD.get(elem.tag)
        if inside or (action is not None and action != "X/Z/U*"):
            protected |= _strings(elem)
        elif not elem.tag.is_private:
            kept |= _strings(elem)
    return {p for p in protected if _telling(p)}, kept


def _conforms(value: Any, arrow_type: pa.DataType, where: str = "") -> None:
    """Every key of every struct value is a field of its type, at every depth."""
    if value is None:
        return
    if pa.types.is_list(arrow_type):
        assert isinstance(value, list), where
        for v in value:
            _conforms(v, arrow_type.value_type, where + "[]")
    elif pa.types.is_struct(arrow_type):
        assert isinstance(value, dict), where
        fields = {f.name: f.type for f in arrow_type}
        assert set(value) <= set(fields), (where, set(value) - set(fields))
        for k, v in value.items():
            _conforms(v, fields[k], f"{where}.{k}")
    elif pa.types.is_null(arrow_type):
        raise AssertionError(f"{where}: a value in a null column")


BASIC = Policy(profile="basic", hash_key=KEY)


# -- the table -------------------------------------------------------------------------


def test_annex_e_table_resolves_to_pydicom_keywords() -> None:
    source = Path(_annex_e.__file__).read_text()
    lines = re.findall(r'"(\w+)": "([A-Z/*]+)",  # \(([0-9A-Fx]{4}),([0-9A-F]{4})\)', source)
    assert len(lines) == len(_annex_e.BASIC_PROFILE) >= 300
    for keyword, _action, group, element in lines:
        if "x" in group:  # a repeating group: pydicom knows it under its mask
            mask = group + element
            assert pydicom.datadict.RepeatersDictionary[mask][4] == keyword
        else:
            assert pydicom.datadict.keyword_for_tag(int(group + element, 16)) == keyword
    codes = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    assert set(_annex_e.BASIC_PROFILE.values()) <= codes


def test_annex_e_table_agrees_with_the_standard_on_the_test_attributes() -> None:
    for tag, action in STANDARD.items():
        keyword = pydicom.datadict.keyword_for_tag(tag)
        assert _annex_e.BASIC_PROFILE.get(keyword) == action, keyword


# -- (a) no value the profile protects is left, at any depth ---------------------------


@pytest.mark.parametrize("path", ALL_FILES)
def test_basic_profile_leaves_no_protected_value(path: str) -> None:
    protected, kept = _protected(_dataset(path))
    result = apply(read_row(path), BASIC)
    text = all_text(result.values)
    checked = [p for p in protected if not any(p in k for k in kept)]
    assert checked, "the file holds no value of the profile"
    leaked = sorted(p for p in checked if p in text)
    assert not leaked


@pytest.mark.parametrize("path", ALL_FILES)
def test_result_types_follow_values(path: str) -> None:
    result = apply(read_row(path), BASIC)
    assert set(result.values) == set(result.types)
    for name, value in result.values.items():
        _conforms(value, result.types[name], name)
    removed = {pydicom.datadict.keyword_for_tag(t) for t, a in STANDARD.items() if a == "X"}
    assert not removed & type_names(result.types)
    batch = to_record_batch([result])  # Arrow takes the row with its own types
    assert batch.num_rows == 1


def test_japanese_names_are_removed_in_every_group() -> None:
    path = pydicom_path("chrH31.dcm")
    name = _dataset(path).PatientName
    assert name.ideographic and name.phonetic  # the file has all three groups
    result = apply(read_row(path), BASIC)
    text = all_text(result.values)
    assert result.values["PatientName"] is None  # Z
    for part in ("Yamada", "Tarou", "山田", "太郎", "やまだ", "たろう"):
        assert part not in text


def test_actions_by_code() -> None:
    path = pydicom_path("CT_small.dcm")
    ds = _dataset(path)
    original = read_row(path)
    result = apply(original, BASIC).values
    assert "PatientAge" in original.values and "PatientAge" not in result  # X
    assert "OtherPatientIDsSequence" not in result  # X, a sequence
    assert result["PatientName"] is None and "PatientName" in original.values  # Z
    assert result["AcquisitionDate"] is None  # X/Z -> Z
    assert result["InstitutionName"] == DUMMY  # X/Z/D -> D
    assert result["ContentDate"] == datetime.date(1900, 1, 1)  # Z/D -> D, a date
    assert result["ContentTime"] == "00:00:00"
    assert result["StudyInstanceUID"] != ds.StudyInstanceUID  # U
    assert result["SOPClassUID"] == ds.SOPClassUID  # not in the profile: kept
    # File meta is no part of the table (a new one is written); the sender's AE title goes.
    assert (
        ds.file_meta.SourceApplicationEntityTitle and "SourceApplicationEntityTitle" not in result
    )
    assert result["PatientIdentityRemoved"] == "YES"
    assert result["DeidentificationMethod"] and "Annex E" in result["DeidentificationMethod"][0]
    codes = result["DeidentificationMethodCodeSequence"]
    assert [(c["CodeValue"], c["CodingSchemeDesignator"]) for c in codes] == [("113100", "DCM")]
    plan = apply(read_row(pydicom_path("rtplan.dcm")), BASIC).values
    assert plan["OperatorsName"] == [{"Alphabetic": {"FamilyName": DUMMY}}]  # PN array, D


def test_identifiers_are_keyed_hashes() -> None:
    path = pydicom_path("CT_small.dcm")
    ds = _dataset(path)
    assert ds.PatientID == ds.StudyID  # both "1CT1" in this file
    result = apply(read_row(path), BASIC).values
    expected = hmac.new(KEY, b"PatientID\0" + ds.PatientID.encode(), hashlib.sha256)
    assert result["PatientID"] == expected.hexdigest()[:16]
    # The keyword is part of the hash: equal values do not show as equal pseudonyms.
    assert result["StudyID"] != result["PatientID"] and len(result["StudyID"]) == 16
    again = apply(read_row(path), Policy(profile="basic", hash_key=KEY)).values
    assert again["PatientID"] == result["PatientID"]


# -- (b) UIDs ---------------------------------------------------------------------------


def test_uids_are_replaced_consistently_across_files() -> None:
    source, derived = (
        pydicom_path("SC_rgb_small_odd.dcm"),
        pydicom_path("SC_rgb_small_odd_jpeg.dcm"),
    )
    uid = _dataset(source).SOPInstanceUID
    references = [
        e.value for e, _ in _elements(_dataset(derived)) if e.keyword == "ReferencedSOPInstanceUID"
    ]
    assert uid in references  # the JPEG file points at the other by its SOP Instance UID
    new: dict[bytes, str] = {}
    for key in (KEY, OTHER_KEY):
        policy = Policy(profile="basic", hash_key=key)
        first, second = (
            apply(read_row(source), policy).values,
            apply(read_row(derived), policy).values,
        )
        new[key] = first["SOPInstanceUID"]
        assert first["MediaStorageSOPInstanceUID"] == new[key]
        assert new[key] in find_key(second, "ReferencedSOPInstanceUID")
        assert uid not in all_text(first) + all_text(second)
    assert new[KEY] != new[OTHER_KEY]
    digest = hmac.new(KEY, b"UID\0" + uid.encode(), hashlib.sha256).digest()
    assert new[KEY] == "2.25." + str(int.from_bytes(digest[:16], "big"))


@pytest.mark.parametrize("path", ALL_FILES)
def test_replaced_uids_are_valid(path: str) -> None:
    result = apply(read_row(path), BASIC).values
    keywords = {pydicom.datadict.keyword_for_tag(t) for t, a in STANDARD.items() if a == "U"}
    for keyword in keywords:
        for value in find_key(result, keyword):
            for uid in value if isinstance(value, list) else [value]:
                if uid:
                    assert uid.startswith("2.25.") and UID(uid).is_valid, (keyword, uid)


# -- (c) private attributes ------------------------------------------------------------


def _private_left(value: Any) -> list[str]:
    """Names of private columns and entries anywhere in a row."""
    found: list[str] = []
    if isinstance(value, dict):
        for name, v in value.items():
            if name.startswith("Tag_") and int(name[4:8], 16) & 1:
                found.append(name)
            if name in ("OtherElements", "_BulkData"):
                found += [e["Tag"] for e in v or () if int(e["Tag"][4:8], 16) & 1]
            found += _private_left(v)
    elif isinstance(value, list):
        found += [x for v in value for x in _private_left(v)]
    return found


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "nested_priv_SQ.dcm", "examples_overlay.dcm", "waveform_ecg.dcm"]
)
def test_private_attributes_are_gone_at_every_depth(name: str) -> None:
    path = pydicom_path(name)
    original = read_row(path)
    assert _private_left(original.values)  # there is something to remove
    result = apply(original, BASIC)
    assert not _private_left(result.values)
    assert not [n for n in type_names(result.types) if n.startswith("Tag_")]
    ds = _dataset(path)
    _, kept = _protected(ds)  # a private value may repeat a public one (the manufacturer)
    private = {s for e, _ in _elements(ds) if e.tag.is_private for s in _strings(e)}
    text = all_text(result.values)
    assert not [p for p in private if _telling(p) and p not in kept and p in text]


def test_unknown_public_sequences_are_dropped_by_the_profile_only() -> None:
    header = read_row(pydicom_path("UN_sequence.dcm"))
    assert "Tag_4453100C" in header.values  # (4453,100C): even group, in no dictionary
    assert "Tag_4453100C" not in apply(header, BASIC).values
    assert "Tag_4453100C" in apply(header, Policy(exclude=frozenset({"PatientName"}))).values


def test_private_and_unparsable_values_in_a_synthetic_file() -> None:
    original = read_row(synthetic_file())
    assert {"Tag": "Tag_00100030", "Data": ["19XX0101"]} in original.values["OtherElements"]
    result = apply(original, BASIC)
    text = all_text(result.values)
    for leak in ("19XX0101", "secret private text", "ACME", "Doe", "Roe", "Poe", "Private"):
        assert leak not in text
    assert "PID-12345" not in text and "1.2.3.4.5.6.7.8.9.1001" not in text
    # Deeper than max_depth, a subtree is DICOM JSON text: the profile drops it whole.
    deep = apply(read_row(synthetic_file(), HeaderOptions(max_depth=1)), BASIC)
    deep_text = all_text(deep.values)
    assert "Poe" not in deep_text and "1.2.3.4.5.6.7.8.9.1001" not in deep_text


# -- (d) exclude -----------------------------------------------------------------------


# -- (e) bad policies ------------------------------------------------------------------


# -- the policy object -----------------------------------------------------------------
