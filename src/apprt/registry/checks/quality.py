"""``quality``: what makes a good marketplace listing (warnings, never a refusal).

* a ``README.md`` (or ``README``) to show on the app's page;
* an icon (``icon.svg``/``icon.png``, declared as ``icon`` in app.toml);
* the package under the registry's package budget (``APPRT_REGISTRY_PACKAGE_BUDGET``,
  50 MiB by default): big packages install slowly everywhere.
"""

from __future__ import annotations

from apprt.errors import Problem
from apprt.registry.checks import CheckContext, CheckOutcome, passed
from apprt.registry.models import CheckStatus

NAME = "quality"


def run(ctx: CheckContext) -> CheckOutcome:
    info, manifest = ctx.info, ctx.manifest
    assert info is not None and manifest is not None
    problems: list[Problem] = []
    if info.file("README.md") is None and info.file("README") is None:
        problems.append(
            Problem(
                "no README.md",
                hint="add a README.md: what the app does, its permissions and why",
            )
        )
    if manifest.icon is None or info.file(manifest.icon) is None:
        problems.append(
            Problem(
                "no icon",
                file="app.toml",
                location="icon",
                hint='add icon.svg (or icon.png) and set icon = "icon.svg"',
            )
        )
    budget = ctx.config.package_budget
    if ctx.size > budget:
        problems.append(
            Problem(
                f"the package is {ctx.size} bytes, over the budget of {budget}",
                hint="vendor fewer wheels, compress assets",
            )
        )
    details = {"package_bytes": ctx.size, "budget": budget}
    if problems:
        return CheckOutcome(
            CheckStatus.WARN, f"{len(problems)} suggestion(s)", problems, details=details
        )
    return passed("README, icon and size are fine", **details)
