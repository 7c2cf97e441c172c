"""The real-DICOM fixture corpus for the tests, built offline.

Two sources, nothing downloaded:

* Every file pydicom ships for its own tests: ``pydicom.data.get_testdata_files()`` and
  ``get_charset_files()``, which cover pydicom's ``data/test_files`` and ``data/charset_files``
  and the installed ``pydicom-data`` package (an entry-point data source, hash-checked).
  pydicom's lookup also tries to download the names in its ``urls.json`` into
  ``~/.pydicom/data`` (``"**/*"`` happens to match none of them in pydicom 3.0, ``"*.dcm"``
  matches all 79); `_offline` switches that step off. The corpus holds
  text, JSON, gzip and ICC files too; `DELIBERATELY_BROKEN` names those and the DICOM
  files pydicom cannot read.
* Objects built with highdicom from pydicom's ``CT_small.dcm`` and ``MR_small.dcm``
  (`build_highdicom_objects`): a TID 1500 Comprehensive 3D SR, a hand-built SR whose
  ContentSequence nests 20 levels deep, a binary Segmentation, a Key Object Selection
  document, a float ParametricMap, and a VL Whole Slide Microscopy header (CT_small's
  pixels, highdicom's specimen description: staining, fixative, embedding medium). UIDs
  come from a fixed entropy source and dates are fixed, so two builds are byte-identical.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import pydicom
import pydicom.data
from pydicom.data import data_manager
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, generate_uid

DELIBERATELY_BROKEN: dict[str, str] = {
    # not DICOM at all: dcmread(force=True) "reads" one garbage element of VR UN
    "FileInfo.txt": "text: table of the charset test files and their patient names",
    "README.txt": "text: the READMEs of test_files/ and test_files/dicomdirtests/",
    "README": "Python script (no .py suffix) that made the dicomdirtests/TINY_ALPHA file-set",
    "crayons.icc": "ICC colour profile, not DICOM",
    "rtplan.dump": "text: annotated hex dump of rtplan.dcm",
    "rtstruct.dump": "text: annotated hex dump of rtstruct.dcm",
    "test1.json": "DICOM JSON model, not a Part 10 file",
    "test_PN.json": "DICOM JSON model, not a Part 10 file",
    "zipMR.gz": "gzip-compressed DICOM, never decompressed by pydicom",
    # DICOM that pydicom cannot read
    "no_meta.dcm": "CT_small without file meta but with a stray leading 0x20 byte: "
    "read as one element (0820,0500) UN that swallows the whole file",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated encapsulated Pixel Data: "
    "pydicom hits EOF and returns an empty dataset (only file_meta survives)",
}

_ENTROPY = "dcm-spark tests corpus"
_HIGHDICOM_UID_ROOT = "1.2.826.0.1.3680043.10.511.3."  # highdicom.UID() without a value
_DATE, _TIME = "20240102", "030405"
_CLOCK = {  # attributes highdicom sets from datetime.now()
    "InstanceCreationDate": _DATE,
    "InstanceCreationTime": _TIME,
    "ContentDate": _DATE,
    "ContentTime": _TIME,
    "ContributionDateTime": _DATE + _TIME,
}
DEEP_SR_LEVELS = 20


def uid(*parts: str) -> str:
    """A UID that depends only on `parts`: the same in every run."""
    return generate_uid(entropy_srcs=[_ENTROPY, *parts])


@contextmanager
def _offline() -> Iterator[None]:
    """Stop pydicom's ``get_files`` from downloading the files listed in its urls.json."""
    with (
        mock.patch.object(data_manager, "online_test_file_dummy_paths", return_value={}),
        mock.patch.object(data_manager, "data_path_with_download", side_effect=RuntimeError),
    ):
        yield


@functools.cache
def _pydicom_files() -> tuple[pathlib.Path, ...]:
    with _offline():
        found = pydicom.data.get_testdata_files() + pydicom.data.get_charset_files()
    return tuple(sorted({pathlib.Path(f).resolve() for f in found if pathlib.Path(f).is_file()}))


