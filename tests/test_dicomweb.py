"""DICOMweb as an input (`dcm_spark.sources.dicomweb`), against a real Orthanc with its
DICOMweb plugin (`tests.orthanc`): the test corpus uploaded, and each instance's row from
its WADO-RS metadata compared with its file's row. No Spark.

Expected values come from the files (`read_header`, pydicom) and, for what the server
chose to send, from the server's own JSON; never from the code under test.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pydicom
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dcm_spark import sources
from dcm_spark.dicom.header import FileError, Header, HeaderOptions, read_header
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.dicom.rows import to_record_batch
from dcm_spark.sources import ahead, dicomweb
from dcm_spark.sources.dicomweb import DicomWebError, MalformedMetadata
from tests import corpus, orthanc
from tests.helpers import free_port

WHY_MISSING = orthanc.missing()
pytestmark = pytest.mark.skipif(WHY_MISSING is not None, reason=WHY_MISSING or "")

HIGHDICOM = {"sr.dcm", "sr_deep.dcm", "seg.dcm", "kos.dcm", "pmap.dcm", "sm.dcm"}

#: Files Orthanc 1.10 refuses (besides those whose SOPInstanceUID it already holds):
#: HTTP 400, not DICOM it can parse; HTTP 404 "Inexistent tag", a UID or the transfer
#: syntax missing. A file refused anew fails the test: it would drop out of the comparison.
REFUSED = {
    **dict.fromkeys(corpus.DELIBERATELY_BROKEN, "400: not DICOM, or unreadable"),
    "MR_truncated.dcm": "400: truncated",
    "rtplan_truncated.dcm": "400: truncated",
    "SC_rgb_jpeg.dcm": "400: cannot parse",
    **dict.fromkeys(
        (
            "DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-empty.dcm", "DICOMDIR-implicit",
            "DICOMDIR-nooffset", "DICOMDIR-nopatient", "DICOMDIR-reordered",
        ),
        "404: a DICOMDIR has no instance UIDs",
    ),
    **dict.fromkeys(
        (
            "chrSQEncoding.dcm", "chrSQEncoding1.dcm", "JPEGLSNearLossless_08.dcm",
            "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm",
            "SC_rgb_jls_lossy_sample.dcm", "UN_sequence.dcm", "empty_charset_LEI.dcm",
            "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm", "no_meta_group_length.dcm",
            "priv_SQ.dcm",
        ),
        "404: Inexistent tag (a UID or the transfer syntax missing)",
    ),
}  # fmt: skip

#: Instances whose row cannot equal their file's: file name -> (the columns that differ,
#: why). Everything else in their rows must still match, and each listed column must
#: still differ (a stale entry fails the test). Only Orthanc's doing; none is ours.
DIFFERENT: dict[str, tuple[set[str], str]] = {
    "J2K_pixelrep_mismatch.dcm": (
        {"ImageType", "PatientOrientation", "ImageOrientationPatient", "ImagePositionPatient"}
        | {"PixelSpacing", "WindowCenter", "WindowWidth"},
        "ISO 2022 IR 13: Orthanc decodes a whole value before splitting it, so the value "
        "delimiter 0x5C becomes the yen sign: 'ORIGINAL¥PRIMARY¥...' is one value, and "
        "multi-valued DS are dropped as unparsable",
    ),
    "chrH32.dcm": (
        {"PatientName"},
        "ISO 2022 IR 13\\ISO 2022 IR 87: Orthanc decodes the ideographic and phonetic "
        "name groups without their escape sequences (';3ED' for '山田')",
    ),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": (
        {"PerformedProtocolCodeSequence"},
        "an empty sequence item: Orthanc creates items only for the elements it visits",
    ),
    "OT-PAL-8-face.dcm": (
        {f"{c}PaletteColorLookupTableDescriptor" for c in ("Red", "Green", "Blue")},
        "implicit VR 'US or SS' elements: DCMTK gives them no VR and Orthanc leaves them out",
    ),
    "gdcm-US-ALOKA-16.dcm": (
        {f"{c}PaletteColorLookupTableDescriptor" for c in ("Red", "Green", "Blue")},
        "implicit VR 'US or SS' elements: DCMTK gives them no VR and Orthanc leaves them out",
    ),
    "bad_sequence.dcm": (
        {"CTDIPhantomTypeCodeSequence", "CalciumScoringMassFactorDevice"},
        "a sequence with a wrong length: DCMTK and our reader recover differently",
    ),
    "chrJapMulti.dcm": (
        {"OtherElements", "_BulkData"},
        "implicit VR AGFA private elements (0019,10xx): pydicom's private dictionary gives "
        "their VR, DCMTK's does not, so Orthanc sends them as UN bulk data, without value",
    ),
    "chrKoreanMulti.dcm": (
        {"OtherElements", "_BulkData"},
        "implicit VR AGFA private elements (0019,10xx), as in chrJapMulti.dcm",
    ),
}

# What DICOMweb never gives, for any file (so not in DIFFERENT):
# - the file meta (group 0002) and group lengths (gggg,0000): not part of DICOM JSON;
# - the text of DS and IS: JSON numbers (PS3.18 F.2.3); Orthanc writes a number within
#   100 epsilon of an integer as that integer (its FormatDouble), so numbers are compared
#   to 1e-13: "5.000000" and 5, 1.4e-45 (a subnormal float) and 0 are the same;
# - _BulkData's offsets and lengths (compared as (Tag, VR) sets); Orthanc leaves
#   encapsulated (compressed) PixelData out of the metadata.
META_KEYWORDS = {entry[4] for tag, entry in DicomDictionary.items() if tag >> 16 == 2}
NUMERIC_TEXT = {entry[4] for entry in DicomDictionary.values() if entry[0] in ("DS", "IS")}
NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
TOLERANCE = Decimal("1e-13")
PIXEL_DATA = "Tag_7FE00010"


def _uids_and_date(path: Path) -> tuple[tuple[str, str, str], str]:
    """(Study, Series, SOP Instance UID) and StudyDate of a file, read with pydicom."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        study, series, sop = (
            str(ds.get(k, "")).strip("\0 ")
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        )
        return (study, series, sop), str(ds.get("StudyDate", ""))


