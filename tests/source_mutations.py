"""Mutations of real files for `tests.mutations.build`: truncations, flipped bytes, absurd
lengths and VRs, broken delimiters, garbled critical elements, duplicates, deflate streams."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterator

from pydicom.datadict import dictionary_VR

from tests.mutations import (
    INTACT,
    ITEM,
    ITEM_END,
    PATIENT_ID,
    PATIENT_NAME,
    PIXEL_DATA,
    SEED,
    SEQUENCE_END,
    TEXT_VRS,
    UNDEFINED,
    Case,
    Element,
    Source,
    _is_sequence,
    _text,
)

# -- mutations of a source -------------------------------------------------------------


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join([SEED, *map(str, parts)]))


def _intact(src: Source, first_changed: int) -> tuple[tuple[str, object], ...]:
    return INTACT if first_changed >= src.canary_end else ()


def _set_length(src: Source, plain: bytearray, e: Element, value: int) -> None:
    fmt = src.order + ("I" if e.length_size == 4 else "H")
    if e.offset < src.body:
        fmt = "<" + fmt[1:]  # the file meta is always little endian
    struct.pack_into(fmt, plain, e.length_offset, value)


def truncations(src: Source, step: int = 199, count: int = 5) -> Iterator[Case]:
    """Cut the file every `step` bytes of the header, and at the boundaries of `count`
    elements: inside the tag, inside the length, at the value, in the middle of it."""
    end = src.header_end
    cuts = set(range(0, end, step))
    inside = [e for e in src.elements if e.offset < end]
    for e in _rng(src.name, "truncate").sample(inside, min(count, len(inside))):
        cuts |= {e.offset, e.offset + 3, e.length_offset + e.length_size - 1}
        cuts |= {e.value_offset, e.value_offset + max(0, min(e.length, end) - 1) // 2}
    for cut in sorted(c for c in cuts if 0 < c < end):
        data = src.pack(src.plain[:cut])
        yield Case(f"{src.name}/truncate@{cut}", "truncate", data, expect=_intact(src, cut))
    pixels = [e for e in src.elements if e.tag == PIXEL_DATA and e.depth == 0]
    if pixels:
        start, size = pixels[0].value_offset, len(src.plain) - pixels[0].value_offset
        for cut in sorted({start, start + 1, *(start + size * k // 7 for k in range(1, 7))}):
            data = src.pack(src.plain[:cut])
            yield Case(f"{src.name}/truncate@{cut}", "truncate_pixels", data, expect=INTACT)


def flips(src: Source, count: int = 25) -> Iterator[Case]:
    """XOR one to four random bytes of the header with random non-zero masks."""
    rng = _rng(src.name, "flip")
    for n in range(count):
        plain = bytearray(src.plain)
        where = sorted(rng.randrange(0, src.header_end) for _ in range(rng.choice((1, 1, 2, 4))))
        for pos in where:
            plain[pos] ^= rng.randrange(1, 256)
        spots = ",".join(map(str, where))
        yield Case(
            f"{src.name}/flip{n}@{spots}",
            "flip",
            src.pack(bytes(plain)),
            expect=_intact(src, where[0]),
        )


def lengths(src: Source, count: int = 6) -> Iterator[Case]:
    """Lengths of elements, items and delimiters replaced by absurd values."""
    rng = _rng(src.name, "length")
    size = len(src.plain)
    elements = [e for e in src.elements if e.offset < src.header_end or e.tag == PIXEL_DATA]
    chosen = sorted(rng.sample(elements, min(count, len(elements))), key=lambda e: e.offset)
    pixels = [e for e in src.elements if e.tag == PIXEL_DATA]
    for e in chosen + [p for p in pixels if p not in chosen]:
        if e.length_size == 4:
            values = {0xFFFFFFFE, 0x7FFFFFFF, size + 1, UNDEFINED, e.length | 1}
        else:
            values = {0xFFFF, 0xFFFE, min(size + 1, 0xFFFF), e.length | 1}
        for value in sorted(values - {e.length}):
            plain = bytearray(src.plain)
            _set_length(src, plain, e, value)
            yield Case(
                f"{src.name}/length@{e.offset}:{e.tag:08X}={value:#x}",
                "length",
                src.pack(bytes(plain)),
                expect=_intact(src, e.offset),
            )


def vrs(src: Source, count: int = 3) -> Iterator[Case]:
    """Explicit VRs replaced: invalid ones, and valid ones that change the layout."""
    if src.implicit:
        return
    rng = _rng(src.name, "vr")
    explicit = [e for e in src.elements if e.vr is not None and e.offset >= src.body]
    for e in sorted(rng.sample(explicit, min(count, len(explicit))), key=lambda e: e.offset):
        for vr in ("ZZ", "\x00\x00", "SQ", "UN", "UT", "US", "DA", "PN"):
            if vr == e.vr:
                continue
            plain = bytearray(src.plain)
            plain[e.offset + 4 : e.offset + 6] = vr.encode("latin-1")
            yield Case(
                f"{src.name}/vr@{e.offset}:{e.tag:08X}={vr.encode('latin-1').hex()}",
                "vr",
                src.pack(bytes(plain)),
                expect=_intact(src, e.offset),
            )


def huge_texts(src: Source, count: int = 3) -> Iterator[Case]:
    """Text elements declaring 0xFFFFFFFE, 0x7FFFFFF0 or file size + 1 bytes."""
    rng = _rng(src.name, "text")
    texts = []
    for e in src.elements:
        if e.offset < src.body or e.offset >= src.header_end or e.tag >> 16 == 0xFFFE:
            continue
        vr = e.vr
        if vr is None:
            try:
                vr = dictionary_VR(e.tag)
            except KeyError:
                continue
        if vr in TEXT_VRS:
            texts.append(e)
    chosen = {e.tag: e for e in texts if e.tag in (PATIENT_NAME, PATIENT_ID)}
    rest = [e for e in texts if e.tag not in chosen]
    picked = [*chosen.values(), *rng.sample(rest, min(count, len(rest)))]
    for e in sorted(picked, key=lambda e: e.offset):
        for value in (0xFFFFFFFE, 0x7FFFFFF0, len(src.plain) + 1):
            plain = bytearray(src.plain)
            if e.length_size == 4:
                _set_length(src, plain, e, value)
            else:  # rewrite "VR + 2-byte length" as "UT + 00 00 + 4-byte length"
                plain[e.offset + 4 : e.value_offset] = b"UT\x00\x00" + struct.pack(
                    src.order + "I", value
                )
            yield Case(
                f"{src.name}/text_huge@{e.offset}:{e.tag:08X}={value:#x}",
                "text_huge",
                src.pack(bytes(plain)),
                expect=_intact(src, e.offset),
            )


def delimiters(src: Source, count: int = 12) -> Iterator[Case]:
    """Item and sequence delimiters removed: `count` one at a time, each kind, and all."""
    marks = [e for e in src.elements if e.tag in (ITEM_END, SEQUENCE_END)]
    if not marks:
        return
    some = _rng(src.name, "delimiter").sample(marks, min(count, len(marks)))
    groups = [(f"@{e.offset}", [e]) for e in sorted(some, key=lambda e: e.offset)]
    groups += [
        ("items", [e for e in marks if e.tag == ITEM_END]),
        ("sequences", [e for e in marks if e.tag == SEQUENCE_END]),
        ("all", marks),
    ]
    for label, removed in groups:
        if not removed:
            continue
        plain = bytearray(src.plain)
        for e in sorted(removed, key=lambda e: -e.offset):
            del plain[e.offset : e.offset + 8]
        first = min(e.offset for e in removed)
        yield Case(
            f"{src.name}/delimiter-{label}",
            "delimiter",
            src.pack(bytes(plain)),
            expect=_intact(src, first),
        )


def item_overflows(src: Source, count: int = 10) -> Iterator[Case]:
    """Items longer than their (defined-length) sequence; sequences shorter than an item."""
    rng = _rng(src.name, "item")
    containers = [
        e
        for e in src.elements
        if (e.tag == ITEM and e.sequence_length is not None)
        or (e.tag >> 16 != 0xFFFE and _is_sequence(e.tag, e.vr, e.length))
    ]
    picked = rng.sample(containers, min(count, len(containers)))
    for e in sorted(picked, key=lambda e: e.offset):
        if e.tag == ITEM and e.sequence_length is not None:
            for extra in (2, 100, 0xFFFFFFF0 - e.sequence_length):
                plain = bytearray(src.plain)
                _set_length(src, plain, e, e.sequence_length + extra)
                yield Case(
                    f"{src.name}/item_overflow@{e.offset}+{extra}",
                    "item_overflow",
                    src.pack(bytes(plain)),
                    expect=_intact(src, e.offset),
                )
        defined = e.length not in (0, UNDEFINED) and e.tag >> 16 != 0xFFFE
        if defined and _is_sequence(e.tag, e.vr, e.length):
            plain = bytearray(src.plain)
            _set_length(src, plain, e, 8)  # only the first item's tag and length
            yield Case(
                f"{src.name}/sequence_short@{e.offset}",
                "item_overflow",
                src.pack(bytes(plain)),
                expect=_intact(src, e.offset),
            )


#: elements the converter reads for the whole file, outside its per-element guard
CRITICAL = {
    0x00020000: "FileMetaInformationGroupLength",
    0x00020010: "TransferSyntaxUID",
    0x00080005: "SpecificCharacterSet",
    0x00280103: "PixelRepresentation",
}


def critical(src: Source) -> Iterator[Case]:
    """The elements of `CRITICAL`: lengths small and absurd, or just long enough to take
    in the canary elements (the file stays aligned), VRs swapped, values garbled."""
    rng = _rng(src.name, "critical")
    for e in src.elements:
        if e.tag not in CRITICAL:
            continue
        name = CRITICAL[e.tag]
        edits: list[tuple[str, bytearray]] = []
        top = 0xFFFFFFFE if e.length_size == 4 else 0xFFFF
        swallow = src.canary_end - e.value_offset  # the value takes in the canary elements
        lengths = {0, 3, e.length + 1, min(len(src.plain) + 1, top), top}
        if 0 < swallow <= top:
            lengths.add(swallow)
        for value in sorted(lengths):
            if value != e.length:
                plain = bytearray(src.plain)
                _set_length(src, plain, e, value)
                edits.append((f"length={value:#x}", plain))
        if e.vr is not None:
            for vr in ("SQ", "UN", "US", "ZZ"):
                if vr != e.vr:
                    plain = bytearray(src.plain)
                    plain[e.offset + 4 : e.offset + 6] = vr.encode()
                    edits.append((f"vr={vr}", plain))
        plain = bytearray(src.plain)
        plain[e.value_offset : e.end] = rng.randbytes(e.end - e.value_offset)
        edits.append(("value", plain))
        if e.tag == 0x00080005:
            for label, value in (("esc", b"\x1b$B\x1b(B"), ("multi", b"\\ISO 2022 IR 87\\xyz")):
                plain = bytearray(src.plain)
                padded = value + b" " * (len(value) % 2)
                plain[e.value_offset : e.end] = padded
                _set_length(src, plain, e, len(padded))
                edits.append((label, plain))
        for label, plain in edits:
            expect = _intact(src, e.offset)
            if label == f"length={swallow:#x}" and e.offset >= src.body:
                # aligned again after the canary (in the file meta, the transfer syntax
                # would be lost, and with it the way to read the data set)
                expect = (("StudyInstanceUID", src.study),)
            yield Case(
                f"{src.name}/critical@{e.offset}:{name}:{label}",
                "critical",
                src.pack(bytes(plain)),
                expect=expect,
            )


def deflate_streams(src: Source) -> Iterator[Case]:
    """The compressed stream itself damaged (only for a deflated source)."""
    if not src.deflated:
        return
    body = src.data[src.body :]
    needed = src.canary_end - src.body  # inflated bytes the canary needs
    for cut in range(1, len(body), max(1, len(body) // 24)):
        inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body[:cut])
        expect = INTACT if len(inflated) >= needed + 16 else ()
        data = src.data[: src.body + cut]
        yield Case(f"{src.name}/deflate_truncate@{cut}", "deflate_stream", data, expect=expect)
    rng = _rng(src.name, "deflate")
    for n in range(12):
        raw = bytearray(src.data)
        pos = rng.randrange(src.body, len(raw))
        raw[pos] ^= rng.randrange(1, 256)
        yield Case(f"{src.name}/deflate_flip{n}@{pos}", "deflate_stream", bytes(raw))


# -- the corpus ------------------------------------------------------------------------


def duplicates(src: Source) -> Iterator[Case]:
    """A second PatientID, out of tag order: before the Pixel Data, or after it (a reader
    keeps the elements after Pixel Data). The first, in order, is the patient's."""
    if src.deflated:
        return
    other = _text("OTHER-PATIENT")
    if src.implicit:
        element = struct.pack(f"{src.order}HHI", 0x0010, 0x0020, len(other)) + other
    else:
        element = struct.pack(f"{src.order}HH", 0x0010, 0x0020) + b"LO"
        element += struct.pack(f"{src.order}H", len(other)) + other
    end = src.header_end
    for label, at in (("before-pixels", end), ("at-end", len(src.plain))):
        if label == "before-pixels" and end == len(src.plain):
            continue
        plain = src.plain[:at] + element + src.plain[at:]
        yield Case(f"{src.name}/duplicate-{label}", "order", src.pack(plain), expect=INTACT)


def source_cases(src: Source) -> Iterator[Case]:
    yield from truncations(src)
    yield from flips(src)
    yield from lengths(src)
    yield from vrs(src)
    yield from huge_texts(src)
    yield from delimiters(src)
    yield from item_overflows(src)
    yield from critical(src)
    yield from duplicates(src)
    yield from deflate_streams(src)
