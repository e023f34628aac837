from __future__ import annotations

import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from apprt.blobs.local import LocalBlobStore
from apprt.install.artifacts import ArtifactStore
from apprt.install.environments import EnvironmentBuildError, EnvironmentStore, environment_key
from tests.conftest import CliResult

EXAMPLES = Path(__file__).parents[2] / "examples"


def _packed(apprt: Callable[..., CliResult], tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.apppkg"
    assert apprt("app", "pack", EXAMPLES / name, "-o", out).exit_code == 0
    return out


def test_unpacked_once_read_only_and_shared(
    apprt: Callable[..., CliResult], tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    with _packed(apprt, tmp_path, "crm-connector").open("rb") as fh:
        ref = blobs.put(fh)
    store = ArtifactStore(tmp_path / "apps")
    tree = store.ensure(blobs, ref.digest)
    assert (tree / "backend" / "crm_connector" / "main.py").is_file()
    assert not (tree / "app.toml").stat().st_mode & stat.S_IWUSR
    assert store.ensure(blobs, ref.digest) == tree  # idempotent, same tree for everyone
    # Mode bits (root ignores them; the sandbox's read-only mount is what binds apps).
    assert stat.S_IMODE((tree / "backend").stat().st_mode) == 0o555
    store.remove(ref.digest)
    assert not tree.exists()


@pytest.mark.network  # the wheels come from the pack cache, fetched on a first run
def test_environment_built_offline_from_vendored_wheels(
    apprt: Callable[..., CliResult], tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    with _packed(apprt, tmp_path, "sales-dashboard").open("rb") as fh:
        ref = blobs.put(fh)
    tree = ArtifactStore(tmp_path / "apps").ensure(blobs, ref.digest)
    wheels = sorted((tree / "wheels").glob("*.whl"))
    envs = EnvironmentStore(tmp_path / "envs", tmp_path / "uv-cache")
    env = envs.ensure(wheels)
    assert env is not None and env.root.name == environment_key(wheels)
    assert (env.site_packages / "starlette").is_dir()
    again = envs.ensure(list(reversed(wheels)))  # order does not matter: same key, no rebuild
    assert again == env
    probe = subprocess.run(
        [str(env.root / "bin" / "python"), "-I", "-c", "import starlette, anyio; print('ok')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "ok", probe.stderr
    assert envs.ensure([]) is None


def test_broken_wheel_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "broken-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    envs = EnvironmentStore(tmp_path / "envs", tmp_path / "uv-cache")
    with pytest.raises(EnvironmentBuildError) as info:
        envs.ensure([bad])
    assert info.value.problems[0].location == "backend.requirements"
    assert list((tmp_path / "envs").iterdir()) == []
