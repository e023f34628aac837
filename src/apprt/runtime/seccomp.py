"""Seccomp filters for sandboxes: a small classic-BPF program assembled with ``struct``.

Two filters, stacked (the kernel applies every filter a process has loaded):

:data:`BASE_DENY`
    Loaded by bubblewrap (``bwrap --seccomp FD``) on the whole sandbox, the platform's
    fork server included. It denies what no sandboxed process ever needs: ptrace and
    cross-process memory access, kernel modules, kexec, bpf, the kernel keyring,
    perf events, userfaultfd, reboot, swap, clock setting, ``open_by_handle_at``
    (the classic container escape) and friends.

:data:`INSTANCE_DENY`
    Loaded by each instance after it has built its own namespaces and before any app
    code runs. It adds everything that changes namespaces or mounts: ``unshare``,
    ``setns``, ``mount``, ``umount2``, ``pivot_root``, ``chroot``, the new mount API
    (``open_tree``, ``move_mount``, ``fsopen`` ...), ``clone`` with any ``CLONE_NEW*``
    flag, and io_uring. ``clone3`` answers ``ENOSYS`` (its flags live in memory a
    classic-BPF filter cannot read), so the C library falls back to ``clone``, whose
    flags are checked.

Denied calls fail with ``EPERM``; a syscall made with another architecture's
convention (i386 or x32 on x86_64) kills the process, so the number tables below
cannot be bypassed. The tables are checked against libseccomp in the tests.

Example (the bytes are a ``struct sock_filter[]``, as ``bwrap --seccomp`` reads)::

    >>> program = build(BASE_DENY)
    >>> len(program) % 8, len(program) > 8 * len(BASE_DENY)
    (0, True)
"""

from __future__ import annotations

import errno
import functools
import platform
import struct
from collections.abc import Iterable

# BPF instruction classes and fields (linux/filter.h, linux/bpf_common.h)
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# offsets in struct seccomp_data
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # little endian: the low 32 bits of args[0]

#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NEW_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
)

SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "keyctl": 250,
        "add_key": 248, "request_key": 249, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168,
        "perf_event_open": 298, "userfaultfd": 323, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "adjtimex": 159, "iopl": 172, "ioperm": 173,
        "lookup_dcookie": 212, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
        "vhangup": 153, "uselib": 134, "_sysctl": 156, "fanotify_init": 300,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442, "clone": 56, "clone3": 435,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "kexec_load": 104, "kexec_file_load": 294, "bpf": 280, "keyctl": 219,
        "add_key": 217, "request_key": 218, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225,
        "perf_event_open": 241, "userfaultfd": 282, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "acct": 89, "settimeofday": 170, "clock_settime": 112,
        "clock_adjtime": 266, "adjtimex": 171, "lookup_dcookie": 18, "quotactl": 60,
        "quotactl_fd": 443, "syslog": 116, "vhangup": 58, "fanotify_init": 262,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41,
        "chroot": 51, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
        "fsmount": 432, "fspick": 433, "mount_setattr": 442, "clone": 220, "clone3": 435,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    },
}  # fmt: skip

#: Denied for the whole sandbox (bwrap's filter).
BASE_DENY: tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "kexec_load", "kexec_file_load", "bpf", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "lookup_dcookie", "quotactl", "quotactl_fd", "syslog", "vhangup", "uselib", "_sysctl",
    "fanotify_init",
)  # fmt: skip

#: Added for each instance, once its namespaces are built.
INSTANCE_DENY: tuple[str, ...] = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip


