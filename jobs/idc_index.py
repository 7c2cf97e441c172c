"""spark-submit jobs/idc_index.py --table PATH --out DIR [--index NAME ...]

Writes ``DIR/<name>.parquet`` for every idc-index table that can be made from the local
table (`dcm_spark.idc.index`), with the columns and types of the installed
``idc-index-data`` package. Exit 2 with one line when it cannot run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from dcm_spark.catalog import register
from dcm_spark.errors import DcmSparkError
from dcm_spark.idc.index import local_indexes, write_index
from dcm_spark.session import job_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idc_index.py", description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--out", required=True, type=Path, help="directory for the files")
    parser.add_argument("--index", action="append", help="only these indexes (repeatable)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    names = local_indexes()
    unknown = sorted(set(args.index or []) - set(names))
    if unknown:
        print(f"idc_index: {', '.join(unknown)} cannot be made here: {names}", file=sys.stderr)
        return 2
    spark = job_session("dcm-spark idc-index")
    try:
        if "dicom" not in register(spark, args.table, idc=False):  # each index lays out its own
            print(f"idc_index: no Delta table at {args.table}", file=sys.stderr)
            return 2
        failed = 0
        for name in args.index or names:
            try:
                print(f"{name}: {write_index(spark, name, args.out)}")
            except (DcmSparkError, PySparkException) as exc:  # the others still run
                failed += 1
                print(f"{name}: not made: {str(exc).splitlines()[0]}", file=sys.stderr)
        if failed and args.index:
            return 2  # an index asked for by name could not be made
    except (DcmSparkError, PySparkException, Py4JError) as exc:
        print(f"idc_index: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
