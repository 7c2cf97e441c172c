"""DICOMweb servers as inputs: QIDO-RS lists the instances, WADO-RS metadata gives their
headers. Pure Python (the standard library's HTTP client), no Spark: the workers run it.

An input ``dicomweb+http://host:port/dicom-web`` (or ``dicomweb+https://``), optionally with
a QIDO-RS study query (``?StudyDate=20200101-20201231&ModalitiesInStudy=CT``), names every
instance of the studies the query finds. Each instance is listed as
``dicomweb+http://host:port/dicom-web/studies/{study}/series/{series}/instances/{sop}``
with size and mtime 0 (DICOMweb has neither): the URL, with its SOPInstanceUID, is the key.

An instance's row is the row of its file (`dcm_spark.dicom.header.read_header`): the
DICOM JSON (PS3.18 F.2) is written as a Part 10 stream (explicit VR little endian, text in
UTF-8) and read by the files' converter, so one set of rules types every value. What the
JSON cannot give differs:

- no file meta (group 0002) columns: DICOMweb does not carry them;
- DS and IS values are JSON numbers, so their text is the number's shortest form ("5" for
  "5.000000", "0.7" for ".70"): the same number, not the same characters;
- ``_BulkData``: binary elements have no offset in a file; their ``Offset`` is null,
  ``Length`` is null unless the JSON holds the value, and ``URI`` is the BulkDataURI
  (null when the server gives the value inline). Bulk data is never fetched.

Connections are kept alive, one per server and thread, and opened again when the server
has closed them. The listing asks for the series of several studies, and the instances of
several series, at once (`QUERIES` in flight); a task fetches the metadata of its next
instances while it converts one (`dcm_spark.sources.ahead`).
"""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dcm_spark.dicom.budget import time_budget
from dcm_spark.dicom.header import FileError
from dcm_spark.dicom.json_model import BULK_URI_ELEMENT, BULK_URI_TYPE, MalformedMetadata, to_header
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.dicom.options import HeaderOptions
from dcm_spark.dicom.rows import Header
from dcm_spark.errors import DcmSparkError, safe_message
from dcm_spark.sources import is_dicomweb

PREFIX = "dicomweb+"
ACCEPT = "application/dicom+json"
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
#: QIDO-RS queries the listing keeps in flight (a server answers several at once).
QUERIES = 8


class DicomWebError(DcmSparkError, OSError):
    """A DICOMweb server could not be reached, or answered with an error."""


# -- HTTP ------------------------------------------------------------------------------

_local = threading.local()  # (scheme, host:port) -> an open connection, per thread


