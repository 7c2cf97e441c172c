"""Progress of a run's parse, for a progress bar: files parsed of the files to parse."""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Told ``(files parsed, files to parse)`` while a run parses (a progress bar).
Progress = Callable[[int, int], None]

#: Seconds between two looks at the parse's tasks, for `Progress`.
PROGRESS_EVERY = 0.5


@contextmanager
def spark_progress(spark: SparkSession, n_files: int, progress: Progress | None) -> Iterator[None]:
    """Tell ``progress`` how many of ``n_files`` the Spark jobs started in this block (in
    this thread) have parsed, from the tasks they finished (Spark's status tracker, read
    every `PROGRESS_EVERY` seconds): a task's files count once the task is done."""
    if progress is None:
        yield
        return
    sc = spark.sparkContext
    group, before = f"dcm-spark-parse-{uuid.uuid4().hex}", sc.getLocalProperty("spark.jobGroup.id")
    sc.setLocalProperty("spark.jobGroup.id", group)
    stop, told = threading.Event(), [0]

    def poll() -> None:
        tracker = sc.statusTracker()
        while not stop.wait(PROGRESS_EVERY):
            jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
            stages = [tracker.getStageInfo(s) for job in jobs if job for s in job.stageIds]
            done = sum(s.numCompletedTasks for s in stages if s)
            tasks = sum(s.numTasks for s in stages if s)
            files = n_files * done // tasks if tasks else 0
            if files > told[0]:
                told[0] = files
                progress(files, n_files)

    # in the caller's context: a web framework finds its request's progress bar there
    context = contextvars.copy_context()
    watcher = threading.Thread(target=context.run, args=(poll,), name="dcm-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        sc.setLocalProperty("spark.jobGroup.id", before)  # type: ignore[arg-type]
    if told[0] < n_files:
        progress(n_files, n_files)
