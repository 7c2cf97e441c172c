"""The Ingest tab's inputs (`dcm_spark.app.uploads`): uploads stay in the scratch folder
under safe names, folders only under an allowed root. No Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcm_spark.app import uploads
from dcm_spark.app.uploads import InputRefused, allowed_folder, safe_name, store_uploads


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CT_small.dcm", "CT_small.dcm"),
        ("../../etc/passwd", "passwd"),
        ("..", "upload"),
        (".", "upload"),
        ("/abs/path/x.dcm", "x.dcm"),
        ("C:\\scans\\CT 1.dcm", "CT_1.dcm"),
        ("a\x00b.dcm", "a_b.dcm"),
        (".hidden", "hidden"),
        ("séries.zip", "s_ries.zip"),
    ],
)
def test_safe_name_keeps_one_plain_component(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_uploads_are_copied_inside_the_scratch_folder(tmp_path: Path) -> None:
    sent = tmp_path / "sent"
    sent.mkdir()
    a, b = sent / "a", sent / "b"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    scratch = tmp_path / "scratch"
    folder = store_uploads([a, b], ["../../evil.dcm", "../evil.dcm"], scratch)
    assert folder.parent == scratch.resolve()
    assert sorted(p.name for p in folder.iterdir()) == ["evil-2.dcm", "evil.dcm"]
    assert (folder / "evil.dcm").read_bytes() == b"first"
    assert not (tmp_path / "evil.dcm").exists()


def test_upload_over_the_limit_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 4)
    big = tmp_path / "big"
    big.write_bytes(b"12345")
    with pytest.raises(InputRefused, match="refused: the upload is over 500 MB"):
        store_uploads([big], ["big.dcm"], tmp_path / "scratch")
    with pytest.raises(InputRefused, match="refused: no file uploaded"):
        store_uploads([], [], tmp_path / "scratch")


def test_folders_only_under_an_allowed_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "study").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (root / "link").symlink_to(tmp_path / "private")
    assert allowed_folder(str(root / "study"), [root]) == (root / "study").resolve()
    assert allowed_folder("study", [root]) == (root / "study").resolve()
    for outside in (str(tmp_path / "private"), str(root / ".." / "private"), "/etc", "../private"):
        with pytest.raises(InputRefused, match="refused: the folder is outside the allowed roots"):
            allowed_folder(outside, [root])
    with pytest.raises(InputRefused, match="outside the allowed roots"):
        allowed_folder(str(root / "link"), [root])  # a link out of the root is followed
    with pytest.raises(InputRefused, match="no folder may be read"):
        allowed_folder(str(root / "study"), [])
    with pytest.raises(InputRefused, match="no such file or folder"):
        allowed_folder(str(root / "nope"), [root])
