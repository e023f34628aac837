from __future__ import annotations

from pathlib import Path

import pytest

from apprt.errors import ApprtError
from apprt.manifest import load_manifest
from apprt.scaffold import TEMPLATE_DIR, create_app


def test_renders_every_placeholder(tmp_path: Path) -> None:
    app = create_app(tmp_path / "my-app", app_id="org.acme.my-app", publisher="acme")
    files = [p for p in app.rglob("*") if p.is_file()]
    assert all(not p.name.endswith(".tmpl") for p in files)
    assert all("{{" not in p.read_text() for p in files)
    assert (app / "backend" / "my_app" / "main.py").is_file()
    assert (app / ".gitignore").is_file()
    manifest = load_manifest(app)
    assert (manifest.id, manifest.publisher) == ("org.acme.my-app", "acme")
    assert manifest.backend is not None and manifest.backend.entry == "my_app.main:app"


def test_template_files_all_end_in_tmpl() -> None:
    assert all(p.name.endswith(".tmpl") for p in TEMPLATE_DIR.rglob("*") if p.is_file())


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Path, target: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "rename", boom)
    with pytest.raises(OSError, match="disk full"):
        create_app(tmp_path / "app")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["App", "1app", "my_app", "a" * 70, "my app"])
def test_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ApprtError, match="cannot name an app"):
        create_app(tmp_path / name)
