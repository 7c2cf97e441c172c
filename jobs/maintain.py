"""spark-submit jobs/maintain.py optimize|vacuum --table PATH [...]

Table maintenance (`dcm_spark.delta.maintenance`): ``optimize`` compacts the small files
of the table and its side tables (``--zorder``: by StudyInstanceUID, SeriesInstanceUID);
``vacuum`` deletes files no version of the last ``--retain-hours`` (168) references.
"""

from __future__ import annotations

import argparse
import sys

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from dcm_spark.delta.maintenance import SAFE_RETAIN_HOURS, optimize, vacuum
from dcm_spark.delta.table import exists
from dcm_spark.errors import DcmSparkError
from dcm_spark.paths import absolute
from dcm_spark.session import job_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maintain.py", description=__doc__.splitlines()[2])
    parser.add_argument("command", choices=("optimize", "vacuum"))
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--zorder", action="store_true", help="optimize: Z-order by study/series")
    parser.add_argument(
        "--retain-hours",
        type=float,
        default=SAFE_RETAIN_HOURS,
        help=f"vacuum: keep files the last HOURS of versions need (default {SAFE_RETAIN_HOURS})",
    )
    parser.add_argument(
        "--force-short-retention",
        action="store_true",
        help=f"vacuum: allow --retain-hours below {SAFE_RETAIN_HOURS} (no other job may use "
        "the table meanwhile; time travel before it is lost)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    short = args.command == "vacuum" and args.retain_hours < SAFE_RETAIN_HOURS
    if short and not args.force_short_retention:  # refused before Spark starts
        print(
            f"maintain: --retain-hours {args.retain_hours:g} is below Delta's safety period"
            f" ({SAFE_RETAIN_HOURS} h); add --force-short-retention to mean it",
            file=sys.stderr,
        )
        return 2
    spark = job_session(f"dcm-spark {args.command}")
    try:
        if not exists(spark, absolute(args.table)):
            print(f"maintain: no Delta table at {args.table}", file=sys.stderr)
            return 2
        if args.command == "optimize":
            for done in optimize(spark, args.table, zorder=args.zorder):
                print(f"{done.table}: {done.files_removed} files compacted into {done.files_added}")
        else:
            for table in vacuum(
                spark,
                args.table,
                retain_hours=args.retain_hours,
                force=args.force_short_retention,
            ):
                print(f"{table}: vacuumed (retaining {args.retain_hours:g} h)")
    except (DcmSparkError, PySparkException, Py4JError) as exc:
        print(f"maintain: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
