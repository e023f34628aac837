"""``make up``, as the README tells a newcomer to run it: the platform starts, the demo
is seeded (the three examples published and installed into ``demo``), the printed
URLs answer through the gateway, and Ctrl-C stops the platform and its sandboxes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from apprt.settings import Settings
from tests._serve import environment, reserved_port
from tests.runtime._platform import kill_recorded

ROOT = Path(__file__).resolve().parent.parent
#: Guards against hanging (packing the examples may fetch wheels), not performance bounds.
SEED_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0


def test_make_up_serves_the_examples_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    with reserved_port() as port, log.open("wb") as out:
        url = f"http://127.0.0.1:{port}"
        env = environment(inherit_apprt=False)
        env.pop("MAKEFLAGS", None)  # run as from a shell, not as a sub-make of `make test`
        up = subprocess.Popen(
            ["make", "--no-print-directory", "up", f"PORT={port}", f"DATA_DIR={data}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: Ctrl-C goes to it alone
        )
        try:
            deadline = time.monotonic() + SEED_TIMEOUT
            while "apprt login demo" not in log.read_text(errors="replace"):
                assert up.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
            printed = log.read_text(errors="replace")
            assert f"apprt is running on {url}/" in printed
            password = re.search(r"password (\S+) \(also in", printed)
            assert password, printed
            app_urls = set(re.findall(rf"{re.escape(url)}/apps/demo/([\w.-]+)/", printed))
            examples = {"crm-connector", "sales-dashboard", "team-notes"}
            assert app_urls == {f"com.example.{name}" for name in examples}, printed

            login = httpx.post(
                f"{url}/api/v1/login", json={"name": "demo", "password": password.group(1)}
            )
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['token']}"}
            summary = httpx.get(
                f"{url}/apps/demo/com.example.sales-dashboard/api/summary",
                headers=auth,
                timeout=30,
            )
            assert summary.status_code == 200, summary.text
            assert summary.json()["organization"] == "demo"
            assert httpx.get(f"{url}/", timeout=30).status_code == 200  # the web shell

            assert _processes_using(data), "no sandbox seen: the check below would be void"
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C in the terminal
            up.wait(timeout=STOP_TIMEOUT)
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/healthz", timeout=2)
                raise AssertionError("the platform still answers after Ctrl-C")
            assert "Traceback" not in log.read_text(errors="replace")
            assert _processes_using(data) == [], "sandboxes left running after Ctrl-C"
        finally:
            if up.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(up.pid, signal.SIGKILL)
                up.wait(timeout=STOP_TIMEOUT)
            kill_recorded(Settings(data_dir=data))


def _processes_using(data: Path) -> list[str]:
    """Command lines of the processes that name ``data`` in theirs (sandboxes do)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(data) in cmdline:
                found.append(f"{proc.name}: {cmdline[:200]}")
    return found