def _connection(scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
    pool: dict[tuple[str, str], http.client.HTTPConnection] = _local.__dict__.setdefault("pool", {})
    conn = pool.get((scheme, netloc))
    if conn is None:
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = pool[scheme, netloc] = kind(netloc, timeout=timeout)
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    return conn


def _drop(scheme: str, netloc: str) -> None:
    conn = _local.__dict__.get("pool", {}).pop((scheme, netloc), None)
    if conn is not None:
        conn.close()


def _get(url: str, timeout: float) -> tuple[Any, http.client.HTTPResponse]:
    """GET ``url`` (http or https) as DICOM JSON: (the parsed body, the response).

    A kept-alive connection the server has closed meanwhile is opened again, once.

    Raises
    ------
    DicomWebError
        On an HTTP status other than 200 or 204 (the message names the URL and status).
    OSError, http.client.HTTPException, ValueError
        When the server cannot be reached, breaks HTTP, or its answer is not JSON.
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in (1, 2):
        conn = _connection(parts.scheme, parts.netloc, timeout)
        reused = conn.sock is not None
        try:
            conn.request("GET", target, headers={"Accept": ACCEPT})
            response = conn.getresponse()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            _drop(parts.scheme, parts.netloc)
            if reused and attempt == 1:
                continue  # the server closed an idle connection: once more on a new one
            raise exc from None
        except BaseException:  # a timeout (or FileTimeout) leaves the connection unusable
            _drop(parts.scheme, parts.netloc)
            raise
        if response.will_close:
            _drop(parts.scheme, parts.netloc)
        break
    if response.status == 204:  # "no content": a query that found nothing
        return [], response
    if response.status != 200:
        raise DicomWebError(f"HTTP {response.status} {response.reason} from {url}")
    return json.loads(body), response


# -- listing (QIDO-RS) -------------------------------------------------------------------


def _endpoint(uri: str) -> tuple[str, str]:
    """(the server's http(s) base URL, the study query) of a ``dicomweb+`` input."""
    if not is_dicomweb(uri):
        raise ValueError(f"not a DICOMweb URI (dicomweb+http:// or dicomweb+https://): {uri}")
    base, _, query = uri[len(PREFIX) :].partition("?")
    return base.rstrip("/"), query


def _query(url: str, query: str, timeout: float) -> list[dict[str, Any]]:
    """All results of a QIDO-RS query. A server that returns fewer results than it found
    says so in a ``Warning: 299`` header (PS3.18, QIDO-RS responses): the next page is
    asked for with ``offset``, unless the query sets ``limit`` or ``offset`` itself."""
    names = {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)}
    paged = not names & {"limit", "offset"}
    results: list[dict[str, Any]] = []
    while True:
        page_query = query
        if results:  # the query as given, then where the next page starts
            page_query = f"{query}&offset={len(results)}" if query else f"offset={len(results)}"
        page_url = f"{url}?{page_query}" if page_query else url
        try:
            page, response = _get(page_url, timeout)
        except DicomWebError:
            raise
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = safe_message(exc) or type(exc).__name__
            raise DicomWebError(f"cannot query {page_url}: {reason}") from None
        if not isinstance(page, list):
            raise DicomWebError(f"not a list of DICOM JSON data sets from {page_url}")
        results += page
        warning = response.getheader("Warning") or ""
        if not (paged and page and warning.lstrip().startswith("299")):
            return results


def _uid(ds: dict[str, Any], tag: str, url: str) -> str:
    try:
        value = ds[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        raise DicomWebError(f"a result without ({tag[:4]},{tag[4:]}) from {url}") from None
    if not isinstance(value, str) or not value or "/" in value or "?" in value:
        raise DicomWebError(f"an unusable ({tag[:4]},{tag[4:]}) in a result from {url}")
    return value


def list_instances(uri: str, *, timeout: float = 30) -> list[tuple[str, int, int]]:
    """Every instance of the studies a DICOMweb input names, as (path, size, mtime).

    QIDO-RS: ``GET {base}/studies?{query}``, then the series of each study, then the
    instances of each series.

    Parameters
    ----------
    uri
        ``dicomweb+http(s)://host:port/root``, optionally with a study query string.
    timeout
        Seconds each request may wait for the server.

    Returns
    -------
    list of (str, int, int)
        ``(dicomweb+http(s)://.../studies/{study}/series/{series}/instances/{sop}, 0, 0)``,
        sorted by path, each once.

    Raises
    ------
    DicomWebError
        If the server cannot be reached, answers with an HTTP error or not with DICOM JSON.
    """
    base, query = _endpoint(uri)
    studies_url = f"{base}/studies"

    def series_in(study: dict[str, Any]) -> list[str]:
        series_url = f"{studies_url}/{_uid(study, STUDY_UID, studies_url)}/series"
        return [
            f"{series_url}/{_uid(series, SERIES_UID, series_url)}/instances"
            for series in _query(series_url, "", timeout)
        ]

    def instances_in(instances_url: str) -> list[str]:
        return [
            f"{PREFIX}{instances_url}/{_uid(instance, SOP_UID, instances_url)}"
            for instance in _query(instances_url, "", timeout)
        ]

    studies = _query(studies_url, query, timeout)
    with ThreadPoolExecutor(QUERIES, thread_name_prefix="dcm-spark-qido") as pool:
        all_series = [url for urls in pool.map(series_in, studies) for url in urls]
        found = {path for paths in pool.map(instances_in, all_series) for path in paths}
    return [(path, 0, 0) for path in sorted(found)]


# -- one instance (WADO-RS metadata) -----------------------------------------------------


def _metadata_url(uri: str) -> str:
    if not is_dicomweb(uri):
        raise ValueError("not a DICOMweb instance URI")
    return uri[len(PREFIX) :] + "/metadata"


def fetch_metadata(uri: str, *, timeout: float = 30) -> Any:
    """The WADO-RS metadata of one instance listed by `list_instances`, as parsed JSON
    (what `read_instance` converts; raises what it turns into an error record)."""
    found, _ = _get(_metadata_url(uri), timeout)
    return found


def series_of(uri: str) -> str:
    """The series of an instance listed by `list_instances` (``.../series/{series}``)."""
    return uri.rpartition("/instances/")[0]


def fetch_series_metadata(series: str, *, timeout: float = 30) -> dict[str, Any]:
    """The WADO-RS metadata of every instance of a series (`series_of`), by
    SOPInstanceUID: one request where each instance's own would be one each (a data set
    without a usable SOPInstanceUID is left out)."""
    url = series[len(PREFIX) :] + "/metadata"
    found, _ = _get(url, timeout)
    if not isinstance(found, list):
        raise MalformedMetadata(f"not a list of data sets from {url}")
    by_sop: dict[str, Any] = {}
    for ds in found:
        try:
            sop = ds[SOP_UID]["Value"][0]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(sop, str):
            by_sop[sop] = ds
    return by_sop


def read_instance(
    uri: str,
    options: HeaderOptions,
    memo: ValueMemo | None = None,
    *,
    timeout: float = 30,
    fetched: Future[Any] | None = None,
) -> Header | FileError:
    """The row of one instance listed by `list_instances`, from its WADO-RS metadata.

    Parameters
    ----------
    uri
        ``dicomweb+http(s)://.../studies/{study}/series/{series}/instances/{sop}``.
    options
        Conversion policy, as for files; ``time_budget`` bounds the request too (with
        ``fetched``: the wait for it).
    memo
        Values converted before (`ValueMemo`), shared by the instances of one task.
    timeout
        Seconds the request may wait for the server.
    fetched
        `fetch_metadata` of ``uri`` running ahead (`dcm_spark.sources.ahead`), or None:
        fetched here.

    Returns
    -------
    Header or FileError
        The row (the file's, but see the module docstring), or why there is none: the
        message names the URL and the HTTP status or the error, never a value.
    """
    url = uri[len(PREFIX) :] + "/metadata" if is_dicomweb(uri) else ""
    try:
        with time_budget(options.time_budget):
            found = fetch_metadata(uri, timeout=timeout) if fetched is None else fetched.result()
            if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], dict):
                count = len(found) if isinstance(found, list) else 0
                raise MalformedMetadata(f"{count} data sets instead of one from {url}")
            return to_header(found[0], options, memo, base_url=url)
    except DicomWebError as exc:
        return FileError(uri, type(exc).__name__, safe_message(exc))
    except json.JSONDecodeError:
        return FileError(uri, "MalformedMetadata", f"not JSON from {url}")
    except Exception as exc:
        return FileError(uri, type(exc).__name__, f"{safe_message(exc)} ({url})")


__all__ = [
    "BULK_URI_ELEMENT",
    "BULK_URI_TYPE",
    "DicomWebError",
    "MalformedMetadata",
    "fetch_metadata",
    "fetch_series_metadata",
    "is_dicomweb",
    "list_instances",
    "read_instance",
    "series_of",
    "to_header",
]
