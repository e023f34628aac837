"""The sandbox driver interface, modelled on HashiCorp Nomad's task drivers.

A driver runs one *task*, an app instance: the app's ASGI backend served on a Unix
socket (``<run_dir>/ingress.sock``), with the platform API reachable on a second
one (``<run_dir>/platform.sock``). Those two sockets are the only doors. The
supervisor calls the driver; the driver never decides what should run.

Lifecycle of a task as the supervisor sees it::

    handle = driver.start(config)        # sandbox up; returns once ingress.sock accepts
    driver.inspect(handle)               # running? pid, exit
    driver.stats(handle)                 # memory, cpu, pids from cgroups
    driver.stop(handle, timeout=5)       # SIGTERM, then SIGKILL after timeout
    driver.wait(handle, timeout=1)       # exit result once it has stopped
    driver.destroy(handle)               # kill if needed, remove cgroups and run dir

    # after a platform restart, with handles reloaded from the database:
    driver.recover(handle)               # True: re-adopted, still running

Every handle is plain JSON-serializable data so the supervisor can persist it and
recover tasks it did not start in this process.

Contract details the supervisor can rely on:

* ``start`` returns only once ``<run_dir>/ingress.sock`` accepts connections; it raises
  :class:`DriverError` (message: what, where, how to fix) when the task cannot start
  or dies before listening (the tail of its log is in the message).
* ``run_dir`` is created by the driver if missing and made writable by the sandbox's
  user; the platform API socket is expected at ``<run_dir>/platform.sock`` (the app sees
  it as ``$APPRT_PLATFORM_SOCKET``). Whoever creates it must make it connectable by
  ``handle.state["uid"]`` (chown it to that uid, or mode 0666).
* The task's stdout and stderr are appended to ``config.log_path`` (opened
  ``O_APPEND`` by the driver, written by the sandbox, so it outlives a platform
  restart); ``None`` discards them.
* ``wait``/``inspect`` work for tasks adopted by ``recover`` too. The exit status of a
  task that ended while no platform process was watching may be unknown
  (``ExitResult(exit_code=None, signal=None, reason=...)``).
* ``stats`` on a task that has exited returns zeros rather than raising.
* ``destroy`` is idempotent; ``stop`` on an exited task is a no-op.
* All methods are blocking and thread-safe; call them from a worker thread
  (``asyncio.to_thread``) in async code.
* ``data_dir`` may become a mount point while the task exists: the bwrap driver mounts
  the instance's quota volume (``<data_dir>.ext4``) on it and unmounts it in
  ``destroy``. Back up or delete an instance's data only after ``destroy``, and delete
  ``<data_dir>.ext4`` with it.
* ``limit_events(handle)`` counts how often each limit struck the task since it started
  (:data:`LIMIT_KINDS` the driver can see: ``memory`` OOM kills, ``pids`` refused forks,
  ``cpu`` throttled periods, ``storage`` times the data volume was found full). The
  counts never decrease for one handle; a driver that sees nothing returns ``{}`` (the
  default). The supervisor polls it on its watch tick and records the increases.
* ``capabilities()`` says which limits the driver can enforce here; the supervisor
  refuses to deploy an untrusted app whose resources need one it lacks
  (:func:`missing_capabilities`), unless the driver's ``allow_untrusted`` is set (the
  operator's choice, e.g. ``APPRT_ALLOW_UNTRUSTED_PROCESS_DRIVER``).
* Drivers may offer more than this interface (the bwrap driver: ``shutdown()`` to stop
  its fork server, ``storage_bytes(handle)`` for the data volume's usage, module-level
  ``from_settings(settings)``); use them with ``getattr``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprt.manifest import Resources

#: Limits whose hits are recorded (:meth:`Driver.limit_events` reports the first four,
#: the gateway ``request_timeout``, the egress proxy ``egress``), with what each means.
LIMIT_KINDS: dict[str, str] = {
    "memory": "killed by the OOM killer at the memory limit (resources.memory_mb)",
    "pids": "a fork or thread refused by the process limit (resources.max_processes)",
    "cpu": "throttled at the CPU share (resources.cpu)",
    "storage": "the data volume is full (resources.storage_mb)",
    "request_timeout": "a request cut at its time limit, 504 (resources.request_timeout_s)",
    "egress": "an outbound connection refused by the egress proxy (network grants)",
}


class DriverError(RuntimeError):
    """The driver cannot do what was asked; the message says why and what to change."""


@dataclass(frozen=True)
class Capabilities:
    """What isolation and limits a driver can enforce on this kind of host."""

    filesystem_isolation: bool
    network_isolation: bool
    pid_isolation: bool
    seccomp: bool
    memory_limit: bool
    cpu_limit: bool
    pids_limit: bool
    storage_quota: bool
    recover: bool

    def enforced(self) -> list[str]:
        return [name for name, value in vars(self).items() if value]


def missing_capabilities(capabilities: Capabilities, resources: Resources) -> list[str]:
    """What an untrusted app with ``resources`` needs that ``capabilities`` lacks.

    Every untrusted app needs the sandbox (file system, network, pid isolation, seccomp)
    and its memory, CPU and process limits; a quota too when it has a data directory
    (``storage_mb > 0``; 0 means a read-only one).
    """
    needed = [
        "filesystem_isolation",
        "network_isolation",
        "pid_isolation",
        "seccomp",
        "memory_limit",
        "cpu_limit",
        "pids_limit",
    ]
    if resources.storage_mb > 0:
        needed.append("storage_quota")
    return [name for name in needed if not getattr(capabilities, name)]


@dataclass(frozen=True)
class Fingerprint:
    """Whether the driver can run here, and the facts it found (cgroup version...)."""

    healthy: bool
    detail: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskConfig:
    """Everything a driver needs to start one app instance."""

    instance_id: str  # unique, [a-z0-9-], used in cgroup and directory names
    app_id: str
    version: str
    org: str | None  # None for a shared-tenancy deployment
    code_dir: Path  # the unpacked package, mounted read-only (backend/ on sys.path)
    entry: str  # ASGI app "module:attr"
    env_dir: Path | None  # per-version virtualenv site-packages, read-only; None if no deps
    data_dir: Path  # writable, per instance, quota = resources.storage_mb
    run_dir: Path  # holds ingress.sock and platform.sock
    resources: Resources
    env: dict[str, str] = field(default_factory=dict)  # extra, already scrubbed
    trusted: bool = False  # the process driver only runs trusted apps unless allowed
    log_path: Path | None = None  # stdout+stderr appended here (O_APPEND); None: discarded


@dataclass
class TaskHandle:
    """A running task, as persisted by the supervisor (JSON-serializable ``state``)."""

    instance_id: str
    driver: str
    pid: int
    started_at: float  # time.time()
    state: dict[str, Any] = field(default_factory=dict)  # driver-specific

    @property
    def ingress_socket(self) -> Path:
        return Path(self.state["run_dir"]) / "ingress.sock"


@dataclass(frozen=True)
class ExitResult:
    exit_code: int | None
    signal: int | None
    oom_killed: bool = False
    reason: str = ""


@dataclass(frozen=True)
class TaskStatus:
    running: bool
    pid: int
    exit: ExitResult | None = None


@dataclass(frozen=True)
class TaskStats:
    memory_bytes: int
    memory_limit_bytes: int | None
    cpu_seconds: float
    pids: int


class Driver(abc.ABC):
    """One way of running sandboxes (``bwrap``, ``process``, later ``kubernetes``)."""

    name: str
    #: The operator lets this driver run untrusted apps whose limits it cannot enforce.
    allow_untrusted: bool = False

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abc.abstractmethod
    def fingerprint(self) -> Fingerprint: ...

    @abc.abstractmethod
    def start(self, config: TaskConfig) -> TaskHandle:
        """Start the task; return once its ingress socket accepts connections."""

    @abc.abstractmethod
    def wait(self, handle: TaskHandle, timeout: float | None = None) -> ExitResult | None:
        """The exit result, waiting up to ``timeout`` seconds; None if still running."""

    @abc.abstractmethod
    def stop(self, handle: TaskHandle, timeout: float = 5.0) -> None:
        """Ask the task to stop (SIGTERM), killing it after ``timeout`` seconds."""

    @abc.abstractmethod
    def destroy(self, handle: TaskHandle) -> None:
        """Kill the task if needed and release everything it held (cgroups, run dir)."""

    @abc.abstractmethod
    def inspect(self, handle: TaskHandle) -> TaskStatus: ...

    @abc.abstractmethod
    def stats(self, handle: TaskHandle) -> TaskStats: ...

    @abc.abstractmethod
    def recover(self, handle: TaskHandle) -> bool:
        """Re-adopt a task started by a previous platform process; False if it is gone."""

    def limit_events(self, handle: TaskHandle) -> dict[str, int]:
        """How often each limit struck the task since it started, by kind (see module doc)."""
        return {}

    def prepare(self, config: TaskConfig) -> None:  # noqa: B027 - optional hook
        """Optional: warm whatever makes a later ``start(config)`` fast (e.g. a zygote).

        Safe to call any number of times; the default does nothing. The supervisor may
        call it when an app is installed or suspended, so that waking it is fast.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release this driver object's own resources (connections, threads).

        Running tasks are *not* stopped: a new driver object recovers them.
        """
