"""Resolution over a synthetic registry: 1,000 apps x 10 versions, deep chains.

Issue 3's target: p50 <= 100 ms. The registry (:func:`synthetic_registry`) gives the
resolver real work:

* 20 *stacks* of 50 apps; app ``k`` of a stack depends on app ``k+1`` (a chain 50
  deep) and on two more apps a little further down the same stack, and every 5th app
  on one of 10 shared "foundation" apps at the bottom of stack 0, so stacks overlap;
* every app has versions 1.0.0-1.4.0 and 2.0.0-2.4.0; 2.x versions need their
  successor at ``^2``, except that every 10th app's newest version needs platform
  API ``^2`` (excluded on this platform) and every 25th app's 2.x versions hold their
  successor at ``~2.1``, so the newest version is often not the answer.

Figures:

``resolve_p50`` (the target)
    an org installs the tops of three stacks: ~160 apps, chains 50 deep.
``resolve_installed_p50``
    the same, next to 200 installed apps (held where they are).
``resolve_conflict_p50``
    a request that clashes 50 levels down, explained.
``resolve_1000_chain_p50`` (reported, no target)
    the extreme: the whole registry in one plan, one chain 1,000 apps deep (a
    registry rearranged as a single stack). resolvelib pins one app per round and
    copies its state each round, so this grows faster than linearly; apprt's
    incremental loop (``apprt.resolve._resolution``) took it from 20 s to ~150 ms.
"""

from __future__ import annotations

import random

from apprt.resolve import Candidate, InMemoryIndex, ResolutionError, resolve
from bench._harness import Figure, percentile, timings

STACKS = 20
DEPTH = 50
MINORS = 5
TARGET_MS = 100.0
PLATFORM = "1.0.0"


def app_id(stack: int, level: int) -> str:
    return f"com.bench.s{stack:02d}.app{level:03d}"


def synthetic_registry(stacks: int = STACKS, depth: int = DEPTH, seed: int = 3) -> InMemoryIndex:
    rng = random.Random(seed)  # reproducible shape, not security
    foundation = [app_id(0, level) for level in range(depth - 10, depth)]
    candidates = []
    for stack in range(stacks):
        for level in range(depth):
            below = list(range(level + 2, min(level + 30, depth)))
            extra = [app_id(stack, j) for j in sorted(rng.sample(below, k=min(2, len(below))))]
            if level % 5 == 0 and stack != 0:
                extra.append(rng.choice(foundation))
            serial = stack * depth + level
            for major in (1, 2):
                for minor in range(MINORS):
                    deps: dict[str, str] = {}
                    if level + 1 < depth:
                        held = major == 2 and serial % 25 == 0
                        deps[app_id(stack, level + 1)] = f"~{major}.1" if held else f"^{major}"
                    for other in extra:
                        deps[other] = f">={major}.0.0 <3"
                    newest = major == 2 and minor == MINORS - 1
                    platform = "^2" if newest and serial % 10 == 0 else "^1"
                    candidates.append(
                        Candidate(app_id(stack, level), f"{major}.{minor}.0", deps, platform)
                    )
    return InMemoryIndex(candidates)


def run() -> list[Figure]:
    index = synthetic_registry()
    assert len(index.app_ids()) == STACKS * DEPTH
    request = {app_id(s, 0): "^2" for s in (3, 7, 12)}

    def install() -> None:
        plan = resolve(request, index, platform_version=PLATFORM)
        assert len(plan.steps) > 3 * DEPTH

    installed = {app_id(s, level): "2.1.0" for s in range(4) for level in range(DEPTH)}

    def with_installed() -> None:
        resolve(request, index, installed=installed, platform_version=PLATFORM)

    def conflict() -> None:
        # The top of stack 3 needs its level-49 app at ^2 (through 49 levels).
        try:
            resolve(
                {app_id(3, 0): "^2", app_id(3, DEPTH - 1): "^1"},
                index,
                platform_version=PLATFORM,
            )
        except ResolutionError:
            return
        raise AssertionError("expected a conflict")

    chain = synthetic_registry(stacks=1, depth=STACKS * DEPTH)

    def whole_registry() -> None:
        plan = resolve({app_id(0, 0): "^2"}, chain, platform_version=PLATFORM)
        assert len(plan.steps) == STACKS * DEPTH

    scenarios = [
        (
            "resolve_p50",
            "install 3 stack tops (~160 apps, chains 50 deep) from 1,000 apps x 10 versions, p50",
            install,
            30,
            True,
        ),
        (
            "resolve_installed_p50",
            "the same next to 200 installed apps, p50",
            with_installed,
            30,
            False,
        ),
        (
            "resolve_conflict_p50",
            "find and explain a clash 50 levels deep, p50",
            conflict,
            30,
            False,
        ),
        (
            "resolve_1000_chain_p50",
            "whole registry in one plan, a chain 1,000 apps deep, p50",
            whole_registry,
            10,
            False,
        ),
    ]
    figures = []
    for name, metric, fn, repeat, has_target in scenarios:
        p50 = percentile(timings(fn, repeat=repeat, warmup=2), 50) * 1000
        figures.append(
            Figure(
                name,
                metric,
                p50,
                "ms",
                f"<= {TARGET_MS:g} ms" if has_target else "",
                p50 <= TARGET_MS if has_target else None,
            )
        )
    return figures