@dataclass
class Loaded:
    """The corpus in a running Orthanc."""

    server: orthanc.Orthanc
    uids: dict[Path, tuple[str, str, str]]  # stored file -> (study, series, SOP instance)
    dates: dict[Path, str]  # stored file -> StudyDate

    @property
    def base(self) -> str:
        return self.server.dicomweb

    def url(self, path: Path, base: str | None = None) -> str:
        study, series, sop = self.uids[path]
        return f"{base or self.base}/studies/{study}/series/{series}/instances/{sop}"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    work = tmp_path_factory.mktemp("dicomweb")
    files = corpus.all_files(work / "built")
    with orthanc.orthanc_server(work / "orthanc") as server:
        for path in files:
            server.upload(path)
        found = {path: _uids_and_date(path) for path in server.stored}
        yield Loaded(
            server, {p: f[0] for p, f in found.items()}, {p: f[1] for p, f in found.items()}
        )


# -- the corpus in Orthanc -----------------------------------------------------------------


def test_orthanc_takes_most_of_the_corpus(loaded: Loaded) -> None:
    stored = {p.name for p in loaded.server.stored}
    assert len(stored) > 100
    assert stored >= HIGHDICOM  # SR (deep too), SEG, KOS, parametric map, slide
    stored_sops = {uids[2] for uids in loaded.uids.values()}
    refused = {}
    for path, why in loaded.server.refused.items():
        if why.startswith("AlreadyStored"):  # a variant of a file with its SOPInstanceUID
            assert _uids_and_date(path)[0][2] in stored_sops, path
        else:
            refused[path.name] = why
    assert set(refused) <= set(REFUSED), {n: refused[n] for n in set(refused) - set(REFUSED)}


# -- listing (QIDO-RS) -----------------------------------------------------------------------


def test_list_instances_finds_every_uploaded_instance(loaded: Loaded) -> None:
    listed = dicomweb.list_instances(loaded.base)
    paths = [p for p, _, _ in listed]
    assert paths == sorted(set(paths))
    assert {(size, mtime) for _, size, mtime in listed} == {(0, 0)}
    assert set(paths) == {loaded.url(p) for p in loaded.server.stored}
    assert {p.rsplit("/", 1)[1] for p in paths} == {u[2] for u in loaded.uids.values()}


