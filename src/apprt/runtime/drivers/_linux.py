"""Linux system calls the bwrap driver needs and Python 3.11's ``os`` lacks (ctypes).

* :func:`open_tree_clone`: a detached copy of a directory's mount tree
  (``open_tree(OPEN_TREE_CLONE)``), optionally read-only, nosuid, nodev, noexec
  (``mount_setattr``). The descriptor is handed to the sandbox, which attaches it with
  ``move_mount``: the sandbox never needs a path to (or permission on) the host
  directory's parents.
* :func:`user_namespace`: a user namespace with the sandbox uid/gid map, for
  ``bwrap --userns``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import time
from pathlib import Path

from apprt.runtime.drivers.base import DriverError

_libc = ctypes.CDLL(None, use_errno=True)

SYS_OPEN_TREE = 428
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _errno_error(what: str, path: Path) -> DriverError:
    err = ctypes.get_errno()
    return DriverError(
        f"{what} of {path} failed: {os.strerror(err)}; the bwrap driver needs Linux >= 5.12 "
        "(open_tree, mount_setattr) and root"
    )


def open_tree_clone(
    path: Path, *, readonly: bool, noexec: bool = False, recursive: bool = True
) -> int:
    """A detached clone of ``path``'s mount tree, with nosuid+nodev (and ro/noexec)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd: int = _libc.syscall(
        ctypes.c_long(SYS_OPEN_TREE),
        ctypes.c_int(AT_FDCWD),
        str(path).encode(),
        ctypes.c_uint(flags),
    )
    if fd < 0:
        raise _errno_error("open_tree", path)
    attr = _MountAttr(
        attr_set=MOUNT_ATTR_NOSUID
        | MOUNT_ATTR_NODEV
        | (MOUNT_ATTR_RDONLY if readonly else 0)
        | (MOUNT_ATTR_NOEXEC if noexec else 0)
    )
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(fd),
        b"",
        ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if result != 0:
        error = _errno_error("mount_setattr", path)
        os.close(fd)
        raise error
    return fd


def user_namespace(uid_map: str, gid_map: str, timeout: float = 5.0) -> int:
    """A new user namespace with these maps; returns an ``O_RDONLY`` descriptor to it.

    A helper (``unshare --user sleep``) creates the namespace; we write its maps (as
    root we may map any range) and keep a descriptor, then end the helper. The
    namespace lives on as long as a descriptor or a process uses it.
    """
    own = Path("/proc/self/ns/user").stat().st_ino
    try:
        helper = subprocess.Popen(
            ["unshare", "--user", "--", "sleep", "60"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise DriverError(
            "`unshare` (util-linux) is not installed; install it: apt-get install util-linux"
        ) from exc
    try:
        ns = Path(f"/proc/{helper.pid}/ns/user")
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError):
                if ns.stat().st_ino != own:
                    break
            if helper.poll() is not None or time.monotonic() > deadline:
                err = helper.stderr.read().decode() if helper.stderr else ""
                raise DriverError(
                    f"cannot create a user namespace: {err.strip() or 'timed out'}; check "
                    "/proc/sys/user/max_user_namespaces (> 0) and that the platform runs as root"
                )
            time.sleep(0.0005)
        Path(f"/proc/{helper.pid}/uid_map").write_text(uid_map)
        Path(f"/proc/{helper.pid}/gid_map").write_text(gid_map)
        return os.open(ns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DriverError(f"cannot set up the sandbox user namespace: {exc}") from exc
    finally:
        helper.kill()
        helper.wait()
        if helper.stderr:
            helper.stderr.close()
