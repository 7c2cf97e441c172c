"""spark-submit jobs/query.py --table PATH [--format text|csv|json] "SQL"

The table is registered as ``dicom`` and its errors as ``dicom_errors``.
"""

from __future__ import annotations

import argparse
import sys

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from dcm_spark.catalog import FORMATS, register, render
from dcm_spark.session import job_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="query.py", description="Run Spark SQL on the table.")
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--limit", type=int, default=1000, help="most rows printed")
    parser.add_argument("sql", help="the query; the table is `dicom`, its errors `dicom_errors`")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    spark = job_session("dcm-spark query")
    try:
        if not register(spark, args.table):
            print(f"query: no Delta table at {args.table}", file=sys.stderr)
            return 2
        print(render(spark.sql(args.sql), args.format, args.limit))
    except (PySparkException, Py4JError) as exc:
        print(f"query: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
