"""collect_wheels: pins, the wheel cache, pip download, and the closure check.

Everything but the one ``network`` test uses tiny fake wheels built here.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from apprt.errors import PackageError
from apprt.package import build_package, collect_wheels, default_cache_dir
from apprt.package import wheels as wheels_mod

from ._helpers import sample_files, write_tree


def fake_wheel(
    cache: Path,
    name: str,
    version: str,
    *requires: str,
    requires_python: str | None = None,
    tag: str = "py3-none-any",
) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    path = cache / f"{dist}-{tag}.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}.dist-info/METADATA", "\n".join(lines) + "\n\nLong description.\n")
        zf.writestr(f"{name.replace('-', '_')}/__init__.py", "")
    return path


def collect(reqs: list[str], cache: Path, dest: Path, **kw: object) -> list[str]:
    return [p.name for p in collect_wheels(reqs, dest, cache_dir=cache, offline=True, **kw)]  # type: ignore[arg-type]


def test_collects_from_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "app-dep", "1.0", "helper>=2")
    fake_wheel(cache, "helper", "2.1")
    fake_wheel(cache, "helper", "2.0")
    names = collect(["App_Dep==1.0", "helper==2.1"], cache, tmp_path / "out")
    assert names == ["app_dep-1.0-py3-none-any.whl", "helper-2.1-py3-none-any.whl"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)


def test_prefers_compatible_tags_and_ignores_foreign_wheels(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "native", "1.0", tag="cp27-cp27m-win32")
    with pytest.raises(PackageError, match=r"native==1.0 is not in the wheel cache"):
        collect(["native==1.0"], cache, tmp_path / "out")
    fake_wheel(cache, "native", "1.0", tag="py2.py3-none-any")
    assert collect(["native==1.0"], cache, tmp_path / "out") == ["native-1.0-py2.py3-none-any.whl"]


def test_missing_dependency_is_named_with_a_pin_hint(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "httpx", "0.27.2", "anyio>=3", "certifi")
    fake_wheel(cache, "certifi", "2024.8.30")
    fake_wheel(cache, "anyio", "4.6.2")  # in the cache, but not pinned
    with pytest.raises(PackageError) as excinfo:
        collect(["httpx==0.27.2", "certifi==2024.8.30"], cache, tmp_path / "out")
    [problem] = excinfo.value.problems
    assert problem.file == "httpx-0.27.2-py3-none-any.whl"
    assert "httpx==0.27.2 requires `anyio>=3`, which is not pinned" in problem.reason
    assert "pin it in [backend] requirements, e.g. `anyio==4.6.2`" in problem.hint
    assert not (tmp_path / "out").exists()  # nothing copied on failure


def test_missing_dependency_without_known_version(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "a", "1.0", "b")
    with pytest.raises(PackageError, match="not pinned") as excinfo:
        collect(["a==1.0"], cache, tmp_path / "out")
    assert "`b==<version>`" in excinfo.value.problems[0].hint


def test_conflicting_pin(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "a", "1.0", "b<2")
    fake_wheel(cache, "b", "2.5")
    fake_wheel(cache, "b", "1.9")
    with pytest.raises(PackageError, match=r"requires `b<2`, but b==2\.5 is pinned") as excinfo:
        collect(["a==1.0", "b==2.5"], cache, tmp_path / "out")
    assert "`b==1.9`" in excinfo.value.problems[0].hint


def test_markers_are_evaluated_for_the_target(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(
        cache,
        "a",
        "1.0",
        'legacy; python_version < "3.0"',
        'winonly; sys_platform == "win32" and sys_platform != "linux" and sys_platform != "darwin"',
        'tomli; python_version < "3.11"',
    )
    assert collect(["a==1.0"], cache, tmp_path / "o1") == ["a-1.0-py3-none-any.whl"]
    if sys.platform not in ("win32",):
        with pytest.raises(PackageError, match="tomli"):
            collect(["a==1.0"], cache, tmp_path / "o2", python_version="3.10")


def test_pins_with_markers_not_for_the_target_are_skipped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "a", "1.0")
    assert collect(["a==1.0", 'old==1.0; python_version < "3.0"'], cache, tmp_path / "o") == [
        "a-1.0-py3-none-any.whl"
    ]


def test_extras_are_followed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "a", "1.0", 'b; extra == "fast"', "c[speed]")
    fake_wheel(cache, "c", "1.0", 'd; extra == "speed"', 'e; extra == "other"')
    # Without the extra, b is not needed; c[speed] needs d.
    with pytest.raises(PackageError) as excinfo:
        collect(["a==1.0", "c==1.0"], cache, tmp_path / "o")
    assert [p.reason.split(" requires ")[1] for p in excinfo.value.problems] == [
        '`d; extra == "speed"`, which is not pinned'
    ]
    fake_wheel(cache, "d", "1.0")
    assert len(collect(["a==1.0", "c==1.0", "d==1.0"], cache, tmp_path / "o")) == 3
    with pytest.raises(PackageError, match='`b; extra == "fast"`, which is not pinned'):
        collect(["a[fast]==1.0", "c==1.0", "d==1.0"], cache, tmp_path / "o")


def test_requires_python(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "modern", "1.0", requires_python=">=3.99")
    with pytest.raises(PackageError, match=r"requires Python >=3\.99"):
        collect(["modern==1.0"], cache, tmp_path / "o")


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        ("six>=1.16", "exact pins"),
        ("six", "exact pins"),
        ("six==1.*", "exact pins"),
        ("six==1.16,<2", "exact pins"),
        ("six @ https://example.invalid/six.whl", "URL requirements"),
        ("not a requirement!", "not a valid requirement"),
    ],
)
def test_invalid_pins(tmp_path: Path, req: str, needle: str) -> None:
    with pytest.raises(PackageError, match=needle) as excinfo:
        collect([req], tmp_path / "cache", tmp_path / "o")
    assert excinfo.value.problems[0].location == req


def test_duplicate_pins(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="pinned twice"):
        collect(["six==1.16.0", "Six==1.16.0"], tmp_path / "cache", tmp_path / "o")


def test_offline_names_every_missing_wheel(tmp_path: Path) -> None:
    with pytest.raises(PackageError) as excinfo:
        collect(["six==1.16.0", "idna==3.7"], tmp_path / "cache", tmp_path / "o")
    text = str(excinfo.value)
    assert "six==1.16.0" in text and "idna==3.7" in text and "offline" in text


def test_corrupt_cached_wheel(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not a valid wheel"):
        collect(["broken==1.0"], cache, tmp_path / "o")


def test_downloads_only_missing_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "present", "1.0")
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        fake_wheel(Path(cmd[cmd.index("--dest") + 1]), "fetched", "2.0")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wheels_mod.subprocess, "run", fake_run)
    names = [
        p.name
        for p in collect_wheels(["present==1.0", "fetched==2.0"], tmp_path / "o", cache_dir=cache)
    ]
    assert names == ["present-1.0-py3-none-any.whl", "fetched-2.0-py3-none-any.whl"]
    [cmd] = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "--isolated" not in cmd
    assert cmd[-1] == "fetched==2.0" and "present==1.0" not in cmd
    # Second run: everything is cached, pip is not called again.
    collect_wheels(["present==1.0", "fetched==2.0"], tmp_path / "o", cache_dir=cache)
    assert len(calls) == 1


def test_pip_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(wheels_mod.subprocess, "run", fake_run)
    with pytest.raises(PackageError, match="No matching distribution"):
        collect_wheels(["nope==1.0"], tmp_path / "o", cache_dir=tmp_path / "cache")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APPRT_WHEEL_CACHE", str(tmp_path / "wc"))
    assert default_cache_dir() == tmp_path / "wc"
    monkeypatch.delenv("APPRT_WHEEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "apprt" / "wheels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "apprt" / "wheels"


def test_collected_wheels_build_into_a_package(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_wheel(cache, "a", "1.0")
    collect(["a==1.0"], cache, tmp_path / "wheels")
    src = write_tree(tmp_path / "app", sample_files())
    info = build_package(src, tmp_path / "p.apppkg", wheels_dir=tmp_path / "wheels")
    assert info.file("wheels/a-1.0-py3-none-any.whl") is not None


@pytest.mark.network
def test_real_download_of_a_small_pure_wheel(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    paths = collect_wheels(["six==1.16.0"], tmp_path / "out", cache_dir=cache)
    assert [p.name for p in paths] == ["six-1.16.0-py2.py3-none-any.whl"]
    assert (cache / "six-1.16.0-py2.py3-none-any.whl").is_file()
    assert zipfile.ZipFile(paths[0]).testzip() is None
