"""The seccomp programs: syscall numbers right, denied calls fail, ordinary ones work."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
import textwrap

import pytest

from apprt.runtime import seccomp


def _libseccomp() -> ctypes.CDLL | None:
    for name in ("libseccomp.so.2", ctypes.util.find_library("seccomp")):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


def test_syscall_tables_match_libseccomp() -> None:
    lib = _libseccomp()
    if lib is None:
        pytest.skip("libseccomp is not installed; the tables cannot be cross-checked")
    resolve = lib.seccomp_syscall_resolve_name_arch
    resolve.restype = ctypes.c_int
    resolve.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for arch, table in seccomp.SYSCALLS.items():
        wrong = {
            name: (nr, resolve(seccomp.AUDIT_ARCH[arch], name.encode()))
            for name, nr in table.items()
            if resolve(seccomp.AUDIT_ARCH[arch], name.encode()) != nr
        }
        assert not wrong, (arch, wrong)


def test_every_denied_name_is_known_and_programs_fit() -> None:
    for arch in seccomp.SYSCALLS:
        base = seccomp.build(seccomp.BASE_DENY, arch=arch)
        inst = seccomp.build(
            (*seccomp.BASE_DENY, *seccomp.INSTANCE_DENY),
            arch=arch,
            enosys=("clone3",),
            deny_clone_namespaces=True,
        )
        assert len(base) % 8 == 0 and len(inst) > len(base)
    with pytest.raises(ValueError, match="unknown syscalls"):
        seccomp.build(["no_such_call"])


PROBE = textwrap.dedent(
    """
    import ctypes, json, os, sys, threading
    program = bytes.fromhex(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(program, len(program))
    prog = Fprog(len(program) // 8, ctypes.addressof(buf))
    z = ctypes.c_ulong(0)
    assert libc.prctl(38, ctypes.c_ulong(1), z, z, z) == 0
    assert libc.prctl(22, ctypes.c_ulong(2), ctypes.byref(prog), z, z) == 0
    def call(*args):
        r = libc.syscall(*args)
        return [r, ctypes.get_errno() if r == -1 else 0]
    out = {
        "ptrace": call(101 if os.uname().machine == "x86_64" else 117, 0, 0, 0, 0),
        "unshare": [libc.unshare(0x10000000), ctypes.get_errno()],
        "clone_newpid": call(
            56 if os.uname().machine == "x86_64" else 220, 0x20000000 | 17, 0, 0, 0, 0
        ),
        "clone3": call(435, 0, 0),
    }
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    out["thread"] = True
    print(json.dumps(out))
    """
)


def test_instance_filter_denies_and_allows() -> None:
    program = seccomp.instance_program().hex()
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, program], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ptrace"] == [-1, 1]  # EPERM
    assert out["unshare"] == [-1, 1]
    assert out["clone_newpid"] == [-1, 1]
    assert out["clone3"] == [-1, 38]  # ENOSYS: the C library falls back to clone
    assert out["fork"] == 7 and out["thread"]
