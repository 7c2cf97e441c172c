"""The app's page: four Gradio tabs (Schema, Query, Series, Ingest) over one `AppState`.

Every handler calls one `AppState` method and shows a `DcmSparkError` as one line in its
tab's status; nothing else is kept between requests. Components carry ``elem_id`` names
the browser tests use.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import gradio as gr

from dcm_spark.app.examples import cookbook
from dcm_spark.app.schema_view import CSS, schema_html
from dcm_spark.app.state import AppState, Result, one_line
from dcm_spark.app.uploads import MAX_UPLOAD_TEXT, allowed_folder, store_uploads
from dcm_spark.catalog import bigquery_schema
from dcm_spark.errors import DcmSparkError
from dcm_spark.ingest import IngestOptions, run

#: Fonts the browser has: the default theme would fetch Google's.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)
APP_CSS = CSS + "\n.dcm-error { color: #b91c1c; }"


def _error(exc: Exception) -> str:
    return f'<span class="dcm-error">{escape(str(exc))}</span>'


def _table(result: Result) -> dict[str, Any]:
    return {"headers": result.columns, "data": result.rows}


def build(state: AppState) -> gr.Blocks:
    """The page, its handlers bound to ``state``."""
    examples = cookbook()

    def title() -> str:
        state.refresh_if_changed()
        return f"**dcm-spark** · table `{state.table}` · {state.row_count()} instances"

    def render_schema(needle: str) -> str:
        schema = state.schema()
        if schema is None:
            return "<p>No table yet: ingest files in the Ingest tab.</p>"
        try:
            return schema_html(
                bigquery_schema(schema), state.fill_counts(), state.promotions(), needle
            )
        except DcmSparkError as exc:
            return _error(exc)

    def run_query(sql: str, dialect: str) -> tuple[str, Any, list[str] | None]:
        try:
            result = state.query(sql, dialect)
        except DcmSparkError as exc:
            return _error(exc), None, None
        files = [str(result.csv_path), str(result.parquet_path)]
        return result.note, _table(result), files

    def pick_example(name: str) -> tuple[str, str]:
        dialect, sql = examples.get(name, ("spark", ""))
        return sql, dialect

    def find_series(modality: str, since: str, until: str, text: str) -> tuple[str, Any]:
        try:
            result = state.series(modality or "", since or "", until or "", text or "")
        except DcmSparkError as exc:
            return _error(exc), None
        return result.note + " · select a row to list its instances", _table(result)

    def open_series(event: gr.SelectData) -> tuple[str, Any]:
        row = event.row_value or []
        uid = str(row[0]) if row else ""
        try:
            result = state.instances(uid)
        except DcmSparkError as exc:
            return _error(exc), None
        return f"{result.note} · select one to see its header", _table(result)

    def open_instance(table: Any, event: gr.SelectData) -> tuple[str, Any]:
        row = event.row_value or []
        columns = list(getattr(table, "columns", []))
        path = str(row[columns.index("_path")]) if "_path" in columns and row else ""
        try:
            return escape(path), state.header(path)
        except DcmSparkError as exc:
            return _error(exc), None

    def ingest(
        files: list[str] | None,
        folder: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way)
    ) -> tuple[str, str]:
        try:
            if files:
                names = [Path(f).name for f in files]
                source = store_uploads(files, names, state.scratch / "uploads")
            else:
                source = allowed_folder(folder or "", state.allow_roots)
        except DcmSparkError as exc:
            return _error(exc), title()

        def report(line: str) -> None:
            progress(None, desc=line[:80])

        def parsed(done: int, total: int) -> None:
            progress((done, total), desc="parsing", unit="files")

        try:
            options = IngestOptions((str(source),), state.table)
            summary = run(state.spark, options, report=report, progress=parsed)
        except (DcmSparkError, ValueError) as exc:
            return _error(exc), title()
        except Exception as exc:  # Spark or Delta failing: one line, never a traceback
            return _error(DcmSparkError(one_line(exc))), title()
        state.refresh()
        return summary.text(), title()

    with gr.Blocks(title="dcm-spark") as page:
        heading = gr.Markdown(elem_id="title")
        with gr.Tab("Schema", elem_id="tab-schema"):
            needle = gr.Textbox(
                label="Filter", placeholder="a name, tag or word", elem_id="schema-filter"
            )
            tree = gr.HTML(elem_id="schema-tree")
            needle.change(render_schema, needle, tree)
        with gr.Tab("Query", elem_id="tab-query"):
            with gr.Row():
                example = gr.Dropdown(
                    choices=list(examples), label="Cookbook", value=None, elem_id="example"
                )
                dialect = gr.Radio(
                    ["spark", "bigquery"], value="spark", label="Dialect", elem_id="dialect"
                )
            sql = gr.Textbox(
                label="SQL (views: dicom, dicom_typed, dicom_series, dicom_studies, "
                "dicom_all, dicom_errors, dicom_promotions)",
                lines=6,
                elem_id="sql",
            )
            go = gr.Button("Run", variant="primary", elem_id="run-query")
            status = gr.HTML(elem_id="query-status")
            result = gr.Dataframe(elem_id="query-result", interactive=False, wrap=True)
            downloads = gr.File(label="Download", file_count="multiple", elem_id="downloads")
            example.change(pick_example, example, [sql, dialect])
            go.click(run_query, [sql, dialect], [status, result, downloads])
            sql.submit(run_query, [sql, dialect], [status, result, downloads])
        with gr.Tab("Series", elem_id="tab-series"):
            with gr.Row():
                modality = gr.Dropdown(label="Modality", choices=[], elem_id="modality")
                since = gr.Textbox(label="From (YYYY-MM-DD)", elem_id="since")
                until = gr.Textbox(label="To (YYYY-MM-DD)", elem_id="until")
                text = gr.Textbox(label="Text", placeholder="description or UID", elem_id="text")
            search = gr.Button("Find series", elem_id="find-series")
            series_status = gr.HTML(elem_id="series-status")
            series = gr.Dataframe(elem_id="series", interactive=False)
            instances = gr.Dataframe(elem_id="instances", interactive=False)
            header_path = gr.HTML(elem_id="header-path")
            header = gr.JSON(label="Header", elem_id="header", open=True)
            search.click(find_series, [modality, since, until, text], [series_status, series])
            series.select(open_series, None, [series_status, instances])
            instances.select(open_instance, instances, [header_path, header])
        with gr.Tab("Ingest", elem_id="tab-ingest"):
            roots = ", ".join(f"`{r}`" for r in state.allow_roots)
            gr.Markdown(
                f"Upload DICOM files or a .zip (at most {MAX_UPLOAD_TEXT} together)"
                + (f", or name a folder under {roots}" if roots else "")
                + ". New and changed files are added to the table."
                + ("" if roots else " (Folders: start the app with `--allow-root DIR`.)")
            )
            uploads = gr.File(label="Files", file_count="multiple", elem_id="upload")
            folder = gr.Textbox(label="or a folder", elem_id="folder")
            start = gr.Button("Ingest", variant="primary", elem_id="ingest")
            summary = gr.HTML(elem_id="ingest-summary")
            start.click(ingest, [uploads, folder], [summary, heading]).then(
                render_schema, needle, tree
            ).then(lambda: gr.Dropdown(choices=state.modalities()), None, modality)

        page.load(title, None, heading).then(render_schema, needle, tree).then(
            lambda: gr.Dropdown(choices=state.modalities()), None, modality
        )
    return page
