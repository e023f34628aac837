"""``security``: static analysis of the backend's Python code.

* `bandit <https://bandit.readthedocs.io>`_ (used as a library) over every
  ``backend/**/*.py``, with ``# nosec`` comments ignored (an author cannot silence
  the registry's scanner): a HIGH severity finding fails the upload, MEDIUM ones
  are listed and send the version to review;
* imports and calls that leave the sandbox's intended doors — ``ctypes``,
  ``cffi``, ``subprocess``, ``os.system``, ``os.popen``, ``os.exec*``,
  ``os.spawn*``, ``pty``, ``pickle``, ``marshal``, ``shelve``, ``dill`` — are named
  (warn) and send the version to review.

Files that do not parse are listed as warnings (the app would fail at import).
"""

from __future__ import annotations

import ast
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, passed
from apprt.registry.models import CheckStatus

NAME = "security"

#: Modules whose import is flagged, with why.
RISKY_MODULES: dict[str, str] = {
    "ctypes": "calls native code directly",
    "cffi": "calls native code directly",
    "subprocess": "starts processes",
    "pty": "starts processes with a terminal",
    "pickle": "deserializes arbitrary objects (code execution on untrusted input)",
    "cPickle": "deserializes arbitrary objects (code execution on untrusted input)",
    "dill": "deserializes arbitrary objects (code execution on untrusted input)",
    "marshal": "loads code objects",
    "shelve": "pickles under the hood",
}
#: ``os`` functions whose use is flagged (prefix match for the exec/spawn families).
RISKY_OS = ("system", "popen", "exec", "spawn", "fork", "posix_spawn")

_bandit_lock = threading.Lock()


def _risky_os(name: str) -> bool:
    return any(name == f or name.startswith(f) for f in RISKY_OS)


def risky_uses(source: str, file: str) -> list[Problem]:
    """Imports and ``os`` calls from :data:`RISKY_MODULES` / :data:`RISKY_OS` in ``source``."""
    tree = ast.parse(source, filename=file)
    found: list[Problem] = []

    def flag(what: str, why: str, node: ast.AST) -> None:
        found.append(
            Problem(
                f"uses {what}: {why}",
                file=file,
                location=f"line {getattr(node, 'lineno', 0)}",
                hint="apps reach the platform through its API only; remove it, or explain "
                "the need to the reviewer in the README",
            )
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in RISKY_MODULES:
                    flag(f"import {alias.name}", RISKY_MODULES[top], node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in RISKY_MODULES:
                flag(f"from {node.module} import", RISKY_MODULES[top], node)
            elif node.module == "os":
                for alias in node.names:
                    if _risky_os(alias.name):
                        flag(f"os.{alias.name}", "starts processes or runs shell commands", node)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and _risky_os(node.attr)
        ):
            flag(f"os.{node.attr}", "starts processes or runs shell commands", node)
    return found


def _bandit(files: list[Path], root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    from bandit.core import config as b_config  # type: ignore[import-untyped]
    from bandit.core import manager as b_manager

    _quiet_plugin_loading()
    with _bandit_lock, warnings.catch_warnings():  # bandit keeps state at class level
        warnings.simplefilter("ignore", DeprecationWarning)  # from its plugin loader
        manager = b_manager.BanditManager(
            b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True
        )
        manager.discover_files([str(f) for f in files])
        manager.run_tests()
        issues = manager.get_issue_list()
        skipped = [str(Path(name).relative_to(root)) for name, _ in manager.get_skipped()]
    return [
        {
            "test_id": issue.test_id,
            "test": issue.test,
            "severity": str(issue.severity),
            "confidence": str(issue.confidence),
            "file": Path(issue.fname).relative_to(root).as_posix(),
            "line": issue.lineno,
            "text": issue.text,
        }
        for issue in issues
    ], skipped


def _quiet_plugin_loading() -> None:
    logging.getLogger("bandit").setLevel(logging.ERROR)  # no progress bars, no chatter
    # bandit loads every formatter plugin it finds, and logs an error for 'sarif',
    # whose extra (sarif_om) is not installed; the scan uses no formatter.
    logging.getLogger("stevedore.extension").setLevel(logging.CRITICAL)


def preload() -> None:
    """Import bandit ahead of the first upload (its import takes about half a second)."""
    _quiet_plugin_loading()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # from its plugin loader
        from bandit.core import manager  # noqa: F401


def run(ctx: CheckContext) -> CheckOutcome:
    root = ctx.root
    assert root is not None
    files = sorted(p for p in (root / "backend").rglob("*.py") if p.is_file())
    if not files:
        return passed("no backend Python code")
    warnings: list[Problem] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            warnings += risky_uses(path.read_text("utf-8", "replace"), rel)
        except SyntaxError as exc:
            warnings.append(
                Problem(
                    f"does not parse: {exc.msg}",
                    file=rel,
                    location=f"line {exc.lineno or 0}",
                    hint="fix the syntax error; the backend would fail at import",
                )
            )
    findings: list[dict[str, Any]] = []
    if ctx.config.bandit:
        findings, _ = _bandit(files, root)
    high = [f for f in findings if f["severity"] == "HIGH"]
    medium = [f for f in findings if f["severity"] == "MEDIUM"]

    def problem(f: dict[str, Any]) -> Problem:
        return Problem(
            f"bandit {f['test_id']} ({f['test']}, {f['severity']} severity): {f['text']}",
            file=f["file"],
            location=f"line {f['line']}",
            hint="rewrite the code so bandit no longer reports it (# nosec is ignored here)",
        )

    details = {
        "files": len(files),
        "bandit": findings,
        "flagged": [p.as_dict() for p in warnings],
    }
    if high:
        return CheckOutcome(
            CheckStatus.FAIL,
            f"{len(high)} high severity finding(s)",
            [problem(f) for f in high] + [problem(f) for f in medium] + warnings,
            details=details,
        )
    flagged = [problem(f) for f in medium] + warnings
    if flagged:
        return CheckOutcome(
            CheckStatus.WARN,
            f"{len(flagged)} finding(s) for a reviewer",
            flagged,
            details=details,
            needs_review=True,
        )
    return passed(f"{len(files)} Python file(s), nothing flagged", **details)
