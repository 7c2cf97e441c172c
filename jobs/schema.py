"""spark-submit jobs/schema.py --table PATH [--field NAME] [--format tree|bigquery-json]

The schema as BigQuery's schema tab shows it, or as a BigQuery JSON schema.
"""

from __future__ import annotations

import argparse
import json
import sys

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from dcm_spark.catalog import bigquery_schema, schema_tree
from dcm_spark.delta.table import exists
from dcm_spark.paths import absolute
from dcm_spark.session import job_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schema.py", description="Show the table's schema.")
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--field", help="only this top-level column")
    parser.add_argument("--format", choices=("tree", "bigquery-json"), default="tree")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    spark = job_session("dcm-spark schema")
    try:
        location = absolute(args.table)
        if not exists(spark, location):
            print(f"schema: no Delta table at {args.table}", file=sys.stderr)
            return 2
        schema = spark.read.format("delta").load(location).schema
        try:
            if args.format == "tree":
                print(schema_tree(schema, args.field))
            else:
                print(json.dumps(bigquery_schema(schema, args.field), indent=2))
        except KeyError as exc:
            print(f"schema: {exc.args[0]}", file=sys.stderr)
            return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
