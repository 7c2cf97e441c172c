"""dcm-spark: DICOM headers as an evolving, queryable Delta table."""

__version__ = "0.1.0"
