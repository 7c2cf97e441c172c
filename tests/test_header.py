"""The header model against the reference schema and against pydicom read independently."""

from __future__ import annotations

import datetime
import io
import json
import struct
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pydicom
import pydicom.data
import pytest
from pydicom.datadict import get_entry
from pydicom.datadict import mask_match as repeater_mask
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from pydicom.valuerep import DT, TM, PersonName

from dcm_spark.dicom.header import (
    FileError,
    Header,
    ValueMemo,
    convert_file,
    to_record_batch,
)
from dcm_spark.dicom.reader import read_file
from dcm_spark.dicom.vr import BULK_DATA
from tests import corpus
from tests.helpers import header_of, make_file

REFERENCE = Path(__file__).parent.parent / "dcm_spark" / "idc" / "dicom_all.schema.json"
#: Fields whose mode differs from the reference for a reason outside this project.
MODE_EXCEPTIONS = {
    # (0062,0009): VM 1 when the reference was exported, 1-n in pydicom 3's dictionary
    # (the standard changed); the anchors' README names it as the one disagreement.
    "SegmentSequence.SegmentAlgorithmName",
}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"}
NAME_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = corpus.all_files(tmp_path_factory.mktemp("corpus"))
    return [f for f in files if f.name not in corpus.DELIBERATELY_BROKEN]


@pytest.fixture(scope="module")
def headers(corpus_files: list[Path]) -> dict[Path, Header | FileError]:
    """Every corpus file converted as a Spark task converts them: one `ValueMemo` for all,
    and a second time, so that every short value comes from the memo (all charsets,
    both byte orders)."""
    memo = ValueMemo()
    for f in corpus_files:
        convert_file(f, memo=memo)
    assert len(memo) > 1000
    return {f: convert_file(f, memo=memo) for f in corpus_files}


def read_independently(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


# -- conformance with the reference schema ---------------------------------------------

BQ_TYPES = {
    pa.string(): "STRING",
    pa.int64(): "INTEGER",
    pa.float64(): "FLOAT",
    pa.date32(): "DATE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP",
}


def bq_type(t: pa.DataType) -> tuple[str, str]:
    """(BigQuery type, mode) of an Arrow type, as the export would write it."""
    if pa.types.is_list(t):
        return bq_type(t.value_type)[0], "REPEATED"
    if pa.types.is_struct(t):
        return "RECORD", "NULLABLE"
    return BQ_TYPES.get(t, str(t)), "NULLABLE"


def reference_fields() -> dict[str, tuple[str, str]]:
    """Every field path of the reference schema -> (type, mode)."""
    schema = json.loads(REFERENCE.read_text())
    out: dict[str, tuple[str, str]] = {}

    def walk(prefix: str, fields: list[dict[str, Any]]) -> None:
        for f in fields:
            path = f"{prefix}{f['name']}"
            # TM is stored as text here: Spark 4.2 / Delta 4.4 cannot hold TIME (dcm_spark.dicom.vr)
            out[path] = ("STRING" if f["type"] == "TIME" else f["type"], f["mode"])
            walk(path + ".", f.get("fields", []))

    walk("", schema["schema"]["fields"])
    return out


def our_fields(types: dict[str, pa.DataType]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}

    def walk(path: str, t: pa.DataType) -> None:
        out[path] = bq_type(t)
        inner = t.value_type if pa.types.is_list(t) else t
        if pa.types.is_struct(inner):
            for f in inner:
                walk(f"{path}.{f.name}", f.type)

    for name, t in types.items():
        walk(name, t)
    return out


def test_types_and_modes_match_the_reference(headers: dict[Path, Header | FileError]) -> None:
    reference = reference_fields()
    exercised: set[str] = set()
    mismatches = []
    for path, header in headers.items():
        assert isinstance(header, Header), f"{path.name}: {header}"
        ds = read_independently(path)
        for field_path, ours in our_fields(header.types).items():
            expected = reference.get(field_path)
            if expected is None or ours[0] == "null":  # empty sequence: no item type yet
                continue
            exercised.add(field_path)
            if ours == expected or (field_path in MODE_EXCEPTIONS and ours[0] == expected[0]):
                continue
            # Mode follows the dictionary, except where a VM-1 element holds several
            # values in this very file (the table promotes that column).
            top = field_path.split(".")[0]
            value = ds[top].value if top in ds else None
            if ours == (expected[0], "REPEATED") and isinstance(value, MultiValue):
                continue
            mismatches.append((path.name, field_path, ours, expected))
    print(f"\nreference fields exercised by the corpus: {len(exercised)} of {len(reference)}")
    assert not mismatches
    assert len(exercised) > 300


# -- fidelity: every non-binary element is in the row ----------------------------------


def canonical(value: Any) -> Any:
    """pydicom's value of a text element, stripped as the standard allows."""
    if isinstance(value, MultiValue | list):
        return [canonical(v) for v in value]
    if isinstance(value, str):
        return value.strip(" \x00")
    if isinstance(value, bytes):
        return value
    return value


def expected_matches(elem: pydicom.DataElement, ours: Any) -> bool:
    """Does our column value equal what pydicom read (with the column's type applied)?"""
    value = elem.value
    if value is None or value == "" or (isinstance(value, MultiValue | list) and not value):
        return ours in (None, [])
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    got = ours if isinstance(ours, list) else [ours]
    if len(values) != len(got):
        return False
    return all(_one_matches(elem.VR, v, g) for v, g in zip(values, got, strict=True))


def _one_matches(vr: str, value: Any, got: Any) -> bool:
    if vr == "DA":
        return got.strftime("%Y%m%d") == str(value).replace(".", "")
    if vr == "TM":
        # ACR-NEMA wrote "HH:MM:SS", which pydicom's TM does not take: drop the colons
        return datetime.time.fromisoformat(got) == TM(str(value).replace(":", ""))
    if vr == "DT":
        expected = DT(str(value))
        if expected.tzinfo is None:
            expected = expected.replace(tzinfo=datetime.UTC)
        return got == expected
    if vr == "PN":
        name = value if isinstance(value, PersonName) else PersonName(value)
        groups = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), name.components, strict=False))
        for group, text in groups.items():
            parts = text.split("^") if text else []
            mine = (got or {}).get(group) or {}
            for part, expected_part in zip(NAME_PARTS, parts, strict=False):
                if (mine.get(part) or "") != expected_part:
                    return False
        return True
    if vr in ("DS", "IS"):
        original = getattr(value, "original_string", None)
        text = original if original is not None else str(value)
        return got == text.strip(" \x00")
    if isinstance(value, float):
        return got == value
    if isinstance(value, int):
        return got == int(value)
    return got == canonical(value)