def native_arch() -> str:
    machine = platform.machine()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if arch not in AUDIT_ARCH:
        raise ValueError(
            f"no seccomp syscall table for {machine!r}; supported: {', '.join(AUDIT_ARCH)}"
        )
    return arch


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build(
    deny: Iterable[str],
    *,
    arch: str | None = None,
    enosys: Iterable[str] = (),
    deny_clone_namespaces: bool = False,
    error: int = errno.EPERM,
) -> bytes:
    """A filter program: ``deny`` fail with ``error``, ``enosys`` with ENOSYS, the rest run.

    ``deny_clone_namespaces`` also fails ``clone`` calls whose flags ask for a new
    namespace. A syscall of another architecture kills the process.
    """
    arch = arch or native_arch()
    table = SYSCALLS[arch]
    unknown = [n for n in [*deny, *enosys] if n not in table and n not in _X86_ONLY]
    if unknown:
        raise ValueError(f"unknown syscalls for {arch}: {', '.join(unknown)}")
    deny_nrs = sorted({table[n] for n in deny if n in table})
    enosys_nrs = sorted({table[n] for n in enosys})

    # Layout: header, checks (each jumps forward to a return), returns at the end:
    #   [..checks..] ALLOW, ERRNO, ENOSYS, KILL
    body: list[tuple[str, int, str | None, int]] = []  # (kind, k, target-if-true, extra)
    header = [
        ("ld", _ARCH, None, 0),
        ("arch", AUDIT_ARCH[arch], None, 0),  # jeq arch ? next : KILL
        ("ld", _NR, None, 0),
    ]
    if arch == "x86_64":
        body.append(("jge", _X32_SYSCALL_BIT, "kill", 0))
    for nr in deny_nrs:
        body.append(("jeq", nr, "errno", 0))
    for nr in enosys_nrs:
        body.append(("jeq", nr, "enosys", 0))
    if deny_clone_namespaces:
        body.append(("clone", table["clone"], None, 0))
    program = [*header, *body]

    # two passes: instruction count of each item, then offsets
    def size(item: tuple[str, int, str | None, int]) -> int:
        return 4 if item[0] == "clone" else 1

    total = sum(size(i) for i in program)
    labels = {"allow": total, "errno": total + 1, "enosys": total + 2, "kill": total + 3}
    out: list[bytes] = []
    pc = 0
    for kind, k, target, _ in program:
        if kind == "ld":
            out.append(_ins(_LD_W_ABS, 0, 0, k))
        elif kind == "arch":
            out.append(_ins(_JEQ_K, 0, _off(labels["kill"], pc), k))
        elif kind in ("jeq", "jge"):
            assert target is not None
            code = _JEQ_K if kind == "jeq" else _JGE_K
            out.append(_ins(code, _off(labels[target], pc), 0, k))
        else:  # clone: nr == clone ? (arg0 & NEW_FLAGS ? errno : allow) : continue
            out.append(_ins(_JEQ_K, 0, 3, k))  # not clone: skip the 3 below
            out.append(_ins(_LD_W_ABS, 0, 0, _ARG0_LOW))
            out.append(_ins(_JSET_K, _off(labels["errno"], pc + 2), 0, CLONE_NEW_FLAGS))
            out.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ALLOW))
        pc += size((kind, k, target, 0))
    out.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    out.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ERRNO | (error & 0xFFFF)))
    out.append(_ins(_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS))
    out.append(_ins(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS))
    return b"".join(out)


_X86_ONLY = frozenset({"iopl", "ioperm", "uselib", "_sysctl"})


def _off(target: int, pc: int) -> int:
    """Jump offset from instruction ``pc`` to ``target`` (relative to the next one)."""
    offset = target - pc - 1
    if not 0 <= offset <= 255:
        raise ValueError("seccomp program too long for 8-bit jumps; split the deny list")
    return offset


@functools.cache
def base_program() -> bytes:
    """The sandbox-wide filter given to ``bwrap --seccomp``."""
    return build(BASE_DENY)


@functools.cache
def instance_program() -> bytes:
    """The filter each instance loads before running app code (stacked on the base)."""
    return build((*BASE_DENY, *INSTANCE_DENY), enosys=("clone3",), deny_clone_namespaces=True)
