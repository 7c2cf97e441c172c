"""Hostile files made from scratch, and filesystem entries that are not plain files, for
`tests.mutations.build` (the cases built from real files are in `tests.mutations`)."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

from tests.mutations import (
    CANARY_ID,
    CANARY_NAME,
    CONTENT_SEQUENCE,
    INTACT,
    LONG_VRS,
    PATIENT_ID,
    PATIENT_NAME,
    PIXEL_DATA,
    SEED,
    TEXT_VALUE,
    UNDEFINED,
    Case,
    _text,
    load_source,
)
from tests.source_mutations import _rng

# -- files made from scratch -----------------------------------------------------------


def _explicit(tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", size) + value
    return head + struct.pack("<H", size) + value


def _implicit(tag: int, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, size) + value


def part10(body: bytes, syntax: str = ExplicitVRLittleEndian, *, deflate: bool = False) -> bytes:
    """Preamble, file meta (Secondary Capture) and `body` (deflated if asked)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[SEED, syntax, str(len(body))])
    mode = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE  # "CANARY.1.2"
    try:
        meta.TransferSyntaxUID = syntax
    finally:
        pydicom.config.settings.reading_validation_mode = mode
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.511.9"
    out = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(out, meta, enforce_standard=True)
    if deflate:
        squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = squeeze.compress(body) + squeeze.flush()
    return b"\x00" * 128 + b"DICM" + out.getvalue() + body


