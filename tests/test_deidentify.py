"""De-identification of header rows (PS3.15 Annex E Basic Profile, exclude), without Spark.

The files are pydicom's own test files, read with pydicom for the expected side; the actions
expected of the profile are the standard's (``STANDARD`` below), not the module's table.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import hmac
import io
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from dcm_spark.dicom import _annex_e
from dcm_spark.dicom.deidentify import DUMMY, Policy, Profile, apply
from dcm_spark.dicom.header import Header, HeaderOptions, convert_file, to_record_batch

# pydicom warns about the odd invalid UID of its own test files when values are read.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEY = b"0123456789abcdef0123456789abcdef"
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


def _path(name: str) -> str:
    found = get_charset_files(name)[0] if name.startswith("chr") else get_testdata_file(name)
    assert found is not None, name
    return str(found)


ALL_FILES = [pytest.param(_path(n), id=n) for n in TEST_FILES + CHARSET_FILES]


def _read(path: str | io.BytesIO, options: HeaderOptions | None = None) -> Header:
    header = convert_file(path, options)
    assert isinstance(header, Header), header
    return header


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


def _text(value: Any) -> str:
    """A row as text, dates and times also written as in DICOM (YYYYMMDD, HHMMSS)."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, datetime.datetime):
            parts.extend([v.strftime("%Y%m%d%H%M%S"), v.isoformat()])
        elif isinstance(v, datetime.date):
            parts.extend([v.strftime("%Y%m%d"), v.isoformat()])
        elif isinstance(v, str):
            parts.extend([v, v.replace(":", "")])
        elif v is not None:
            parts.append(str(v))

    walk(value)  # values only: column names ("DateTime") are not values
    return "\n".join(parts)


def _find(value: Any, key: str) -> list[Any]:
    """Every value of ``key`` at any depth of a row."""
    if isinstance(value, dict):
        found = [value[key]] if key in value else []
        return found + [x for v in value.values() for x in _find(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in _find(v, key)]
    return []


def _type_names(arrow_type: Any) -> set[str]:
    """Every field name at every depth of a type, or of a dict of column types."""
    if isinstance(arrow_type, dict):
        return set(arrow_type) | {n for t in arrow_type.values() for n in _type_names(t)}
    if pa.types.is_list(arrow_type):
        return _type_names(arrow_type.value_type)
    if pa.types.is_struct(arrow_type):
        return _type_names({f.name: f.type for f in arrow_type})
    return set()


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


def _synthetic() -> io.BytesIO:
    """A file with identifying values at three depths, a private sequence in an item, an
    unparsable date (kept as text in OtherElements) and a private element."""
    inner = Dataset()
    inner.PatientName = "Poe^Edgar"
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9.1001"
    private_item = Dataset()
    private_item.PatientName = "Private^Person"
    item = Dataset()
    item.PatientName = "Roe^Richard"
    item.PatientID = "PID-67890"
    item.SeriesInstanceUID = "1.2.3.4.5.6.7.8.9.2002"
    item.ReferencedInstanceSequence = Sequence([inner])
    item.add_new(0x00110010, "LO", "ACME 1.0")
    item.add_new(0x00111001, "SQ", Sequence([private_item]))
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-12345"
    ds.ReferencedSeriesSequence = Sequence([item])
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "secret private text")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.8.9.3003"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.add_new(0x00100030, "DA", "19XX0101")  # not a date: the row keeps it as text
        ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


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
    result = apply(_read(path), BASIC)
    text = _text(result.values)
    checked = [p for p in protected if not any(p in k for k in kept)]
    assert checked, "the file holds no value of the profile"
    leaked = sorted(p for p in checked if p in text)
    assert not leaked


@pytest.mark.parametrize("path", ALL_FILES)
def test_result_types_follow_values(path: str) -> None:
    result = apply(_read(path), BASIC)
    assert set(result.values) == set(result.types)
    for name, value in result.values.items():
        _conforms(value, result.types[name], name)
    removed = {pydicom.datadict.keyword_for_tag(t) for t, a in STANDARD.items() if a == "X"}
    assert not removed & _type_names(result.types)
    batch = to_record_batch([result])  # Arrow takes the row with its own types
    assert batch.num_rows == 1


