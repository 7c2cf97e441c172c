"""The fixture corpus itself: offline, complete, and what it claims to be."""

from __future__ import annotations

import pathlib
import socket
import warnings
from typing import Any

import pydicom
import pydicom.data.download
import pytest
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset

from tests import corpus

# SOP Class UIDs from DICOM PS3.4 Annex B / PS3.6 Annex A, written out on purpose
EXPECTED_SOP_CLASSES = {
    "sr": "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR Storage
    "sr_deep": "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR Storage
    "seg": "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "kos": "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection Document Storage
    "pmap": "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map Storage
    "sm": "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy Image Storage
}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def _touch(ds: Dataset) -> None:
    """Convert every element, decode every non-binary value, recurse into sequences."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _touch(item)
        elif elem.VR not in BINARY_VRS:
            str(elem.value)


def _pydicom_can_read(path: pathlib.Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
            _touch(ds.file_meta)
            _touch(ds)
        except Exception:
            return False
    # force=True "reads" any bytes: a file without the DICM preamble must hold a known tag
    return len(ds) > 0 and (ds.preamble is not None or any(map(dictionary_has_tag, ds.keys())))


def _content_depth(ds: Dataset) -> int:
    """Levels of ContentSequence below `ds` on its deepest path."""
    return max((1 + _content_depth(item) for item in ds.get("ContentSequence", [])), default=0)


def test_pydicom_corpus_is_offline_and_lists_exactly_the_unreadable_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(pydicom.data.download, "download_with_progress", refuse)
    monkeypatch.setenv("HOME", str(tmp_path))  # pydicom's download cache is ~/.pydicom
    corpus._pydicom_files.cache_clear()

    files = corpus.pydicom_files()

    assert attempts == []
    assert not (tmp_path / ".pydicom").exists()
    assert len(files) > 150
    assert files == sorted(set(files))
    assert all(f.is_file() for f in files)
    unreadable = {f.name for f in files if not _pydicom_can_read(f)}
    assert unreadable == set(corpus.DELIBERATELY_BROKEN)
    # keys are bare names: every file of a listed name must be unreadable, not just one
    assert all(not _pydicom_can_read(f) for f in files if f.name in corpus.DELIBERATELY_BROKEN)


def test_highdicom_objects_read_back_with_their_sop_classes(tmp_path: pathlib.Path) -> None:
    built = corpus.build_highdicom_objects(tmp_path / "a")
    assert set(built) == set(EXPECTED_SOP_CLASSES)
    for name, path in built.items():
        ds = pydicom.dcmread(path)  # no force: a proper Part 10 file
        _touch(ds)
        assert ds.SOPClassUID == EXPECTED_SOP_CLASSES[name], name
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    seg = pydicom.dcmread(built["seg"])
    assert seg.SegmentationType == "BINARY" and len(seg.SegmentSequence) == 2
    assert "FloatPixelData" in pydicom.dcmread(built["pmap"])
    assert _content_depth(pydicom.dcmread(built["sr"])) >= 5  # TID 1500 down to a laterality
    assert _content_depth(pydicom.dcmread(built["sr_deep"])) >= 16  # past a 15-level limit

    again = corpus.build_highdicom_objects(tmp_path / "b")
    assert all(built[n].read_bytes() == again[n].read_bytes() for n in built), "not deterministic"
    assert corpus.all_files(tmp_path / "c")[-len(built) :] == sorted((tmp_path / "c").iterdir())