def in_other_elements(elem: pydicom.DataElement, row: dict[str, Any]) -> bool:
    """Is the element in OtherElements, with its values as text (sequences: present)?"""
    tag = f"Tag_{elem.tag:08X}"
    found = [o["Data"] for o in row.get("OtherElements") or [] if o["Tag"] == tag]
    if not found:
        return False
    return elem.VR == "SQ" or found[0] == expected_texts(elem)


def expected_texts(elem: pydicom.DataElement) -> list[str]:
    """pydicom's values of an element as the text OtherElements should hold."""
    value = elem.value
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, MultiValue | list) else [value]
    texts = []
    for v in values:
        original = getattr(v, "original_string", None)
        if original is not None:
            texts.append(original.strip(" \x00"))
        elif isinstance(v, int):
            texts.append(str(int(v)))
        else:
            texts.append(str(v).strip(" \x00"))
    return texts


def missing_elements(ds: Dataset, row: dict[str, Any], depth: int, where: str) -> list[str]:
    missing = []
    for elem in ds:
        label = f"{where}/{elem.tag}"
        if elem.VR in BINARY_VRS:
            continue
        if elem.VR == "SQ":
            key = elem.keyword or f"Tag_{elem.tag:08X}"
            if depth + 1 > 15:
                if not in_other_elements(elem, row):
                    missing.append(label + " (deep subtree)")
                continue
            items = row.get(key)
            if not elem.value:
                continue
            if items is None or len(items) != len(elem.value):
                missing.append(label + " (items)")
                continue
            for i, (item, mine) in enumerate(zip(elem.value, items, strict=True)):
                missing += missing_elements(item, mine or {}, depth + 1, f"{label}[{i}]")
            continue
        keyword = elem.keyword or (get_entry(elem.tag)[4] if repeater_mask(elem.tag) else "")
        if elem.is_private or not keyword:
            if not in_other_elements(elem, row):
                missing.append(label + " (private)")
            continue
        ours = row.get(keyword)
        if isinstance(ours, list) and ours and isinstance(ours[0], dict) and "Id" in ours[0]:
            group = f"{elem.tag.group:04X}"
            ours = next((e["Value"] for e in ours if e["Id"] in (group, f"{elem.tag:08X}")), None)
        if expected_matches(elem, ours):
            continue
        if ours is None and in_other_elements(elem, row):
            continue  # unparsable for its column type: kept as text
        missing.append(f"{label} {elem.keyword}: {ours!r} != {elem.value!r}")
    return missing


