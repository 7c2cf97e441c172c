"""The table's properties, in one place: the Delta features kept off and the columns that
get statistics."""

from __future__ import annotations

import pyarrow as pa

#: Columns people filter on; Delta keeps min/max statistics for these only, not for the
#: thousands of nested leaves of a wide DICOM table.
STATS_COLUMNS = (
    "_path",
    "_run_id",
    "SOPInstanceUID",
    "SOPClassUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "Modality",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
)

#: Delta features kept off so the table stays readable by delta-rs, DuckDB and Polars.
TABLE_PROPERTIES = {
    "delta.appendOnly": "false",
    "delta.checkpointInterval": "20",
}


def table_properties(schema: pa.Schema) -> dict[str, str]:
    """The table properties a table of ``schema`` gets: `TABLE_PROPERTIES` and statistics
    on the `STATS_COLUMNS` it has."""
    present = [c for c in STATS_COLUMNS if c in schema.names]
    stats = ",".join(f"`{c}`" for c in present)
    return {**TABLE_PROPERTIES, "delta.dataSkippingStatsColumns": stats}
