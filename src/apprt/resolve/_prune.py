"""Dead ends: versions that can never be part of a plan, found before resolvelib tries them.

resolvelib learns nothing from a conflict beyond "this pin failed", so a clash deep in a
chain (the top app needs, 50 levels down, ``com.z ^2``, and the user asked for
``com.z ^1``) makes it retry every combination of the versions above it: exponential.
PubGrub avoids this by learning incompatibilities; here a cheaper, sound subset does:

The user's requested ranges never change during a resolution. A version is a *dead
end* when one of its dependencies has no usable version inside both the declared range
and the requested range for that app (if any), or when every such version is itself a
dead end. :class:`DeadEnds` decides this once per version, depth first, with memo;
the provider never offers a dead end to resolvelib, and the explanation renders the
recorded reason as a chain.

It only ever prunes what is certainly impossible: yanked versions count as usable
(some requirement might pin them), installed versions too (whatever their platform),
and a version whose check is still in progress (a dependency cycle) counts as usable.
The walk is iterative (generators on an explicit stack), so a dependency chain
thousands of apps deep does not hit Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from apprt.resolve._model import Candidate

Kind = Literal["unknown", "empty", "platform", "dead"]


@dataclass(frozen=True)
class DeadEnd:
    """Why ``candidate`` can never be installed: its dependency ``app_id`` ``range_text``.

    ``kind``: ``unknown`` (no such app), ``empty`` (no version in the range and the
    requested range), ``platform`` (those versions all need another platform API),
    ``dead`` (those versions are all dead ends themselves; ``options`` lists them,
    newest first, and ``next`` is the newest one's reason).
    """

    candidate: Candidate
    app_id: str
    range_text: str
    kind: Kind
    options: tuple[Candidate, ...] = ()
    next: DeadEnd | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Option:
    candidate: Candidate
    usable: bool  # platform-compatible, or installed


_IN_PROGRESS = object()
_ALIVE = object()

Check = Generator[Candidate, bool, DeadEnd | None]


class DeadEnds:
    def __init__(
        self,
        options: Callable[[str], Sequence[Option]],
        fits: Callable[[str, str], bool],
        root_ranges: Mapping[str, Sequence[str]],
    ) -> None:
        self._options = options
        self._fits = fits
        self._root_ranges = root_ranges
        self._status: dict[tuple[str, str], object] = {}

    def reason(self, candidate: Candidate) -> DeadEnd | None:
        """Why ``candidate`` is a dead end, or None if it may be installable."""
        status = self._status.get((candidate.app_id, candidate.version))
        if status is None:
            status = self._walk(candidate)
        return status if isinstance(status, DeadEnd) else None

    def _walk(self, start: Candidate) -> object:
        self._status[(start.app_id, start.version)] = _IN_PROGRESS
        stack: list[tuple[Candidate, Check]] = [(start, self._check(start))]
        send: bool | None = None
        while stack:
            candidate, check = stack[-1]
            try:
                child = check.send(send) if send is not None else next(check)
            except StopIteration as stop:
                reason: DeadEnd | None = stop.value
                self._status[(candidate.app_id, candidate.version)] = reason or _ALIVE
                stack.pop()
                send = reason is None
                continue
            key = (child.app_id, child.version)
            status = self._status.get(key)
            if status is None:
                self._status[key] = _IN_PROGRESS
                stack.append((child, self._check(child)))
                send = None
            else:
                send = not isinstance(status, DeadEnd)
        return self._status[(start.app_id, start.version)]

    def _check(self, candidate: Candidate) -> Check:
        for app_id, range_text in sorted(candidate.dependencies.items()):
            options = self._options(app_id)
            if not options:
                return DeadEnd(candidate, app_id, range_text, "unknown")
            ranges = [range_text, *self._root_ranges.get(app_id, ())]
            in_range = [
                o for o in options if all(self._fits(r, o.candidate.version) for r in ranges)
            ]
            if not in_range:
                return DeadEnd(candidate, app_id, range_text, "empty")
            usable = [o.candidate for o in in_range if o.usable]
            if not usable:
                return DeadEnd(
                    candidate,
                    app_id,
                    range_text,
                    "platform",
                    tuple(o.candidate for o in in_range),
                )
            for option in usable:
                alive = yield option
                if alive:
                    break
            else:
                newest = usable[0]
                following = self._status.get((newest.app_id, newest.version))
                return DeadEnd(
                    candidate,
                    app_id,
                    range_text,
                    "dead",
                    tuple(usable),
                    following if isinstance(following, DeadEnd) else None,
                )
        return None