def test_every_element_is_in_the_row(headers: dict[Path, Header | FileError]) -> None:
    problems: dict[str, list[str]] = {}
    for path, header in headers.items():
        assert isinstance(header, Header)
        ds = read_independently(path)
        missing = missing_elements(ds.file_meta, header.values, 0, "meta")
        missing += missing_elements(ds, header.values, 0, "")
        if missing:
            problems[path.name] = missing[:5]
    print("\n".join(f"{k}: {v}" for k, v in problems.items()))
    assert not problems
    assert len(headers) > 200


# -- specific behaviour ----------------------------------------------------------------


def test_unparsable_values_go_to_other_elements() -> None:
    raw = {0x00080020: ("DA", b"2024130 "), 0x00200011: ("IS", b"1A")}
    row = header_of(make_file(raw, AcquisitionDate="20240131"))
    assert row.values["StudyDate"] is None
    assert row.values["SeriesNumber"] is None
    assert row.values["AcquisitionDate"] == datetime.date(2024, 1, 31)
    other = {o["Tag"]: o["Data"] for o in row.values["OtherElements"]}
    assert other["Tag_00080020"] == ["2024130"]
    assert other["Tag_00200011"] == ["1A"]
    # the column keeps its type whatever the value
    assert row.types["StudyDate"] == pa.date32()


def test_mode_follows_the_dictionary_not_the_data() -> None:
    # ImageType is VM 2-n, WindowCenter 1-n: arrays even with one value
    row = header_of(make_file(ImageType="ORIGINAL", WindowCenter="40", Rows=512))
    assert row.values["ImageType"] == ["ORIGINAL"]
    assert row.values["WindowCenter"] == ["40"]
    assert row.values["Rows"] == 512
    assert row.types["Rows"] == pa.int64()


def test_deep_sequences_are_kept_as_json_text() -> None:
    root = Dataset()
    node = root
    for level in range(5):
        child = Dataset()
        child.CodeValue = f"L{level + 1}"
        node.ContentSequence = [child]
        node = child
    root.SOPInstanceUID = "1.2.3"
    out = io.BytesIO()
    root.save_as(out, implicit_vr=False, little_endian=True)
    row = header_of(out.getvalue(), max_depth=3)
    level3 = row.values["ContentSequence"][0]["ContentSequence"][0]["ContentSequence"][0]
    assert level3["CodeValue"] == "L3"
    (kept,) = level3["OtherElements"]
    assert kept["Tag"] == "Tag_0040A730"
    subtree = json.loads(kept["Data"][0])
    assert subtree["vr"] == "SQ"
    assert subtree["Value"][0]["00080100"]["Value"] == ["L4"]


def test_private_elements_and_sequences() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    block = ds.private_block(0x0029, "DCM-SPARK TEST", create=True)
    block.add_new(0x10, "LO", "vendor text")
    block.add_new(0x11, "US", [1, 2])
    item = Dataset()
    item.CodeValue = "X"
    block.add_new(0x12, "SQ", [item])
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True)
    row = header_of(out.getvalue())
    other = {o["Tag"]: o["Data"] for o in row.values["OtherElements"]}
    assert other["Tag_00290010"] == ["DCM-SPARK TEST"]
    assert other["Tag_00291010"] == ["vendor text"]
    assert other["Tag_00291011"] == ["1", "2"]
    assert row.values["Tag_00291012"] == [{"CodeValue": "X"}]


