"""spark-submit jobs/app.py --table PATH [--port 7860] [--host 127.0.0.1] [--allow-root DIR ...]

The web app (`dcm_spark.app`): one warm Spark session with the table's views, served on
127.0.0.1 unless ``--host`` says otherwise. ``--allow-root`` names the folders the Ingest tab
may read (uploads always go to the app's own scratch folder). Exit 2 with one line when it
cannot start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from dcm_spark.daemon import use_installed_pyspark

use_installed_pyspark()  # before pyspark is first imported

import dcm_spark.app  # noqa: F401  (switches Gradio's analytics off before Gradio loads)
from dcm_spark.app.server import launch
from dcm_spark.app.state import AppState
from dcm_spark.errors import DcmSparkError
from dcm_spark.session import job_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Serve the web app.")
    parser.add_argument("--table", required=True, help="location of the Delta table")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    parser.add_argument(
        "--allow-root",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder the Ingest tab may read from (repeat it); none by default",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    roots = tuple(Path(r).resolve() for r in args.allow_root)
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        print(f"app: --allow-root is not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    spark = job_session("dcm-spark app")
    state = None
    try:
        state = AppState.open(spark, args.table, allow_roots=roots, warm_up=True)
        print(f"app: serving {state.table} on http://{args.host}:{args.port}", flush=True)
        launch(state, args.host, args.port)
    except DcmSparkError as exc:
        print(f"app: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        if state is not None:  # uploads and results: their rows are in the table already
            shutil.rmtree(state.scratch, ignore_errors=True)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
