"""spark-submit jobs/ingest.py: keep a Delta table of DICOM headers up to date.

    spark-submit --properties-file conf/spark-defaults.conf jobs/ingest.py \
        --input DIR_OR_URI [--input ...] --table PATH

Exit status 0 when the job ran (even if some files were bad: they are in the errors
table), 2 when it could not run (bad arguments, table locked, Spark or Delta failure).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from dcm_spark.delta.maintenance import optimize_if_many
from dcm_spark.dicom.deidentify import Policy, Profile
from dcm_spark.dicom.header import HeaderOptions
from dcm_spark.errors import DcmSparkError, safe_message
from dcm_spark.ingest import DRIVER_PARSE_LIMIT, IngestOptions, run
from dcm_spark.pseudonyms import PathMode, PathPolicy
from dcm_spark.session import job_session


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ingest.py", description="Ingest DICOM headers into an evolving Delta table."
    )
    parser.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="DIR_OR_URI",
        help="directory or file to ingest, recursively: a local path, s3://bucket/prefix, "
        "gs://..., a Hadoop URI, or a DICOMweb server dicomweb+http://host:port/dicom-web"
        "[?StudyDate=...]; .zip/.tar/.tar.gz/.tgz files are read member by member "
        "(repeat for several)",
    )
    parser.add_argument(
        "--anonymous",
        action="store_true",
        help="read s3:// and gs:// without credentials (public buckets such as IDC's)",
    )
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument(
        "--errors-table", help="location of the errors table (default: <table>_errors)"
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the table from every listed file instead of adding what is new",
    )
    parser.add_argument(
        "--max-depth",
        type=int,
        default=15,
        help="deepest sequence nesting kept as columns; deeper is kept as JSON (default 15)",
    )
    parser.add_argument(
        "--max-value-size",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="text or number values longer than this are not read; OtherElements says so "
        "(default 1 MiB)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds one file may take before it becomes an error record (default 30)",
    )
    parser.add_argument(
        "--files-per-task",
        type=int,
        default=2000,
        help="most files one Spark task parses and writes as one Parquet file (default 2000)",
    )
    parser.add_argument(
        "--driver-parse-limit",
        type=int,
        default=DRIVER_PARSE_LIMIT,
        metavar="FILES",
        help="on a local master, a run with at most this many local files to parse "
        "converts them in the driver, without a Spark job; 0: always Spark "
        f"(default {DRIVER_PARSE_LIMIT})",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="KEYWORD_OR_TAG",
        help="leave this element out at every depth: a keyword (PatientName) or a tag "
        "(00100010, (0010,0010)); repeat for several",
    )
    parser.add_argument(
        "--deidentify",
        choices=[p.value for p in Profile],
        default="none",
        help="'basic': apply DICOM PS3.15 Annex E's Basic Application Level Confidentiality "
        "Profile at every depth (private elements removed) before anything is written",
    )
    parser.add_argument(
        "--hash-key-file",
        type=Path,
        help="a file holding the secret key (>= 16 bytes) for the keyed hashes that replace "
        "UIDs, IDs and paths and shift dates, so they are the same in every run (needed for "
        "path pseudonyms and --retain-longitudinal; without it, --deidentify basic draws a "
        "random key per run)",
    )
    parser.add_argument(
        "--retain-longitudinal",
        action="store_true",
        help="with --deidentify basic and --hash-key-file: shift every date by a whole number "
        "of days per patient (keyed by the original PatientID) instead of emptying it, so "
        "intervals within a patient survive (PS3.15 Annex E's Retain Longitudinal Temporal "
        "Information with Modified Dates Option)",
    )
    parser.add_argument(
        "--retain-uids",
        action="store_true",
        help="with --deidentify basic: keep UIDs as they are (Annex E's Retain UIDs Option)",
    )
    parser.add_argument(
        "--retain-safe-private",
        action="store_true",
        help="with --deidentify basic: keep the private elements that DICOM PS3.15 Table "
        "E.3.10-1 lists as safe for their private creator (Annex E's Retain Safe Private "
        "Option; the list: dcm_spark/dicom/safe_private.csv); every other private element "
        "is removed",
    )
    parser.add_argument(
        "--retain-device-identity",
        action="store_true",
        help="with --deidentify basic: keep what identifies the device (serial numbers, "
        "station names, device UIDs: the K rows of DICOM PS3.15 Table E.1-1's Retain Device "
        "Identity Option)",
    )
    parser.add_argument(
        "--retain-institution-identity",
        action="store_true",
        help="with --deidentify basic: keep institution and department names, address and "
        "trial site (the K rows of Table E.1-1's Retain Institution Identity Option)",
    )
    parser.add_argument(
        "--clean-descriptors",
        action="store_true",
        help="with --deidentify basic: keep short descriptors (study and series descriptions, "
        "protocol names, labels) that hold no word of the file's identifying values, no "
        "four-digit number, date or '@' (Table E.1-1's Clean Descriptors Option); comments "
        "and other free text are still removed",
    )
    parser.add_argument(
        "--path-mode",
        choices=[m.value for m in PathMode],
        help="what the table keeps of each file's path: 'keep' it, a keyed 'pseudonym' of "
        "each folder and file name (the tree's shape stays; needs --hash-key-file), or "
        "'drop' it (a keyed hash of path, size and mtime). Default: pseudonym with "
        "--deidentify, keep without",
    )
    parser.add_argument(
        "--path-map",
        type=Path,
        help="with --path-mode pseudonym or drop: append 'pseudonym<TAB>path' of every "
        "listed file here (keep this file apart from the table)",
    )
    parser.add_argument(
        "--auto-optimize",
        type=int,
        metavar="FILES",
        help="after the run, compact the table (Delta OPTIMIZE, as make optimize) if it has "
        "more than FILES data files",
    )
    parser.add_argument("--summary-json", type=Path, help="also write the summary here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        key = args.hash_key_file.read_bytes().strip() if args.hash_key_file else None
        privacy = None
        basic = Profile(args.deidentify) is Profile.BASIC
        if args.exclude or basic:
            privacy = Policy(
                exclude=frozenset(args.exclude),
                profile=Profile(args.deidentify),
                hash_key=key if basic else None,
                retain_longitudinal=args.retain_longitudinal,
                retain_uids=args.retain_uids,
                retain_safe_private=args.retain_safe_private,
                retain_device_identity=args.retain_device_identity,
                retain_institution_identity=args.retain_institution_identity,
                clean_descriptors=args.clean_descriptors,
            )
        elif args.retain_longitudinal or args.retain_uids or args.retain_safe_private:
            raise ValueError(
                "--retain-longitudinal, --retain-uids and --retain-safe-private need "
                "--deidentify basic"
            )
        elif args.retain_device_identity or args.retain_institution_identity:
            raise ValueError(
                "--retain-device-identity and --retain-institution-identity need --deidentify basic"
            )
        elif args.clean_descriptors:
            raise ValueError("--clean-descriptors needs --deidentify basic")
        mode = PathMode(args.path_mode or ("keep" if args.deidentify == "none" else "pseudonym"))
        if mode is not PathMode.KEEP and key is None:
            raise ValueError(
                f"--path-mode {mode.value} needs --hash-key-file: with a random key the "
                "same file would get another path in every run (or say --path-mode keep)"
            )
        options = IngestOptions(
            inputs=tuple(args.input),
            table=args.table,
            errors_table=args.errors_table,
            full_refresh=args.full_refresh,
            header=HeaderOptions(
                max_depth=args.max_depth,
                max_value_size=args.max_value_size,
                time_budget=args.time_budget,
            ),
            files_per_task=args.files_per_task,
            driver_parse_limit=args.driver_parse_limit,
            privacy=privacy,
            anonymous=args.anonymous,
            paths=PathPolicy(mode, key or b""),
            path_map=str(args.path_map) if args.path_map else None,
        )
    except (ValueError, OSError) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    spark = job_session("dcm-spark ingest")
    try:
        summary = run(spark, options)
        if args.auto_optimize is not None:
            for done in optimize_if_many(spark, options.table, args.auto_optimize):
                print(
                    f"auto-optimize: {done.files_removed} files of {done.table} into "
                    f"{done.files_added}",
                    file=sys.stderr,
                )
    except (DcmSparkError, PySparkException, Py4JError) as exc:
        print(f"ingest: the job could not run: {safe_message(exc, limit=2000)}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    if args.summary_json:
        args.summary_json.write_text(summary.to_json())
    print(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