def _patient(implicit: bool = False) -> bytes:
    pairs = [
        (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
        (0x00080018, "UI", "1.2.3.4"),
        (PATIENT_NAME, "PN", CANARY_NAME),
        (PATIENT_ID, "LO", CANARY_ID),
    ]
    if implicit:
        return b"".join(_implicit(tag, _text(v)) for tag, _vr, v in pairs)
    return b"".join(_explicit(tag, vr, _text(v)) for tag, vr, v in pairs)


CONTENT_LABEL = 0x00700080
DEEP_EXPECT = (*INTACT, ("ContentLabel", "TAIL"))


def nested(levels: int, *, undefined: bool, implicit: bool = False) -> bytes:
    """A data set whose ContentSequence nests `levels` deep, a TextValue at the bottom,
    and a ContentLabel "TAIL" after the sequence."""
    leaf = _text(f"leaf at level {levels}")
    inner = _implicit(TEXT_VALUE, leaf) if implicit else _explicit(TEXT_VALUE, "UT", leaf)
    for _ in range(levels):
        if undefined:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + inner
            item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            items = item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
            length: int | None = UNDEFINED
        else:
            items = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            length = None
        if implicit:
            inner = _implicit(CONTENT_SEQUENCE, items, length)
        else:
            inner = _explicit(CONTENT_SEQUENCE, "SQ", items, length)
    tail = (
        _implicit(CONTENT_LABEL, b"TAIL") if implicit else _explicit(CONTENT_LABEL, "CS", b"TAIL")
    )
    return _patient(implicit) + inner + tail


BOMB = 200 << 20


def deflate_bomb(size: int) -> bytes:
    """A deflated file whose Pixel Data inflates to `size` zero bytes (about size / 1000)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = _patient() + _explicit(PIXEL_DATA, "OB", b"", length=size)
    chunks = [squeeze.compress(head)]
    zeros = b"\x00" * (1 << 20)
    for _ in range(size >> 20):
        chunks.append(squeeze.compress(zeros))
    chunks.append(squeeze.flush())
    return part10(b"", DeflatedExplicitVRLittleEndian) + b"".join(chunks)


def scratch_cases() -> Iterator[Case]:
    """Files that were never valid DICOM, or that are valid but extreme."""
    rng = _rng("scratch")
    yield Case("scratch/empty", "not_dicom", b"")
    for size in (1, 4, 127, 128, 131, 132, 133, 500, 4096, 65536):
        yield Case(f"scratch/random{size}", "not_dicom", rng.randbytes(size))
        if size > 132:
            data = bytearray(rng.randbytes(size))
            data[128:132] = b"DICM"
            yield Case(f"scratch/random{size}+DICM", "not_dicom", bytes(data))
    yield Case("scratch/preamble+DICM", "not_dicom", b"\x00" * 128 + b"DICM")
    yield Case("scratch/DICM-only", "not_dicom", b"DICM")
    yield Case("scratch/meta-only", "not_dicom", part10(b""))
    yield Case("scratch/meta-deflated-garbage", "not_dicom", part10(rng.randbytes(300)))
    yield Case(
        "scratch/meta-deflated-syntax-garbage",
        "not_dicom",
        part10(rng.randbytes(300), DeflatedExplicitVRLittleEndian),
    )
    zeros = b"\x00" * 128 + b"DICM" + b"\x00" * 4096
    yield Case("scratch/preamble+DICM+zeros", "not_dicom", zeros)
    yield Case("scratch/zeros", "not_dicom", b"\x00" * 65536)
    yield Case("scratch/0xff", "not_dicom", b"\xff" * 65536)

    text = f"PatientName={CANARY_NAME}\nPatientID={CANARY_ID}\n" * 40
    yield Case("scratch/canary.txt", "canary_text", text.encode())
    model = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": CANARY_NAME}]}}
    yield Case("scratch/canary.json", "canary_text", json.dumps(model).encode())
    # a bare data set that is all canary: no preamble, no file meta
    bare = _patient() + _explicit(0x00104000, "LT", _text(f"{CANARY_NAME} " * 50))
    yield Case("scratch/canary-bare", "canary_text", bare)
    yield Case("scratch/canary-bare-implicit", "canary_text", _patient(implicit=True))
    # the canary where a VR, a tag or a transfer syntax is expected
    bad_vr = struct.pack("<HH", 0x0010, 0x0010) + b"CANARY^SECRET\x00"
    yield Case("scratch/canary-as-vr", "canary_text", part10(bad_vr))
    yield Case("scratch/canary-as-syntax", "canary_text", part10(_patient(), "CANARY.1.2"))
    charset = _explicit(0x00080005, "CS", _text("CANARY-SECRET"))
    yield Case("scratch/canary-as-charset", "canary_text", part10(charset + _patient()))

    for levels, undefined, implicit in ((200, True, False), (200, False, False), (200, True, True)):
        body = nested(levels, undefined=undefined, implicit=implicit)
        syntax = "1.2.840.10008.1.2" if implicit else ExplicitVRLittleEndian
        label = f"{'undefined' if undefined else 'defined'}{'-implicit' if implicit else ''}"
        yield Case(
            f"scratch/deep{levels}-{label}", "deep", part10(body, syntax), expect=DEEP_EXPECT
        )
    for levels in (2000,):
        body = nested(levels, undefined=True)
        yield Case(f"scratch/deep{levels}-undefined", "deep", part10(body), expect=DEEP_EXPECT)
        body = nested(levels, undefined=False)
        yield Case(f"scratch/deep{levels}-defined", "deep", part10(body), expect=DEEP_EXPECT)

    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    many = _explicit(CONTENT_SEQUENCE, "SQ", item * 20_000)
    yield Case("scratch/20000-empty-items", "wide", part10(_patient() + many), expect=INTACT)
    code = _explicit(0x00080100, "SH", b"ABC ") + _explicit(0x00080104, "LO", b"meaning ")
    coded = struct.pack("<HHI", 0xFFFE, 0xE000, len(code)) + code
    seq = _explicit(0x0040A043, "SQ", coded * 2000)
    yield Case("scratch/2000-code-items", "wide", part10(_patient() + seq), expect=INTACT)
    privates = b"".join(
        _explicit(0x00090000 | e, "LO", b"x ") for e in range(0x1000, 0x1000 + 5000)
    )
    creator = _explicit(0x00090010, "LO", b"ROBUSTNESS ")
    yield Case("scratch/5000-private", "wide", part10(_patient() + creator + privates))

    # 4 MB of backslashes in a DS (implicit VR: 4-byte length): 4 million empty values
    implicit = "1.2.840.10008.1.2"
    many = _patient(implicit=True) + _implicit(0x00200032, b"\\" * (4 << 20))
    yield Case("scratch/4MB-of-backslashes", "amplify", part10(many, implicit), expect=INTACT)

    # deflate: a bomb (200 MB of zeros in 200 kB), and a text value past defer_size
    yield Case("scratch/deflate-bomb", "deflate_bomb", deflate_bomb(BOMB), expect=INTACT)
    long_text = " ".join(f"line {n:05d} of a long comment." for n in range(400))
    comments = _explicit(0x00204000, "LT", _text(long_text))
    yield Case(
        "scratch/deflate-long-text",
        "deflate_long_text",
        part10(_patient() + comments, DeflatedExplicitVRLittleEndian, deflate=True),
        expect=(*INTACT, ("ImageComments", long_text)),
        note=f"ImageComments is {len(long_text)} bytes, more than defer_size",
    )
    noise = _explicit(0x00290010, "LO", b"ROBUSTNESS ")
    noise += _explicit(0x00291010, "OB", _rng("noise").randbytes(40_000))  # incompressible
    yield Case(
        "scratch/deflate-long-text-then-noise",
        "deflate_long_text",
        part10(_patient() + comments + noise, DeflatedExplicitVRLittleEndian, deflate=True),
        expect=(*INTACT, ("ImageComments", long_text)),
        note="the compressed file is long enough for a read at the inflated offset to succeed",
    )
    yield Case(
        "scratch/plain-long-text",
        "deflate_long_text",
        part10(_patient() + comments),
        expect=(*INTACT, ("ImageComments", long_text)),
        note="the same data set, not deflated (control)",
    )


# -- filesystem entries ----------------------------------------------------------------


def _directory(root: Path) -> Path:
    (root / "x.dcm").mkdir()
    return root / "x.dcm"


def _unreadable(root: Path) -> Path:
    path = root / "unreadable.dcm"
    path.write_bytes(load_source("ct").data)
    path.chmod(0)
    return path


def _loop(root: Path) -> Path:
    (root / "a.dcm").symlink_to(root / "b.dcm")
    (root / "b.dcm").symlink_to(root / "a.dcm")
    return root / "a.dcm"


def _dangling(root: Path) -> Path:
    (root / "dangling.dcm").symlink_to(root / "nowhere.dcm")
    return root / "dangling.dcm"


def _missing(root: Path) -> Path:
    return root / "missing.dcm"


def _fifo(root: Path) -> Path:
    os.mkfifo(root / "fifo.dcm")
    return root / "fifo.dcm"


def _dev_zero(root: Path) -> Path:
    (root / "zero.dcm").symlink_to("/dev/zero")
    return root / "zero.dcm"


def _dev_null(root: Path) -> Path:
    (root / "null.dcm").symlink_to("/dev/null")
    return root / "null.dcm"


SPARSE_TEXT = 96 << 20


def _sparse(root: Path) -> Path:
    """A valid file whose LT ImageComments declares (and holds) 96 MB: sparse on disk."""
    path = root / "sparse.dcm"
    head = part10(_patient() + _explicit(0x00204000, "UT", b"", length=SPARSE_TEXT))
    with path.open("wb") as out:
        out.write(head)
        out.truncate(len(head) + SPARSE_TEXT)
    return path


def filesystem_cases() -> Iterator[Case]:
    yield Case("fs/directory x.dcm", "fs", make=_directory)
    yield Case("fs/chmod-000", "fs", make=_unreadable, note="root reads it anyway")
    yield Case("fs/symlink-loop", "fs", make=_loop)
    yield Case("fs/dangling-symlink", "fs", make=_dangling)
    yield Case("fs/missing", "fs", make=_missing)
    yield Case("fs/dev-null", "fs", make=_dev_null)
    yield Case("fs/fifo", "fs_hang", make=_fifo, note="open() blocks until a writer comes")
    yield Case("fs/dev-zero", "fs_hang", make=_dev_zero, note="an endless stream of zeros")
    yield Case("fs/sparse-96MB-text", "fs_sparse", make=_sparse, expect=INTACT)
