"""The architecture the tree promises: the DICOM half and the workers' code never import
Spark, and every library module says its one job in its docstring's first line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parent.parent / "dcm_spark"


@pytest.mark.parametrize(
    "module",
    [
        "dcm_spark.dicom.header",
        "dcm_spark.dicom.deidentify",
        "dcm_spark.tasks",
        "dcm_spark.delta.datafiles",
        "dcm_spark.records",
        "dcm_spark.sources",
        "dcm_spark.sources.archives",
        "dcm_spark.sources.dicomweb",
    ],
)
def test_worker_side_modules_import_no_pyspark(module: str) -> None:
    """Imported in a fresh interpreter: ``sys.modules`` then holds no pyspark module."""
    probe = f"import sys, {module}; print(sorted(m for m in sys.modules if 'pyspark' in m))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_every_dicom_module_is_free_of_pyspark_imports() -> None:
    """Below dcm_spark/dicom/, not even a function-level import of pyspark."""
    found = []
    for path in sorted((LIBRARY / "dicom").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("pyspark", "py4j")]
    assert found == []


@pytest.mark.parametrize(
    "path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(LIBRARY))
)
def test_each_module_says_its_job_and_stays_small(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{path.name} has no docstring"
    if not path.name.startswith("_"):  # generated tables (`_annex_e.py`) may be long
        assert len(path.read_text().splitlines()) <= 500
