"""dcm_spark.dicom.reader: the element structure of a file, against pydicom's reading of it."""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from dcm_spark.dicom.reader import read_file
from tests import corpus

#: Files whose structure pydicom reads differently, each with the reason.
DIFFERENT = {
    # cut short inside the data set: pydicom stops at the cut without saying so, the reader
    # says the file is truncated (tested below)
    "MR_truncated.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",
}


def _pydicom_tags(path: Path) -> tuple[set[int], set[int]] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # a file pydicom cannot read is no oracle
            return None
    return set(ds.file_meta.keys()), set(ds.keys())


@pytest.mark.parametrize("path", corpus.pydicom_files(), ids=lambda p: p.name)
def test_every_top_level_element_is_read_as_pydicom_reads_it(path: Path) -> None:
    expected = _pydicom_tags(path)
    if expected is None or path.name in DIFFERENT:
        pytest.skip("pydicom reads this file differently or not at all (see DIFFERENT)")
    with open(path, "rb") as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = read_file(handle)
    assert (set(parsed.meta), set(parsed.body)) == expected


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_a_file_cut_short_is_marked_truncated(name: str) -> None:
    with open(corpus.testdata_file(name), "rb") as handle:
        assert read_file(handle).truncated


def test_pixel_data_is_located_not_read_and_what_follows_it_is_read() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Rows, ds.Columns, ds.BitsAllocated = 256, 256, 16
    ds.PixelData = b"\x01\x02" * 65536
    ds.DigitalSignaturesSequence = [Dataset()]
    ds.DigitalSignaturesSequence[0].MACIDNumber = 7
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, implicit_vr=False, little_endian=True)
    data = out.getvalue()
    parsed = read_file(io.BytesIO(data), defer_size=1024)
    pixels = parsed.body[0x7FE00010]
    assert pixels.value is None and pixels.length == 131072
    assert data[pixels.value_tell : pixels.value_tell + 4] == b"\x01\x02\x01\x02"
    (item,) = parsed.body[0xFFFAFFFA].value  # DigitalSignaturesSequence, after the pixels
    assert item[0x04000005].value == b"\x07\x00"  # MACIDNumber, US 7 little endian


def test_a_compressed_file_object_reads_as_the_file_it_holds(tmp_path: Path) -> None:
    """A gzip file object's fd is its compressed bytes: their size is not the stream's."""
    source = corpus.testdata_file("CT_small.dcm")
    packed = tmp_path / "CT_small.dcm.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    with gzip.open(packed, "rb") as handle:
        parsed = read_file(handle)  # type: ignore[arg-type]
    with open(source, "rb") as plain:
        expected = read_file(plain)
    assert set(parsed.body) == set(expected.body) and not parsed.truncated