def pydicom_files() -> list[pathlib.Path]:
    """Every regular file pydicom and pydicom-data ship for tests: sorted, unique, offline."""
    return list(_pydicom_files())


def testdata_file(name: str) -> pathlib.Path:
    """One of pydicom's test files by name, never downloaded."""
    with _offline():
        found = pydicom.data.get_testdata_file(name, download=False)
    if not isinstance(found, str):
        raise FileNotFoundError(name)
    return pathlib.Path(found)


def _pin(ds: Dataset, name: str) -> Dataset:
    """Make highdicom's output reproducible: its clock readings and random UIDs replaced."""
    seen: dict[str, str] = {}

    def walk(item: Dataset) -> None:
        for elem in item:
            if elem.VR == "SQ":
                for child in elem.value:
                    walk(child)
            elif elem.keyword in _CLOCK:
                elem.value = _CLOCK[elem.keyword]
            elif elem.VR == "UI" and str(elem.value).startswith(_HIGHDICOM_UID_ROOT):
                elem.value = seen.setdefault(elem.value, uid(name, "random", str(len(seen))))

    walk(ds)
    return ds


def _deep_sr(ct: Dataset, levels: int) -> Dataset:
    """A Comprehensive SR whose ContentSequence nests `levels` deep, built by hand."""

    def concept(value: str, meaning: str) -> Dataset:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "99DCMSPARK", meaning
        return code

    def container(depth: int) -> Dataset:
        item = Dataset()
        item.RelationshipType = "CONTAINS"  # this item sits in ContentSequence level `depth`
        if depth == levels:
            item.ValueType = "TEXT"
            item.ConceptNameCodeSequence = [concept("LEAF", "Leaf")]
            item.TextValue = f"leaf at ContentSequence level {levels}"
        else:
            item.ValueType = "CONTAINER"
            item.ConceptNameCodeSequence = [concept(f"L{depth}", f"Level {depth}")]
            item.ContinuityOfContent = "SEPARATE"
            item.ContentSequence = [container(depth + 1)]
        return item

    ds = Dataset()
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID"):
        setattr(ds, kw, ct.get(kw, ""))
    for kw in ("StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, kw, ct.get(kw, ""))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = ComprehensiveSRStorage, uid("sr_deep", "sop")
    ds.Modality, ds.Manufacturer = "SR", "dcm-spark tests"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = uid("sr_deep", "series"), 6, 1
    ds.ContentDate, ds.ContentTime = _DATE, _TIME
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [concept("ROOT", "Deeply nested report")]
    ds.CompletionFlag, ds.VerificationFlag = "PARTIAL", "UNVERIFIED"
    ds.ContentSequence = [container(1)]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _slide(ct: Dataset) -> Dataset:
    """A VL Whole Slide Microscopy image header on CT_small's pixels: a specimen prepared
    (formalin, paraffin, H&E) from colon, one brightfield optical path at 20x."""
    import highdicom as hd

    ds = Dataset()
    ds.update(ct)
    ds.file_meta = FileMetaDataset(ct.file_meta)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image
    ds.SOPInstanceUID = uid("sm", "sop")
    ds.SeriesInstanceUID = uid("sm", "series")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "SM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.ContainerIdentifier = "SLIDE-1"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = 2048, 1024
    steps = [
        hd.SpecimenPreparationStep(
            "S1",
            processing_procedure=hd.SpecimenProcessing(codes.SCT.SpecimenProcessing),
            fixative=codes.SCT.Formalin,
            embedding_medium=codes.SCT.ParaffinWax,
        ),
        hd.SpecimenPreparationStep(
            "S1",
            processing_procedure=hd.SpecimenStaining(
                [codes.SCT.HematoxylinStain, codes.SCT.WaterSolubleEosinStain]
            ),
        ),
    ]
    ds.SpecimenDescriptionSequence = [
        hd.SpecimenDescription(
            "S1",
            uid("sm", "specimen"),
            specimen_preparation_steps=steps,
            primary_anatomic_structures=[codes.SCT.Colon],
        )
    ]
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.ObjectiveLensPower = "20"  # as scanners write it; "20.0" is no INT64 to BigQuery
    path.IlluminationTypeCodeSequence = [
        hd.sr.CodedConcept.from_code(codes.DCM.BrightfieldIllumination)
    ]
    ds.OpticalPathSequence = [path]
    measures = Dataset()
    measures.PixelSpacing = [0.00025, 0.00025]
    measures.SliceThickness = 0.004
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    return ds


def build_highdicom_objects(out_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Build sr, sr_deep, seg, kos, pmap and sm into `out_dir`; return name -> path."""
    import highdicom as hd

    ct = pydicom.dcmread(testdata_file("CT_small.dcm"))
    mr = pydicom.dcmread(testdata_file("MR_small.dcm"))
    device: dict[str, Any] = {
        "manufacturer": "dcm-spark tests",
        "manufacturer_model_name": "corpus",
        "software_versions": "1",
        "device_serial_number": "0",
    }

    def series(name: str, number: int) -> dict[str, Any]:
        uids = {"series_instance_uid": uid(name, "series"), "sop_instance_uid": uid(name, "sop")}
        return {**uids, "series_number": number, "instance_number": 1}

    # TID 1500: report > imaging measurements > group > NUM > finding site > laterality
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[10.0, 10.0], [40.0, 10.0], [40.0, 40.0], [10.0, 10.0]]),
        source_image=hd.sr.SourceImageForRegion.from_source_image(ct),
    )
    measurement = hd.sr.Measurement(
        name=codes.SCT.AreaOfDefinedRegion,
        value=42.5,
        unit=codes.UCUM.SquareMillimeter,
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid("sr", "measurement")),
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung, laterality=codes.SCT.Left)],
        referenced_images=[hd.sr.SourceImageForMeasurement.from_source_image(ct)],
    )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid("sr", "roi"), identifier="ROI 1"),
        referenced_region=region,
        finding_type=codes.SCT.Nodule,
        measurements=[measurement],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Doe^Jane"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[ct], content=report, manufacturer=device["manufacturer"], **series("sr", 5)
    )

    hu = pydicom.pixels.apply_modality_lut(ct.pixel_array, ct)
    labels = np.where(hu > 300, 1, np.where((hu > -100) & (hu <= 300), 2, 0)).astype(np.uint8)
    segments = ((1, "bone", codes.SCT.Bone), (2, "soft tissue", codes.SCT.SoftTissue))
    seg = hd.seg.Segmentation(
        source_images=[ct],
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=label,
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=prop,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
            for number, label, prop in segments
        ],
        **series("seg", 2),
        **device,
    )

    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=[ct],
        content=hd.ko.KeyObjectSelection(
            document_title=codes.DCM.OfInterest, referenced_objects=[ct]
        ),
        manufacturer=device["manufacturer"],
        **series("kos", 3),
    )

    values = mr.pixel_array.astype(np.float32) / np.float32(mr.pixel_array.max())
    pmap = hd.pm.ParametricMap(
        source_images=[mr],
        pixel_array=values,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[
            hd.pm.RealWorldValueMapping(
                lut_label="relative",
                lut_explanation="MR signal relative to its maximum",
                unit=codes.UCUM.NoUnits,
                value_range=(float(values.min()), float(values.max())),
                intercept=0,
                slope=1,
            )
        ],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        **series("pmap", 4),
        **device,
    )

    deep = _deep_sr(ct, DEEP_SR_LEVELS)
    built = {"sr": sr, "sr_deep": deep, "seg": seg, "kos": kos, "pmap": pmap, "sm": _slide(ct)}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, pathlib.Path] = {}
    for name, ds in built.items():
        paths[name] = out_dir / f"{name}.dcm"
        _pin(ds, name).save_as(paths[name], enforce_file_format=True)
    return paths


def all_files(tmp_dir: pathlib.Path) -> list[pathlib.Path]:
    """`pydicom_files` followed by the highdicom objects built into `tmp_dir`."""
    return pydicom_files() + sorted(build_highdicom_objects(tmp_dir).values())