def test_japanese_names_are_removed_in_every_group() -> None:
    path = _path("chrH31.dcm")
    name = _dataset(path).PatientName
    assert name.ideographic and name.phonetic  # the file has all three groups
    result = apply(_read(path), BASIC)
    text = _text(result.values)
    assert result.values["PatientName"] is None  # Z
    for part in ("Yamada", "Tarou", "山田", "太郎", "やまだ", "たろう"):
        assert part not in text


def test_actions_by_code() -> None:
    path = _path("CT_small.dcm")
    ds = _dataset(path)
    original = _read(path)
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
    plan = apply(_read(_path("rtplan.dcm")), BASIC).values
    assert plan["OperatorsName"] == [{"Alphabetic": {"FamilyName": DUMMY}}]  # PN array, D


def test_identifiers_are_keyed_hashes() -> None:
    path = _path("CT_small.dcm")
    ds = _dataset(path)
    assert ds.PatientID == ds.StudyID  # both "1CT1" in this file
    result = apply(_read(path), BASIC).values
    expected = hmac.new(KEY, b"PatientID\0" + ds.PatientID.encode(), hashlib.sha256)
    assert result["PatientID"] == expected.hexdigest()[:16]
    # The keyword is part of the hash: equal values do not show as equal pseudonyms.
    assert result["StudyID"] != result["PatientID"] and len(result["StudyID"]) == 16
    again = apply(_read(path), Policy(profile="basic", hash_key=KEY)).values
    assert again["PatientID"] == result["PatientID"]


# -- (b) UIDs ---------------------------------------------------------------------------


def test_uids_are_replaced_consistently_across_files() -> None:
    source, derived = _path("SC_rgb_small_odd.dcm"), _path("SC_rgb_small_odd_jpeg.dcm")
    uid = _dataset(source).SOPInstanceUID
    references = [
        e.value for e, _ in _elements(_dataset(derived)) if e.keyword == "ReferencedSOPInstanceUID"
    ]
    assert uid in references  # the JPEG file points at the other by its SOP Instance UID
    new: dict[bytes, str] = {}
    for key in (KEY, OTHER_KEY):
        policy = Policy(profile="basic", hash_key=key)
        first, second = apply(_read(source), policy).values, apply(_read(derived), policy).values
        new[key] = first["SOPInstanceUID"]
        assert first["MediaStorageSOPInstanceUID"] == new[key]
        assert new[key] in _find(second, "ReferencedSOPInstanceUID")
        assert uid not in _text(first) + _text(second)
    assert new[KEY] != new[OTHER_KEY]
    digest = hmac.new(KEY, b"UID\0" + uid.encode(), hashlib.sha256).digest()
    assert new[KEY] == "2.25." + str(int.from_bytes(digest[:16], "big"))


@pytest.mark.parametrize("path", ALL_FILES)
def test_replaced_uids_are_valid(path: str) -> None:
    result = apply(_read(path), BASIC).values
    keywords = {pydicom.datadict.keyword_for_tag(t) for t, a in STANDARD.items() if a == "U"}
    for keyword in keywords:
        for value in _find(result, keyword):
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
    path = _path(name)
    original = _read(path)
    assert _private_left(original.values)  # there is something to remove
    result = apply(original, BASIC)
    assert not _private_left(result.values)
    assert not [n for n in _type_names(result.types) if n.startswith("Tag_")]
    ds = _dataset(path)
    _, kept = _protected(ds)  # a private value may repeat a public one (the manufacturer)
    private = {s for e, _ in _elements(ds) if e.tag.is_private for s in _strings(e)}
    text = _text(result.values)
    assert not [p for p in private if _telling(p) and p not in kept and p in text]


def test_unknown_public_sequences_are_dropped_by_the_profile_only() -> None:
    header = _read(_path("UN_sequence.dcm"))
    assert "Tag_4453100C" in header.values  # (4453,100C): even group, in no dictionary
    assert "Tag_4453100C" not in apply(header, BASIC).values
    assert "Tag_4453100C" in apply(header, Policy(exclude=frozenset({"PatientName"}))).values


