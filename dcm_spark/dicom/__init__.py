"""The DICOM half: files to rows (reader, VR rules, values, converter, de-identification,
time budget). pydicom and pyarrow only: no Spark anywhere below this package."""