def test_a_study_date_query_narrows_the_listing(loaded: Loaded) -> None:
    first, last = "20040101", "20041231"  # CT_small's study (and the objects built on it)
    by_study: dict[str, set[bool]] = {}
    for path, (study, _, _) in loaded.uids.items():
        by_study.setdefault(study, set()).add(first <= loaded.dates[path] <= last)
    assert all(len(inside) == 1 for inside in by_study.values())  # no study on both sides
    wanted = {loaded.url(p) for p, u in loaded.uids.items() if by_study[u[0]] == {True}}
    assert 6 <= len(wanted) < len(loaded.uids)

    listed = dicomweb.list_instances(f"{loaded.base}?StudyDate={first}-{last}")

    assert {p for p, _, _ in listed} == wanted


def test_an_unreachable_server_is_a_clear_error() -> None:
    base = f"dicomweb+http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(DicomWebError) as caught:
        dicomweb.list_instances(f"{base}?StudyDate=20200101-20201231", timeout=5)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{base[len('dicomweb+') :]}/studies?StudyDate=20200101-20201231" in message
    assert isinstance(caught.value, OSError)

    row = dicomweb.read_instance(f"{base}/studies/1/series/2/instances/3", HeaderOptions())
    assert isinstance(row, FileError) and "\n" not in row.message


# -- rows (WADO-RS metadata) -----------------------------------------------------------------


def _norm(value: Any, numeric: bool = False) -> Any:
    """A row's value for comparing: numbers in DS/IS text (and private values kept as
    text) as Decimal, nulls dropped from structs, group lengths dropped."""
    if isinstance(value, dict):
        if str(value.get("Tag", "")).endswith("0000"):
            return None  # a group length in OtherElements
        out = {}
        for key, item in value.items():
            inner = numeric if key == "Value" else key in NUMERIC_TEXT or key == "Data"
            if item is not None and key != "_BulkData":
                out[key] = _norm(item, inner)
        return out
    if isinstance(value, list):
        items = [_norm(v, numeric) for v in value]
        return [v for v in items if v is not None or not isinstance(value[0], dict)]
    if numeric and isinstance(value, str) and NUMBER.fullmatch(value):
        return Decimal(value.strip())
    if isinstance(value, float):
        return Decimal(value)
    return value


def _norm_type(column_type: pa.DataType) -> pa.DataType:
    """A column's type with struct fields in name order and without ``_BulkData``."""
    if pa.types.is_struct(column_type):
        fields = [f.with_type(_norm_type(f.type)) for f in column_type if f.name != "_BulkData"]
        return pa.struct(sorted(fields, key=lambda f: f.name))
    if pa.types.is_list(column_type):
        return pa.list_(_norm_type(column_type.value_type))
    return column_type


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return abs(a - b) <= TOLERANCE
    return bool(a == b)


def _columns(header: Header) -> dict[str, tuple[pa.DataType, Any]]:
    batch = to_record_batch([header])
    out = {}
    for name in batch.schema.names:
        if name in META_KEYWORDS or name == "_BulkData":
            continue
        value = _norm(batch.column(name)[0].as_py(), name in NUMERIC_TEXT)
        if name == "OtherElements" and not value:
            continue  # only group lengths
        out[name] = (_norm_type(batch.schema.field(name).type), value)
    return out


def _compare(want: Header, got: Header) -> set[str]:
    """The columns whose type or value differ (file meta and _BulkData left out)."""
    a, b = _columns(want), _columns(got)
    differ = {n for n in a.keys() ^ b.keys()}
    return differ | {
        n for n in a.keys() & b.keys() if a[n][0] != b[n][0] or not _same(a[n][1], b[n][1])
    }


def _bulk(values: Any, found: set[tuple[str, str, str | None]]) -> set[tuple[str, str, str | None]]:
    """(Tag, VR, URI) of every _BulkData entry, at any depth; file meta left out."""
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "_BulkData":
                found |= {
                    (e["Tag"], e["VR"], e.get("URI"))
                    for e in value
                    if not e["Tag"].startswith("Tag_0002")
                }
            else:
                _bulk(value, found)
    elif isinstance(values, list):
        for value in values:
            _bulk(value, found)
    return found


