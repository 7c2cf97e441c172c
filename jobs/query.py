"""spark-submit jobs/query.py --table PATH [--dialect spark|bigquery] [--format text|csv|json]
                             ("SQL" | --sql-file PATH)

The table is registered as ``dicom`` (and ``dicom_all``, ``dicom_series``, ... see
`dcm_spark.catalog.register`). BigQuery SQL, as IDC users write it, is translated to Spark
SQL first (`dcm_spark.idc.bigquery`). Exit 2 with one line when the query cannot run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from dcm_spark.catalog import FORMATS, IDC_VIEWS, VIEWS, register, render
from dcm_spark.errors import DcmSparkError
from dcm_spark.idc.bigquery import to_spark
from dcm_spark.idc.view import columns_read
from dcm_spark.session import job_session


def read_query(args: argparse.Namespace) -> str:
    """The query text: the argument, or the file's (UTF-8)."""
    if args.sql_file is None:
        return str(args.sql)
    try:
        return Path(args.sql_file).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DcmSparkError(f"{args.sql_file} is not UTF-8 text") from None
    except OSError as exc:
        raise DcmSparkError(f"cannot read {args.sql_file}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="query.py", description="Run SQL on the table.")
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--limit", type=int, default=1000, help="most rows printed")
    parser.add_argument(
        "--dialect", choices=("spark", "bigquery"), default="spark", help="the query's SQL"
    )
    parser.add_argument("--sql-file", help="read the query from this file instead")
    parser.add_argument(
        "--as-of",
        metavar="VERSION_OR_TIMESTAMP",
        help="query the table as it was at this Delta version (a number) or time",
    )
    parser.add_argument("sql", nargs="?", help="the query; the table is `dicom`")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if (args.sql is None) == (args.sql_file is None):
        parser.error("give the query as an argument or with --sql-file, not both")
    try:
        query = read_query(args)
        if args.dialect == "bigquery":  # refused before Spark starts if it cannot run
            query = to_spark(query, views=VIEWS)
    except DcmSparkError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return 2
    spark = job_session("dcm-spark query")
    try:
        idc: bool | frozenset[str] = False
        if args.dialect == "bigquery" or any(v in query.lower() for v in IDC_VIEWS):
            idc = columns_read(query) or True  # only the columns it reads: see columns_read
        if not register(spark, args.table, idc=idc, as_of=args.as_of):
            print(f"query: no Delta table at {args.table}", file=sys.stderr)
            return 2
        print(render(spark.sql(query), args.format, args.limit))
    except (PySparkException, Py4JError) as exc:
        print(
            f"query: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
