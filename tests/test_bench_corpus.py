"""bench.corpus: deterministic output, unique UIDs, layout matching the UIDs."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread

from bench.corpus import _save, _Template, default_templates, generate, plan

N = 50


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", N, seed=7)
    second = generate(tmp_path / "b", N, seed=7)
    assert len(first) == len(second) == N
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) == N
    assert a == b
    generate(tmp_path / "c", N, seed=8)
    assert set(_digests(tmp_path / "c")).isdisjoint(a)


def test_uids_unique_and_tree_matches_layout(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    files = generate(out, N, seed=3)
    templates = default_templates()
    sop_uids: set[str] = set()
    patients: dict[str, set[str]] = defaultdict(set)
    for path, slot in zip(files, plan(N, 3, len(templates)), strict=True):
        ds = dcmread(path, force=False)
        study, series, name = path.relative_to(out).parts
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (study, series)
        assert name == f"{ds.SOPInstanceUID}.dcm"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID not in sop_uids
        sop_uids.add(ds.SOPInstanceUID)
        patients[study].add(ds.PatientID)
        # Transfer syntax and pixel data come from the template unchanged.
        template = dcmread(templates[slot.template], force=False)
        assert ds.file_meta.TransferSyntaxUID == template.file_meta.TransferSyntaxUID
        assert ds.get("PixelData") == template.get("PixelData")
    assert len(sop_uids) == N
    assert all(len(ids) == 1 for ids in patients.values())
    assert len({next(iter(ids)) for ids in patients.values()}) == len(patients)
    series_uids = {p.parent.name for p in files}
    study_uids = {p.parent.parent.name for p in files}
    assert series_uids.isdisjoint(study_uids) and not (series_uids | study_uids) & sop_uids


def test_fast_encoding_matches_pydicom() -> None:
    templates = default_templates()
    assert 40 <= len(templates) <= 80
    first, later = next(plan(1, 0, 1)), list(plan(2000, 1, 1))[-1]
    fast = 0
    for path in templates:
        tpl = _Template(path, first)
        fast += tpl.parts is not None
        tpl.ds.StudyInstanceUID = later.study_uid
        tpl.ds.SOPInstanceUID = tpl.ds.file_meta.MediaStorageSOPInstanceUID = later.sop_uid
        tpl.ds.PatientID, tpl.ds.PatientName = later.patient_id, "Someone^Else"
        tpl.ds.SeriesNumber, tpl.ds.InstanceNumber = 12345, 678
        assert tpl.encode() == _save(tpl.ds), path.name
    assert fast >= len(templates) - 2