def _json_bulk(ds: dict[str, Any], found: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """(Tag, VR, BulkDataURI) of every element the server sends as bulk data."""
    for key, elem in ds.items():
        if "BulkDataURI" in elem:
            found.add((f"Tag_{key}", elem["vr"], elem["BulkDataURI"]))
        for item in elem.get("Value", []) if elem["vr"] == "SQ" else []:
            _json_bulk(item or {}, found)
    return found


def _differences(path: Path, loaded: Loaded) -> set[str]:
    """The columns of the file's row and the instance's that differ (_BulkData: its
    (Tag, VR) set, where the server sends bulk data)."""
    url = loaded.url(path)
    got = dicomweb.read_instance(url, HeaderOptions())
    assert isinstance(got, Header), got
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = read_header(path)
    differ = _compare(want, got)

    with urllib.request.urlopen(url[len("dicomweb+") :] + "/metadata") as response:
        sent = _json_bulk(json.load(response)[0], set())
    in_file = {(tag, vr) for tag, vr, _ in _bulk(want.values, set())}
    in_row = _bulk(got.values, set())
    with_uri = {entry for entry in in_row if entry[2] is not None}
    assert with_uri == sent, path.name  # each BulkDataURI, with its element's VR
    left_out = in_file - {(tag, vr) for tag, vr, _ in in_row}
    if {(tag, vr) for tag, vr, _ in in_row} - in_file or {t for t, _ in left_out} - {PIXEL_DATA}:
        differ.add("_BulkData")
    return differ


def test_each_instance_row_is_its_file_row(loaded: Loaded) -> None:
    # Two files with one Study, Series and SOP Instance UID but different PatientIDs
    # (badVR.dcm, rtdose_rle.dcm): Orthanc keeps both, and the instance URL of both
    # answers 404 (it is ambiguous). Their URL is listed once, and they are not compared.
    count: dict[tuple[str, str, str], int] = {}
    for uids in loaded.uids.values():
        count[uids] = count.get(uids, 0) + 1
    ambiguous = {p.name for p, uids in loaded.uids.items() if count[uids] > 1}
    assert ambiguous == {"badVR.dcm", "rtdose_rle.dcm"}

    unexpected, stale = {}, {}
    compared = 0
    for path in sorted(loaded.server.stored):
        if path.name in ambiguous:
            continue
        differ = _differences(path, loaded)
        compared += 1
        allowed = DIFFERENT.get(path.name, (set(), ""))[0]
        if differ - allowed:
            unexpected[path.name] = sorted(differ - allowed)
        if allowed - differ:
            stale[path.name] = sorted(allowed - differ)
    assert compared > 100
    assert not unexpected, f"rows that differ from their file's: {unexpected}"
    assert not stale, f"DIFFERENT entries that no longer differ: {stale}"


def test_a_json_data_set_gives_its_file_row(tmp_path: Path) -> None:
    """No server: pydicom writes a data set as a file and as DICOM JSON (PS3.18 F.2);
    the JSON's row is the file's. Latin-1 text, a code-extension character set, an item
    with a character set of its own, bulk data in an item, an inline private UN value."""
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    ds.PatientID, ds.StudyInstanceUID = "ID1", "1.2.3"
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    ds.SliceThickness, ds.InstanceNumber = "2.50", "0007"
    ds.add_new(0x00090010, "LO", "GEMS_IDEN_01")
    ds.add_new(0x00091002, "UN", b"CT01")  # SH in pydicom's private dictionary
    icon = Dataset()
    icon.SpecificCharacterSet = "ISO_IR 100"
    icon.ImageComments = "Grüße"
    icon.Rows, icon.Columns = 2, 2
    icon.add_new(0x7FE00010, "OB", b"\0\1\2\3")
    ds.IconImageSequence = [icon]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    # pydicom encodes on writing; the JSON holds the decoded text, as a server's does
    ds = pydicom.dcmread(path)

    def bulk(elem: Any) -> str:
        return f"http://server/bulk/{elem.tag:08X}"

    as_json = ds.to_json_dict(bulk_data_threshold=2, bulk_data_element_handler=bulk)
    as_json["00091002"] = {"vr": "UN", "InlineBinary": "Q1QwMQ=="}  # b"CT01"
    as_json["00080005"]["Value"] = ["ISO 2022 IR 87"]  # the empty value 1 dropped, as Orthanc does

    got = dicomweb.to_header(as_json)

    want = read_header(path)
    assert not _compare(want, got)
    assert {"Tag": "Tag_00091002", "Data": ["CT01"]} in got.values["OtherElements"]
    assert got.values["SpecificCharacterSet"] == ["", "ISO 2022 IR 87"]
    assert got.values["IconImageSequence"][0]["SpecificCharacterSet"] == ["ISO_IR 100"]
    entry = {"Tag": "Tag_7FE00010", "VR": "OB", "Offset": None, "Length": None}
    assert got.values["IconImageSequence"][0]["_BulkData"] == [
        {**entry, "URI": "http://server/bulk/7FE00010"}
    ]
    assert got.types["IconImageSequence"].value_type.field("_BulkData").type == (
        dicomweb.BULK_URI_TYPE
    )
    row = to_record_batch([got])  # the types hold the values
    assert row.column("IconImageSequence")[0].as_py()[0]["_BulkData"][0]["URI"]


def test_items_keep_their_own_character_set_when_their_bytes_repeat() -> None:
    """The stream holds every item as UTF-8, so these items are the same bytes and are
    converted once (one memo, as in a task); each row still says what its JSON says."""

    def instance(charset: str) -> dict[str, Any]:
        item = {
            "00080005": {"vr": "CS", "Value": [charset]},
            "00080100": {"vr": "SH", "Value": ["T-D4000"]},
        }
        return {
            "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
            "00082218": {"vr": "SQ", "Value": [item]},
        }

    memo = ValueMemo()
    charsets = ["ISO_IR 100", "ISO_IR 192", "ISO_IR 100", "ISO_IR 192"]
    rows = [dicomweb.to_header(instance(c), memo=memo) for c in charsets]
    got = [r.values["AnatomicRegionSequence"][0]["SpecificCharacterSet"] for r in rows]
    assert got == [[c] for c in charsets]


def test_malformed_json_is_refused_without_its_values() -> None:
    with pytest.raises(MalformedMetadata) as caught:
        dicomweb.to_header({"00100010": {"vr": "PN", "Value": "SECRET^NAME"}})
    assert "SECRET" not in str(caught.value) and "(0010,0010)" in str(caught.value)


# -- a server that fails -------------------------------------------------------------------


class _Faulty(http.server.ThreadingHTTPServer):
    daemon_threads = True
    upstream = ""
    faults: dict[str, str]  # request path -> "500", "garbage", "slow" or "one less"
    page = 7  # studies per page the proxy gives, saying there are more (Warning: 299)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the slow answer finds its client gone


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards to Orthanc; fails where told to; pages the study query."""

    protocol_version = "HTTP/1.1"
    server: _Faulty

    def do_GET(self) -> None:
        fault = self.server.faults.get(self.path)
        if fault == "500":
            return self._send(500, b'{"error": "injected"}', {})
        if fault == "garbage":
            return self._send(200, b"[{not json", {})
        if fault == "slow":
            time.sleep(3)
        path, extra = self.path, {}
        paged = urlsplit(path).path == "/dicom-web/studies" and "limit=" not in path
        if paged:
            path += ("&" if "?" in path else "?") + f"limit={self.server.page}"
        request = urllib.request.Request(
            self.server.upstream + path, headers={"Accept": self.headers["Accept"]}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
        if paged and len(json.loads(body)) == self.server.page:
            extra["Warning"] = '299 proxy: "There are additional results that can be requested"'
        if fault == "one less":  # the answer without its first data set
            body = json.dumps(json.loads(body)[1:]).encode()
        self._send(status, body, extra)

    def _send(self, status: int, body: bytes, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _proxy(upstream: str, faults: dict[str, str]) -> Iterator[str]:
    server = _Faulty(("127.0.0.1", 0), _Proxy)
    server.upstream, server.faults = upstream, faults
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_failing_instance_is_a_file_error_and_the_others_convert(loaded: Loaded) -> None:
    files = sorted(p for p in loaded.server.stored if p.name not in ("badVR.dcm", "rtdose_rle.dcm"))
    chosen = files[:10]
    failing = {chosen[1]: "500", chosen[4]: "garbage", chosen[7]: "slow"}
    faults = {urlsplit(loaded.url(p)).path + "/metadata": f for p, f in failing.items()}
    with _proxy(loaded.server.url, faults) as address:
        base = f"dicomweb+{address}/dicom-web"

        # the studies come in pages of 7, each but the last saying there are more
        paged = dicomweb.list_instances(base)
        assert [p.replace(base, loaded.base) for p, _, _ in paged] == [
            p for p, _, _ in dicomweb.list_instances(loaded.base)
        ]

        results = {
            p: dicomweb.read_instance(loaded.url(p, base), HeaderOptions(), timeout=1)
            for p in chosen
        }
    for path, result in results.items():
        if path not in failing:
            assert isinstance(result, Header), result
            assert result.values["SOPInstanceUID"] == loaded.uids[path][2]
            continue
        assert isinstance(result, FileError), path
        assert result.path == loaded.url(path, base)
        assert "\n" not in result.message and result.message
        if failing[path] == "500":
            assert result.error_class == "DicomWebError"
            assert "HTTP 500" in result.message and "/metadata" in result.message
        elif failing[path] == "garbage":
            assert result.error_class == "MalformedMetadata"
        else:
            assert result.error_class == "TimeoutError"


# -- read ahead, by series -------------------------------------------------------------------


def _read_ahead(uris: list[str]) -> dict[str, Header | FileError]:
    """The rows of ``uris`` as a task reads them (`dcm_spark.sources.ahead`)."""
    memo = ValueMemo()
    return {
        path: result
        for uri, opened in ahead.opened_ahead(uris, None)
        for path, result in sources.read(uri, HeaderOptions(), memo, None, opened)
    }


def _row(result: Header | FileError) -> Any:
    if isinstance(result, FileError):
        return result.error_class
    batch = to_record_batch([result])
    return batch.schema, batch.to_pylist()


def test_instances_read_ahead_by_series_give_the_rows_read_one_by_one(loaded: Loaded) -> None:
    uris = [p for p, _, _ in dicomweb.list_instances(loaded.base)]
    whole = ahead._whole_series(uris)
    assert len(whole) >= 3  # series fetched in one request each
    assert dicomweb.series_of(uris[0]) not in whole  # it may go on in the task before

    got = _read_ahead(uris)

    assert list(got) == uris
    for uri in uris:
        assert _row(got[uri]) == _row(dicomweb.read_instance(uri, HeaderOptions())), uri


def test_a_series_that_fails_is_read_instance_by_instance(loaded: Loaded) -> None:
    uris = [p for p, _, _ in dicomweb.list_instances(loaded.base)]
    by_series: dict[str, list[str]] = {}
    for uri in uris:
        by_series.setdefault(dicomweb.series_of(uri), []).append(uri)
    failing, garbled, short = sorted(ahead._whole_series(uris), key=lambda s: by_series[s])[:3]
    lost = by_series[failing][1]  # its series fails, and so does its own request

    def path(url: str) -> str:
        return urlsplit(url[len("dicomweb+") :]).path + "/metadata"

    faults = {path(failing): "500", path(lost): "500"}
    faults |= {path(garbled): "garbage", path(short): "one less"}
    with _proxy(loaded.server.url, faults) as address:
        base = f"dicomweb+{address}/dicom-web"
        got = _read_ahead([uri.replace(loaded.base, base) for uri in uris])

    assert len(got) == len(uris)
    for uri in uris:
        result = got[uri.replace(loaded.base, base)]
        want = dicomweb.read_instance(uri, HeaderOptions())
        if uri == lost:
            assert isinstance(result, FileError) and result.error_class == "DicomWebError"
            assert "HTTP 500" in result.message and "/instances/" in result.message
        elif isinstance(want, FileError):  # Orthanc's own error, which the proxy cuts short
            assert isinstance(result, FileError), uri
        else:
            assert _row(result) == _row(want), uri


# -- the ingest job from a DICOMweb server ---------------------------------------------------


def test_an_ingest_from_orthanc_keeps_one_row_per_instance_and_finds_nothing_new_again(
    spark: Any, tmp_path: Path, loaded: Loaded
) -> None:
    from tests.helpers import ingest, rows

    query = "?StudyDate=20040101-20041231"  # CT_small's study and the objects built on it
    wanted = set(dicomweb.list_instances(loaded.base + query))
    table = tmp_path / "table"

    summary = ingest(spark, [loaded.base + query], table, where="spark")

    got = {r["_path"]: r for r in rows(spark, table, "_path, SOPInstanceUID, Modality, _size")}
    assert (summary.listed, summary.parsed, summary.failed) == (len(wanted), len(wanted), 0)
    assert set(got) == {path for path, _, _ in wanted}
    for path, (_, _, sop) in loaded.uids.items():
        url = loaded.url(path)
        if url in got:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            assert (got[url]["SOPInstanceUID"], got[url]["Modality"]) == (sop, ds.Modality)
    again = ingest(spark, [loaded.base + query], table, where="spark")
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)
