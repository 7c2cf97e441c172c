"""Serve the app's page: Gradio's server on one host and port, never a share link, uploads
capped, files served only from the app's scratch folder."""

from __future__ import annotations

from typing import Any

from dcm_spark.app.state import AppState
from dcm_spark.app.ui import APP_CSS, THEME, build
from dcm_spark.app.uploads import MAX_UPLOAD_BYTES


def launch(
    state: AppState, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True
) -> Any:
    """Start the server; return the Gradio ``Blocks`` (``.close()`` stops it) when
    ``block`` is false, else serve until interrupted."""
    # pyspark logs a failed query's message with the text the user typed: not in this log
    # (its own logger class: a plain logger by that name would break pyspark's errors)
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True
    page = build(state)
    page.queue(default_concurrency_limit=4)
    page.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        max_file_size=MAX_UPLOAD_BYTES,
        # results are copied into Gradio's cache when returned; uploads are never served
        blocked_paths=[str(state.scratch / "uploads")],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        footer_links=[],
        prevent_thread_lock=not block,
        quiet=True,
        theme=THEME,
        css=APP_CSS,
    )
    return page