def test_private_and_unparsable_values_in_a_synthetic_file() -> None:
    original = _read(_synthetic())
    assert {"Tag": "Tag_00100030", "Data": ["19XX0101"]} in original.values["OtherElements"]
    result = apply(original, BASIC)
    text = _text(result.values)
    for leak in ("19XX0101", "secret private text", "ACME", "Doe", "Roe", "Poe", "Private"):
        assert leak not in text
    assert "PID-12345" not in text and "1.2.3.4.5.6.7.8.9.1001" not in text
    # Deeper than max_depth, a subtree is DICOM JSON text: the profile drops it whole.
    deep = apply(_read(_synthetic(), HeaderOptions(max_depth=1)), BASIC)
    deep_text = _text(deep.values)
    assert "Poe" not in deep_text and "1.2.3.4.5.6.7.8.9.1001" not in deep_text


# -- (d) exclude -----------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["none", "basic"])
def test_exclude_removes_columns_at_every_depth(profile: str) -> None:
    policy = Policy(exclude=frozenset({"PatientName", "(0010,0020)", "00100030"}), profile=profile)
    assert policy.exclude == {"PatientName", "PatientID", "PatientBirthDate"}
    for source in (_path("CT_small.dcm"), _synthetic()):
        original = _read(source)
        assert _find(original.values, "PatientID") and _find(original.values, "PatientName")
        result = apply(original, policy)
        for name in policy.exclude:
            assert not _find(result.values, name)
            assert name not in _type_names(result.types)
        tags = [e["Tag"] for e in _find(result.values, "OtherElements") for e in e or ()]
        assert "Tag_00100030" not in tags  # the unparsable birth date, kept as text
        text = _text(result.values)
        for leak in ("Doe", "Roe", "Poe", "Private^Person", "PID-12345", "PID-67890"):
            assert leak not in text


def test_exclude_reaches_into_subtrees_kept_as_json() -> None:
    original = _read(_synthetic(), HeaderOptions(max_depth=1))
    assert "Poe^Edgar" in _text(original.values)
    result = apply(original, Policy(exclude=frozenset({"PatientName"})))
    assert "Poe" not in _text(result.values) and "Private^Person" not in _text(result.values)
    assert "Tag_00091001" in [e["Tag"] for e in result.values["OtherElements"]]  # profile none


def test_exclude_forms_are_normalised() -> None:
    policy = Policy(exclude=frozenset({"00100010", "Tag_00091001", "(6002,4000)", "_BulkData"}))
    assert policy.exclude == {"PatientName", "Tag_00091001", "OverlayComments", "_BulkData"}
    assert Policy(exclude=frozenset({"(0010, 0010)"})) == Policy(exclude=frozenset({"PatientName"}))


# -- (e) bad policies ------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry", ["NotAKeyword", "patientname", "(0010,00ZZ)", "0010002", "001000200", "Tag_0010"]
)
def test_unknown_exclude_entries_raise(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        Policy(exclude=frozenset({entry}))


def test_bad_policies_raise() -> None:
    with pytest.raises(ValueError):
        Policy(profile="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="basic"):
        Policy(hash_key=KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        Policy(profile=Profile.BASIC, hash_key=b"short")
    with pytest.raises(ValueError, match="bytes"):
        Policy(profile=Profile.BASIC, hash_key="a text key, not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Policy(exclude="PatientName")  # type: ignore[arg-type]


# -- the policy object -----------------------------------------------------------------


def test_random_key_per_policy_and_no_key_in_repr() -> None:
    first, second = Policy(profile="basic"), Policy(profile="basic")
    assert first.hash_key is not None and len(first.hash_key) == 32
    assert first.hash_key != second.hash_key
    assert first.hash_uid("1.2.3") != second.hash_uid("1.2.3")
    assert KEY.decode() not in repr(BASIC) and "hash_key" not in repr(BASIC)


def test_policy_pickles_for_the_workers() -> None:
    policy = Policy(exclude=frozenset({"(0010,0020)"}), profile="basic")
    copied = pickle.loads(pickle.dumps(policy))
    assert copied == policy and copied.hash_key == policy.hash_key
    header = _read(_path("CT_small.dcm"))
    assert apply(header, copied).values == apply(header, policy).values


def test_input_header_is_not_changed() -> None:
    header = _read(_path("rtplan.dcm"))
    before = copy.deepcopy(header)
    apply(header, BASIC)
    apply(header, Policy(exclude=frozenset({"PatientName"})))
    assert header.values == before.values and header.types == before.types


def test_profile_none_without_exclude_changes_nothing() -> None:
    header = _read(_path("CT_small.dcm"))
    result = apply(header, Policy())
    assert result.values == header.values and result.types == header.types
    assert result.values is not header.values
