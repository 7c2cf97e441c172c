"""A task's memo of converted values, shared by the files it converts."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dcm_spark.dicom.reader import SeenSequences


class ValueMemo(dict[tuple[Any, ...], tuple[str, Any, pa.DataType | None]]):
    """Converted values of short public elements, keyed by tag, VR, bytes, byte order and
    character set: (column, value, type); the text of short private ones: (tag name,
    texts, None), for ``OtherElements``.

    The files of a series repeat most of their values (Modality, Rows, PixelSpacing,
    the study's UIDs, a vendor's private block...): converting each distinct one once
    makes a file about 1.5 times faster to convert. Pass one memo to the files a task
    converts; it holds at most ``limit`` entries (then starts again empty). Holds no
    person names (dicts).
    """

    def __init__(self, limit: int = 50_000) -> None:
        super().__init__()
        self.limit = limit
        # item fields, by name and type object -> (the fields, the sequence's type)
        self.sequence_types: dict[tuple[tuple[str, int], ...], tuple[Any, pa.DataType]] = {}
        # sequences by their bytes, with their conversions (`dcm_spark.dicom.reader`)
        self.seen = SeenSequences()

    def remember(self, key: tuple[Any, ...], entry: tuple[str, Any, pa.DataType | None]) -> None:
        if len(self) >= self.limit:
            self.clear()
        self[key] = entry

    def sequence_type(self, item_types: dict[str, pa.DataType]) -> pa.DataType:
        """Column type of a sequence whose items have these fields.

        Keyed by the type objects' identity (the memo's and this method's results are
        the same objects file after file): hashing a nested Arrow type walks its text,
        100 us for a wide one, slower than building it. An entry keeps its types alive,
        so their ids are not reused while it stands.
        """
        key = tuple((name, id(t)) for name, t in item_types.items())
        known = self.sequence_types.get(key)
        if known is None:
            fields = list(item_types.items())
            known = (fields, pa.list_(pa.struct(fields) if fields else pa.null()))
            if len(self.sequence_types) >= self.limit:
                self.sequence_types.clear()
            self.sequence_types[key] = known
        return known[1]


MEMO_MAX_BYTES = 64  # longer values are rarely repeated (and would make the memo big)