def test_a_file_that_is_not_dicom_is_an_error_record(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("PatientName: SMITH^JOHN")
    result = convert_file(path)
    assert isinstance(result, FileError)
    assert result.path == str(path)
    assert result.error_class == "InvalidDicomError"
    assert "SMITH" not in result.message


def test_truncated_file_is_an_error_record_without_patient_data(tmp_path: Path) -> None:
    data = make_file(PatientName="SMITH^JOHN", PatientID="SECRET-ID-42")
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) - 5])
    result = convert_file(path)
    if isinstance(result, FileError):
        assert "SECRET-ID-42" not in result.message and "SMITH" not in result.message
    else:  # pydicom reads up to the cut: what is before it is kept
        assert result.values["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.7"
        assert result.values["PatientName"]["Alphabetic"]["FamilyName"] == "SMITH"


def test_binary_number_of_wrong_length_is_kept_as_hex() -> None:
    data = bytearray(make_file(Rows=512))
    # Rows (0028,0010) US: rewrite its length from 2 to 3 bytes and add a byte
    at = data.index(b"\x28\x00\x10\x00US")
    data[at + 6 : at + 10] = struct.pack("<H", 3) + data[at + 8 : at + 10]
    data.insert(at + 10, 0xFF)
    row = header_of(bytes(data))
    assert row.values["Rows"] is None
    other = {o["Tag"]: o["Data"] for o in row.values["OtherElements"]}
    assert other["Tag_00280010"] == ["0002ff"]


def test_batch_has_the_union_schema_and_promotes_vm1_to_array() -> None:
    one = header_of(make_file(PatientAge="040Y"))
    two = header_of(make_file({0x00101010: ("AS", b"040Y\\041Y")}, Modality="CT"))
    batch = to_record_batch([one, two])
    assert batch.schema.field("PatientAge").type == pa.list_(pa.string())
    assert batch.column("PatientAge").to_pylist() == [["040Y"], ["040Y", "041Y"]]
    assert batch.column("Modality").to_pylist() == [None, "CT"]


def test_a_file_cut_inside_pixel_data_keeps_its_header(tmp_path: Path) -> None:
    source = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    data = source.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 1000])  # pixel data is last: cut inside it
    row = convert_file(cut)
    assert isinstance(row, Header), row
    full = read_independently(source)
    missing = [m for m in missing_elements(full, row.values, 0, "") if "7FE0" not in m]
    assert missing == []
    assert row.values["SOPInstanceUID"] == full.SOPInstanceUID
    assert row.values["_Truncated"] is True
    assert "_Truncated" not in header_of(source.read_bytes()).values


def test_extreme_valid_files_stay_within_memory(tmp_path: Path) -> None:
    from bench.run import big_header, big_pixels

    elements = big_header(tmp_path / "header.dcm", frames=1500)
    assert elements >= 13000
    size = big_pixels(tmp_path / "pixels.dcm", megabytes=100)
    assert size > 100 * 2**20
    for name, budget_mb in (("header.dcm", 64), ("pixels.dcm", 4)):
        tracemalloc.start()
        row = convert_file(tmp_path / name)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert isinstance(row, Header), row
        assert peak < budget_mb * 2**20, (name, peak)
    pixels = convert_file(tmp_path / "pixels.dcm")
    assert isinstance(pixels, Header)
    assert pixels.values["NumberOfFrames"] == "200"
    assert "DataSetTrailingPadding" not in pixels.values  # binary, after the pixels:
    tags = {b["Tag"] for b in pixels.values["_BulkData"]}
    assert {"Tag_7FE00010", "Tag_FFFCFFFC"} <= tags  # listed, as everything after them
    header = convert_file(tmp_path / "header.dcm")
    assert isinstance(header, Header)
    assert len(header.values["PerFrameFunctionalGroupsSequence"]) == 1500


def test_convert_files_gives_one_batch_and_the_errors(tmp_path: Path) -> None:
    from dcm_spark.dicom.header import convert_files

    ct = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not DICOM")
    batch, paths, errors = convert_files([ct, notes])
    assert paths == [str(ct)]
    assert batch.num_rows == 1
    assert batch.column("SOPInstanceUID").to_pylist() == [read_independently(ct).SOPInstanceUID]
    assert [(e.path, e.error_class) for e in errors] == [(str(notes), "InvalidDicomError")]


def test_a_shared_memo_keeps_the_pixel_representation_of_each_file() -> None:
    """Implicit VR: SmallestImagePixelValue is "US or SS"; the same two bytes FF FF are
    65535 unsigned (PixelRepresentation 0) and -1 signed (1), PS3.3 C.7.6.3.1."""
    from pydicom.uid import ImplicitVRLittleEndian

    def implicit_file(pixel_representation: int) -> bytes:
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["memo", str(pixel_representation)])
        ds.PixelRepresentation = pixel_representation
        ds[0x00280106] = RawDataElement(Tag(0x00280106), None, 2, b"\xff\xff", 0, True, True)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    memo = ValueMemo()
    for order in ((0, 1), (1, 0)):
        for pr in order:
            row = convert_file(io.BytesIO(implicit_file(pr)), memo=memo)
            assert isinstance(row, Header)
            assert row.values["SmallestImagePixelValue"] == (65535 if pr == 0 else -1)


# -- sequences seen before (`dcm_spark.dicom.reader.SeenSequences`) -----------------------

