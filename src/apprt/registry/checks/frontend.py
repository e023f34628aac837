"""``frontend``: the browser code runs no strings as code and fits its size budget.

* no ``eval(`` and no ``new Function(`` in ``frontend/**/*.js|mjs`` (they defeat the
  shell's Content-Security-Policy and turn data into code); a line comment is not
  a use;
* ``frontend/`` stays under the registry's frontend budget
  (``APPRT_REGISTRY_FRONTEND_BUDGET``, 10 MiB by default);
* the entry module exports ``mount`` and ``unmount``, the shell's host contract
  (:func:`apprt.package.checks.check_frontend_exports`).
"""

from __future__ import annotations

import re

from apprt.errors import Problem
from apprt.package.checks import check_frontend_exports, directory_reader
from apprt.registry.checks import CheckContext, CheckOutcome, failed, line_of, passed, text_files

NAME = "frontend"

FORBIDDEN = [
    ("eval(", re.compile(r"(?<![\w$.])eval\s*\(")),
    ("new Function(", re.compile(r"\bnew\s+Function\s*\(")),
    (
        "setTimeout/setInterval with a string",
        re.compile(r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]"),
    ),
]
_LINE_COMMENT = re.compile(r"^\s*//")


def run(ctx: CheckContext) -> CheckOutcome:
    info, root = ctx.info, ctx.root
    assert info is not None and root is not None
    size = sum(f.size for f in info.files if f.path.startswith("frontend/"))
    if not size and (ctx.manifest is None or ctx.manifest.frontend is None):
        return passed("no frontend")
    problems: list[Problem] = []
    scripts = [
        (p, t) for p, t in text_files(root, prefix="frontend") if p.endswith((".js", ".mjs"))
    ]
    for path, text in scripts:
        for what, pattern in FORBIDDEN:
            for match in pattern.finditer(text):
                line_start = text.rfind("\n", 0, match.start()) + 1
                if _LINE_COMMENT.match(text[line_start : match.start()]):
                    continue
                problems.append(
                    Problem(
                        f"uses {what}: runs a string as code",
                        file=path,
                        location=f"line {line_of(text, match.start())}",
                        hint="call functions directly; parse data with JSON.parse",
                    )
                )
    frontend = ctx.manifest.frontend if ctx.manifest is not None else None
    if frontend is not None and f"frontend/{frontend.entry}" in {f.path for f in info.files}:
        problems += check_frontend_exports(f"frontend/{frontend.entry}", directory_reader(root))
    budget = ctx.config.frontend_budget
    if size > budget:
        problems.append(
            Problem(
                f"frontend/ is {size} bytes, over the budget of {budget}",
                file="frontend/",
                hint="minify and split the bundle, drop unused assets, share libraries "
                "through [frontend.shared]",
            )
        )
    details = {"bytes": size, "budget": budget, "scripts": len(scripts)}
    if problems:
        return failed(f"{len(problems)} frontend problem(s)", problems, **details)
    return passed(f"{len(scripts)} script(s), {size} bytes of {budget}", **details)
