"""cgroups for app instances: memory (limit, OOM detection), CPU (quota), pids (max).

:func:`detect` fingerprints the host once: **cgroup v2** where the memory, cpu and pids
controllers are available to us (a subtree the operator delegated with
``APPRT_CGROUP_ROOT``, or, as root, the hierarchy's root), else **cgroup v1** (one
hierarchy per controller, e.g. ``/sys/fs/cgroup/memory``), else none. On v1 our cgroups
are created *below the platform's own cgroup* in each hierarchy
(``<own cgroup>/<parent>/<instance>``), so an instance is accounted within whatever
contains the platform; on v2 below the chosen base (``<base>/<parent>/<instance>``).

An instance's :class:`Cgroup` is a set of directories (one per hierarchy on v1, one on
v2) persisted by path in the task handle, so a new platform process finds them again.
Processes join by pid (:meth:`Cgroup.add`), before they run app code.

Example::

    support = detect()
    if not support.usable:
        raise SystemExit(support.detail)          # says what to change
    cg = Cgroup.create(support, "apprt", "inst-1", memory_mb=256, cpu=0.5, pids=32)
    cg.add(pid)
    cg.stats()            # CgroupStats(memory_bytes=..., cpu_seconds=..., pids=...)
    cg.oom_kills()        # >0 once the kernel killed something for memory
    cg.remove()           # kills what is left, then rmdir
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from apprt.errors import ApprtError, Problem

CGROUP_FS = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
REQUIRED = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


class CgroupError(ApprtError):
    """cgroups cannot do what an instance needs on this host."""

    @classmethod
    def of(cls, reason: str, hint: str, location: str = "") -> CgroupError:
        return cls([Problem(reason=reason, location=location, hint=hint)], title="cgroups")


@dataclass(frozen=True)
class CgroupSupport:
    """What :func:`detect` found: the version in use and where our cgroups go."""

    version: Literal["v2", "v1", "none"]
    detail: str
    #: controller -> directory under which instance cgroups are created (parent excluded)
    bases: dict[str, Path] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.version != "none"

    def attributes(self) -> dict[str, str]:
        return {
            "cgroup.version": self.version,
            **{f"cgroup.{k}": str(v) for k, v in sorted(self.bases.items())},
        }


@dataclass(frozen=True)
class CgroupStats:
    memory_bytes: int
    memory_limit_bytes: int | None
    cpu_seconds: float
    pids: int


def _mounts() -> list[tuple[str, Path, set[str]]]:
    """(fstype, mount point, super options) of every cgroup mount, from mountinfo."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            parts, rparts = left.split(), right.split()
            if len(rparts) < 3 or rparts[0] not in ("cgroup", "cgroup2"):
                continue
            found.append((rparts[0], Path(parts[4]), set(rparts[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller, and under key ``""`` the v2 path."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name.removeprefix("name=")] = path
    return paths


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _detect_v2(explicit: Path | None) -> CgroupSupport | str:
    """Where we may create v2 cgroups with memory, cpu and pids: a delegated subtree
    (``explicit``), else the hierarchy's root (as root: the root cgroup is exempt from
    the "no processes in inner cgroups" rule, so our subtree can live beside the
    platform's own cgroup, e.g. a systemd service, whatever that one holds)."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    else:
        candidates += [mount for fstype, mount, _ in _mounts() if fstype == "cgroup2"]
    reasons = []
    for base in candidates:
        try:
            available = set((base / "cgroup.controllers").read_text().split())
        except OSError as exc:
            reasons.append(f"{base}: {exc.strerror}")
            continue
        missing = [c for c in REQUIRED if c not in available]
        if missing:
            reasons.append(
                f"{base}: controllers {', '.join(missing)} not available "
                f"(cgroup.controllers: {' '.join(sorted(available)) or 'empty'})"
            )
            continue
        if not _writable_dir(base):
            reasons.append(
                f"{base}: not writable by uid {os.getuid()} (run as root, or delegate a "
                "subtree to this user and set APPRT_CGROUP_ROOT to it)"
            )
            continue
        return CgroupSupport("v2", f"cgroup v2 at {base}", {"unified": base})
    return "; ".join(reasons) or "no cgroup2 mount"


def _detect_v1() -> CgroupSupport | str:
    own = _own_paths()
    bases: dict[str, Path] = {}
    for fstype, mount, options in _mounts():
        if fstype != "cgroup":
            continue
        for controller in V1_CONTROLLERS:
            if controller in options and controller in own and controller not in bases:
                bases[controller] = mount / own[controller].lstrip("/")
    missing = [c for c in REQUIRED if c not in bases]
    if missing:
        return f"cgroup v1 hierarchies missing for {', '.join(missing)}"
    if "cpuacct" not in bases:
        bases["cpuacct"] = bases["cpu"]  # co-mounted "cpu,cpuacct"
    unwritable = [str(p) for p in bases.values() if not _writable_dir(p)]
    if unwritable:
        return f"cgroup v1 not writable by uid {os.getuid()}: {', '.join(unwritable)}"
    return CgroupSupport(
        "v1", "cgroup v1 (" + ", ".join(sorted(bases)) + ")", dict(sorted(bases.items()))
    )


def detect(root: Path | None = None) -> CgroupSupport:
    """Find the cgroup version we can manage: v2 where delegated, else v1, else none.

    ``root`` (or ``$APPRT_CGROUP_ROOT``) names a cgroup2 directory delegated to the
    platform; without it v2 is used only when the platform runs in the root cgroup.
    """
    env_root = os.environ.get("APPRT_CGROUP_ROOT")
    explicit = root if root is not None else (Path(env_root) if env_root else None)
    v2 = _detect_v2(explicit)
    if isinstance(v2, CgroupSupport):
        return v2
    if explicit is not None:
        return CgroupSupport("none", f"APPRT_CGROUP_ROOT={explicit} is not usable: {v2}")
    v1 = _detect_v1()
    if isinstance(v1, CgroupSupport):
        return CgroupSupport("v1", f"{v1.detail}; v2 not usable: {v2}", v1.bases)
    return CgroupSupport(
        "none",
        f"no usable cgroups: v2: {v2}; v1: {v1}. Run the platform as root, or delegate a "
        "cgroup2 subtree with the memory, cpu and pids controllers to its user "
        "(systemd: Delegate=yes) and set APPRT_CGROUP_ROOT to it",
    )


def _write(path: Path, value: str) -> None:
    with path.open("w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def _keyed(path: Path) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


@dataclass
class Cgroup:
    """One instance's cgroup directories (``paths``: controller -> dir; v2: ``unified``)."""

    version: Literal["v1", "v2"]
    paths: dict[str, Path]

    # -- persistence ----------------------------------------------------------------
    def to_state(self) -> dict[str, object]:
        return {"version": self.version, "paths": {k: str(v) for k, v in self.paths.items()}}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Cgroup:
        version = state["version"]
        paths = state["paths"]
        assert version in ("v1", "v2") and isinstance(paths, dict)
        return cls(version, {str(k): Path(str(v)) for k, v in paths.items()})

    # -- creation -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        support: CgroupSupport,
        parent: str,
        name: str,
        *,
        memory_mb: int,
        cpu: float,
        pids: int,
    ) -> Cgroup:
        """Create (or reuse, emptied) ``<base>/<parent>/<name>`` and set its limits."""
        if support.version == "none":
            raise CgroupError.of(support.detail, "see the fix above, then restart the platform")
        paths: dict[str, Path] = {}
        try:
            if support.version == "v2":
                root = support.bases["unified"]
                base = root / parent
                if not base.exists():
                    # controllers flow down: enabled in the root's subtree first, then ours
                    with contextlib.suppress(OSError):
                        _write(root / "cgroup.subtree_control", "+memory +cpu +pids")
                    base.mkdir()
                    _write(base / "cgroup.subtree_control", "+memory +cpu +pids")
                path = base / name
                path.mkdir(exist_ok=True)
                paths["unified"] = path
            else:
                for controller, base in support.bases.items():
                    path = base / parent / name
                    path.mkdir(parents=True, exist_ok=True)
                    paths[controller] = path
            cg = cls(support.version, paths)
            cg.set_limits(memory_mb=memory_mb, cpu=cpu, pids=pids)
        except OSError as exc:
            raise CgroupError.of(
                f"cannot create the cgroup {name!r}: {exc}",
                "check that the cgroup hierarchy is mounted read-write and the platform "
                "runs as root (or owns a delegated subtree)",
                location=str(exc.filename or ""),
            ) from exc
        return cg

    @classmethod
    def at(cls, support: CgroupSupport, parent: str, name: str) -> Cgroup:
        """The cgroup ``<parent>/<name>`` (whether or not it exists)."""
        if support.version == "v2":
            return cls("v2", {"unified": support.bases["unified"] / parent / name})
        if support.version == "v1":
            return cls("v1", {k: b / parent / name for k, b in support.bases.items()})
        raise CgroupError.of(support.detail, "see the fix above, then restart the platform")

    def rename(self, name: str) -> None:
        """Rename the directories (cgroupfs allows it within a parent; members stay)."""
        renamed = {}
        for controller, path in self.paths.items():
            target = path.with_name(name)
            if path.exists() and path != target:
                path.rename(target)
            renamed[controller] = target
        self.paths = renamed

    def set_limits(self, *, memory_mb: int, cpu: float, pids: int) -> None:
        mem = memory_mb << 20
        quota = max(1000, int(cpu * CPU_PERIOD_US))
        if self.version == "v2":
            p = self.paths["unified"]
            _write(p / "memory.max", str(mem))
            with contextlib.suppress(OSError):
                _write(p / "memory.swap.max", "0")
            _write(p / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            _write(p / "pids.max", str(pids))
            return
        m = self.paths["memory"]
        memsw = m / "memory.memsw.limit_in_bytes"
        # v1 wants memory.limit <= memsw.limit at every step: raise memsw first, lower it last
        raising = mem > _read_int(m / "memory.limit_in_bytes")
        if raising and memsw.exists():
            with contextlib.suppress(OSError):
                _write(memsw, str(mem))
        _write(m / "memory.limit_in_bytes", str(mem))
        if not raising and memsw.exists():  # no swap beyond the memory limit
            with contextlib.suppress(OSError):
                _write(memsw, str(mem))
        c = self.paths["cpu"]
        _write(c / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(c / "cpu.cfs_quota_us", str(quota))
        _write(self.paths["pids"] / "pids.max", str(pids))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (host pid) into every hierarchy of this cgroup."""
        for path in dict.fromkeys(self.paths.values()):
            _write(path / "cgroup.procs", str(pid))

    # -- reading --------------------------------------------------------------------
    def procs(self) -> list[int]:
        path = self.paths["unified" if self.version == "v2" else "pids"]
        return [int(x) for x in _read(path / "cgroup.procs").split()]

    def exists(self) -> bool:
        return any(p.is_dir() for p in self.paths.values())

    def stats(self) -> CgroupStats:
        if self.version == "v2":
            p = self.paths["unified"]
            limit_text = _read(p / "memory.max").strip()
            return CgroupStats(
                memory_bytes=_read_int(p / "memory.current"),
                memory_limit_bytes=int(limit_text) if limit_text.isdigit() else None,
                cpu_seconds=_keyed(p / "cpu.stat").get("usage_usec", 0) / 1e6,
                pids=_read_int(p / "pids.current"),
            )
        m = self.paths["memory"]
        limit = _read_int(m / "memory.limit_in_bytes")
        return CgroupStats(
            memory_bytes=_read_int(m / "memory.usage_in_bytes"),
            memory_limit_bytes=limit if 0 < limit < 1 << 62 else None,
            cpu_seconds=_read_int(self.paths["cpuacct"] / "cpuacct.usage") / 1e9,
            pids=_read_int(self.paths["pids"] / "pids.current"),
        )

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer killed in this cgroup."""
        if self.version == "v2":
            return _keyed(self.paths["unified"] / "memory.events").get("oom_kill", 0)
        return _keyed(self.paths["memory"] / "memory.oom_control").get("oom_kill", 0)

    def pids_limited(self) -> int:
        """How many forks the pids limit refused."""
        path = self.paths["unified" if self.version == "v2" else "pids"] / "pids.events"
        return _keyed(path).get("max", 0)

    def throttled(self) -> int:
        """How many CPU periods the CPU limit throttled (``nr_throttled`` of cpu.stat)."""
        path = self.paths["unified" if self.version == "v2" else "cpu"] / "cpu.stat"
        return _keyed(path).get("nr_throttled", 0)

    # -- teardown -------------------------------------------------------------------
    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup (frozen first, so forks cannot race)."""
        if self.version == "v2":
            kill_file = self.paths["unified"] / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
        freezer = self.paths.get("freezer")
        deadline = time.monotonic() + timeout
        while True:
            # frozen, nobody can fork while we read the list; SIGKILL lands on thaw
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "FROZEN")
            try:
                pids = self.procs()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            finally:
                if freezer is not None:
                    with contextlib.suppress(OSError):
                        _write(freezer / "freezer.state", "THAWED")
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the directories (idempotent)."""
        if not self.exists():
            return
        self.kill(timeout)
        deadline = time.monotonic() + timeout
        for path in dict.fromkeys(self.paths.values()):
            while path.exists():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY until the last task is gone
                    if time.monotonic() > deadline:
                        raise CgroupError.of(
                            f"cannot remove cgroup {path}: {exc.strerror}",
                            "a process is still inside; find it with "
                            f"`cat {path}/cgroup.procs` and kill it",
                        ) from exc
                    time.sleep(0.01)


def remove_parent(support: CgroupSupport, parent: str) -> None:
    """Remove ``<base>/<parent>`` in every hierarchy if no instance cgroup is left in it."""
    for base in dict.fromkeys(support.bases.values()):
        with contextlib.suppress(OSError):
            (base / parent).rmdir()