ANATOMIC_REGION = 0x00082218
SOME_PIXELS = b"DCMSPARK"  # an icon's 8 pixel bytes, found in the file by their value
MEANINGS = {"ISO_IR 100": "Ã©tÃ©", "ISO_IR 192": "été"}  # both written C3 A9 74 C3 A9


def _saved(ds: Dataset, *entropy: str) -> bytes:
    """``ds`` as an Explicit VR Little Endian file, its SOP Instance UID from ``entropy``."""
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=list(entropy))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _with_sequences(charset: str, comment: str, undefined: bool) -> bytes:
    """A file with a coded item whose CodeMeaning is the same bytes, C3 A9 74 C3 A9, in
    either ``charset`` (read differently by each), and an icon (pixel data: a bulk data
    entry, where it lies in this file)."""
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator = "T-D4000", "SRT"
    region.CodeMeaning = MEANINGS[charset]
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 2, 4, 8
    icon.add_new(0x7FE00010, "OB", SOME_PIXELS)
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.ImageComments = comment  # moves what follows: the icon's offset differs by file
    ds.AnatomicRegionSequence = [region]
    ds.IconImageSequence = [icon]
    for keyword in ("AnatomicRegionSequence", "IconImageSequence"):
        ds[keyword].is_undefined_length = undefined
    return _saved(ds, charset, comment, str(undefined))


@pytest.mark.parametrize("undefined", [False, True], ids=["defined length", "undefined length"])
def test_a_repeated_sequence_is_converted_for_each_file_as_pydicom_reads_it(
    undefined: bool,
) -> None:
    """One memo for files whose sequences hold the same bytes: each row still has its
    own file's text (the character set differs) and its own offsets (the icon lies
    elsewhere in each file)."""
    files = [
        _with_sequences(charset, comment, undefined)
        for charset in ("ISO_IR 100", "ISO_IR 192")
        for comment in ("A", "A comment long enough to move the sequences after it")
    ]
    memo = ValueMemo()
    for data in files * 2:  # the second time, every sequence has been seen
        row = convert_file(io.BytesIO(data), memo=memo)
        assert isinstance(row, Header)
        ds = pydicom.dcmread(io.BytesIO(data))
        region = row.values["AnatomicRegionSequence"]
        assert region[0]["CodeMeaning"] == ds.AnatomicRegionSequence[0].CodeMeaning
        (entry,) = row.values["IconImageSequence"][0][BULK_DATA]
        assert entry["Offset"] == data.index(SOME_PIXELS)
    encoded = b"\xc3\xa9t\xc3\xa9 "
    assert all(encoded in data for data in files)  # the same bytes, read as two texts


def test_a_sequence_converted_plainly_is_not_read_again() -> None:
    """Once a sequence's bytes converted without needing anything else of the file, a
    later copy is stepped over (the first copy's items are given); one holding a bulk
    data offset is read again in every file."""
    first = _with_sequences("ISO_IR 192", "A", undefined=True)
    second = _with_sequences("ISO_IR 192", "Another comment", undefined=True)
    memo = ValueMemo()

    def items(data: bytes, tag: int) -> object:
        return read_file(io.BytesIO(data), seen=memo.seen).body[tag].value

    assert items(first, ANATOMIC_REGION) is not items(second, ANATOMIC_REGION)  # not converted
    convert_file(io.BytesIO(first), memo=memo)
    assert items(first, ANATOMIC_REGION) is items(second, ANATOMIC_REGION)
    icon = pydicom.datadict.tag_for_keyword("IconImageSequence")
    assert items(first, icon) is not items(second, icon)


def _with_private(charset: str) -> bytes:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.add_new(0x00090010, "LO", "DCMSPARK TEST")  # the private creator
    ds.add_new(0x00091001, "LO", MEANINGS[charset])  # C3 A9 74 C3 A9 in either
    return _saved(ds, "private", charset)


def test_a_repeated_private_value_is_read_as_pydicom_reads_it_in_each_file() -> None:
    """A private element's text comes from the memo once its bytes were seen: the same
    bytes under another character set are another text."""
    files = [_with_private(charset) for charset in MEANINGS]
    assert all(b"\xc3\xa9t\xc3\xa9" in data for data in files)  # the same bytes
    memo = ValueMemo()
    for data in files * 2:
        row = convert_file(io.BytesIO(data), memo=memo)
        assert isinstance(row, Header)
        expected = pydicom.dcmread(io.BytesIO(data))[0x00091001].value
        assert {"Tag": "Tag_00091001", "Data": [expected]} in row.values["OtherElements"]
