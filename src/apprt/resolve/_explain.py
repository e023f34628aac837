"""Readable explanations of why no install plan exists.

resolvelib reports a failure as the requirements of the app it could not pin
(``ResolutionImpossible.causes``: each a requirement and the candidate that declared
it, or ``None`` for a root requirement). Each cause is turned into a sentence, and
each sentence gets the chain of requirements that brought its declaring version in,
found by walking from that version back to the request through every requirement
the resolver saw::

    com.a 2.0.0 needs com.c ^1 (because you asked for com.a ^2), but com.b 1.4.0
    needs com.c ^2 (because you asked for com.b ^1); no version of com.c satisfies
    both ^1 and ^2

Then the *reason* nothing fits, checked against the index in this order: the app
does not exist; one range matches no version at all (the available ones are
listed); the ranges do not overlap (a clash); or the versions in the overlap are
ruled out by the platform, a yank, or their own dependencies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from apprt.errors import Problem
from apprt.resolve._model import Candidate
from apprt.resolve._provider import Info, Provider, Requirement, _Entry, exact_pin, version_of
from apprt.resolve._prune import DeadEnd
from apprt.versioning import Version, parse_range

#: How many versions an "available: ..." list shows before eliding the oldest.
MAX_LISTED_VERSIONS = 12
CLASH_HINT = "relax one of these ranges, or ask for other versions of the apps that declare them"
#: How many steps of a dead-end chain are shown before the middle is elided.
MAX_CHAIN_CLAUSES = 6
#: How many versions of one app a sentence names before counting the rest.
MAX_NAMED_PARENTS = 4


def _join(items: Sequence[str], last: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def _versions(entries: Iterable[_Entry]) -> list[str]:
    """Version strings, oldest first."""
    return [e.candidate.version for e in sorted(entries, key=lambda e: e.version)]


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


class Explainer:
    """Turns ``ResolutionImpossible.causes`` into problems (one per app in conflict)."""

    def __init__(self, provider: Provider) -> None:
        self.p = provider

    # -- describing versions and why they are in play -------------------------------

    def describe(self, candidate: Candidate) -> str:
        suffix = " (installed)" if self.p.is_installed(candidate) else ""
        return f"{candidate}{suffix}"

    def chain(self, candidate: Candidate) -> list[str]:
        """Clauses from the request down to ``candidate`` (shortest chain); empty when
        ``candidate`` is an installed version kept where it is."""
        return self._trace(candidate)[1]

    def _trace(self, candidate: Candidate) -> tuple[Requirement | None, list[str]]:
        """The requirement on ``candidate`` that starts its shortest chain to the
        request, and that chain's clauses (breadth-first over requirements seen)."""
        Item = tuple[Candidate, tuple[str, ...], Requirement | None]
        queue: deque[Item] = deque([(candidate, (), None)])
        visited = {(candidate.app_id, candidate.version)}
        while queue:
            current, suffix, first = queue.popleft()
            for req in self._requirements_satisfied_by(current):
                direct = first if first is not None else req
                if req.origin == "request":
                    return direct, [f"you asked for {req.app_id} {req.display_range}", *suffix]
                if req.origin == "installed":
                    if self.p.is_installed(current):
                        head = [f"{current} is installed"] if suffix else []
                        return direct, [*head, *suffix]
                    continue
                via = req.via
                if via is None or (via.app_id, via.version) in visited:
                    continue
                visited.add((via.app_id, via.version))
                clause = f"{via} needs {req.app_id} {req.display_range}"
                queue.append((via, (clause, *suffix), direct))
        return None, []

    def _requirements_satisfied_by(self, candidate: Candidate) -> list[Requirement]:
        reqs = [
            r for r in self.p.seen.get(candidate.app_id, {}) if self.p.is_satisfied_by(r, candidate)
        ]
        order = {"request": 0, "installed": 1, "dependency": 2}
        return sorted(
            reqs,
            key=lambda r: (
                order[r.origin],
                r.via.app_id if r.via else "",
                r.via.version if r.via else "",
                r.range_text,
            ),
        )

    # -- sentences for requirements --------------------------------------------------

    def statements(self, infos: Sequence[Info]) -> list[str]:
        """One sentence per (declaring app, range); versions of one app that declare
        the same range share a sentence ("com.a 2.0.0 and 2.1.0 need com.c ^1")."""
        groups: dict[tuple[int, str, bool, str], list[Info]] = {}
        for info in infos:
            req, parent = info.requirement, info.parent
            if parent is None:
                key = (0, "", False, req.display_range)
            else:
                key = (1, parent.app_id, self.p.is_installed(parent), req.display_range)
            group = groups.setdefault(key, [])
            if info not in group:
                group.append(info)
        sentences: list[str] = []
        for key in sorted(groups):
            group = groups[key]
            req = group[0].requirement
            target = f"{req.app_id} {req.display_range}"
            parents = sorted(
                {i.parent for i in group if i.parent is not None},
                key=lambda c: version_of(c.version),
            )
            if not parents:
                sentences.append(f"you asked for {target}")
                continue
            newest = parents[-1]
            installed = " (installed)" if key[2] else ""
            direct, clauses = self._trace(newest)
            if not key[2]:
                parents = self._siblings(parents, direct, req)
            verb = _plural(len(parents), "needs", "need")
            because = f" (because {_join(clauses)})" if clauses else ""
            sentences.append(
                f"{newest.app_id} {_list_versions(parents)}{installed} {verb} {target}{because}"
            )
        return sentences

    def _siblings(
        self, parents: list[Candidate], direct: Requirement | None, req: Requirement
    ) -> list[Candidate]:
        """``parents`` and every other usable version of their app that the same
        requirement ``direct`` allows and that declares the same range ``req``: all
        of them were candidates, and all clash alike (PubGrub would say "every version
        of com.a in ^2 needs com.c ^1")."""
        if direct is None:
            return parents
        direct_range = parse_range(direct.range_text)
        pins = {exact_pin(direct.range_text)}
        known = {c.version for c in parents}
        extra = [
            e.candidate
            for e in self.p.entries(parents[0].app_id)
            if e.candidate.version not in known
            and direct_range.contains(e.version)
            and e.platform_ok
            and (not e.candidate.yanked or e.version in pins)
            and e.candidate.dependencies.get(req.app_id, "").strip() == req.display_range
        ]
        return sorted([*parents, *extra], key=lambda c: version_of(c.version))

    # -- the problems ----------------------------------------------------------------

    def problems(self, causes: Sequence[Info]) -> list[Problem]:
        by_app: dict[str, list[Info]] = {}
        for info in causes:
            by_app.setdefault(info.requirement.app_id, []).append(info)
        problems = []
        for app_id in sorted(by_app):
            problem = self.problem(app_id, by_app[app_id])
            if problem is not None:
                problems.append(problem)
        if not problems:
            held = ", ".join(sorted(by_app))
            problems.append(
                Problem(
                    reason=f"the installed apps {held} are kept at their versions, and no "
                    "plan fits around them",
                    location=held,
                    hint="include them in the request so they may be upgraded too",
                )
            )
        return problems

    def problem(self, app_id: str, infos: Sequence[Info]) -> Problem | None:
        constraining = [i for i in infos if i.requirement.origin != "installed"]
        entries = self.p.entries(app_id)
        if not entries:
            return Problem(
                reason=f"{_join(self.statements(constraining))}, but there is no app "
                f"{app_id} in the registry",
                location=app_id,
                hint=f"check the app id, or publish {app_id} first",
            )
        # A range that matches no version at all explains the failure on its own.
        empty = [
            i
            for i in constraining
            if not any(parse_range(i.requirement.range_text).contains(e.version) for e in entries)
        ]
        if empty:
            ranges = _join(sorted({i.requirement.display_range for i in empty}), "or")
            return Problem(
                reason=f"{_join(self.statements(empty))}; no version of {app_id} matches "
                f"{ranges} (available: {self._available(entries)})",
                location=app_id,
                hint="ask for a range that includes one of the available versions",
            )
        ranges_all = sorted({i.requirement.display_range for i in constraining})
        overlap = [
            e
            for e in entries
            if all(parse_range(i.requirement.range_text).contains(e.version) for i in constraining)
        ]
        statements = self.statements(constraining)
        if not overlap:
            if len(ranges_all) == 2:
                both = f"both {ranges_all[0]} and {ranges_all[1]}"
            else:
                both = f"all of {_join(ranges_all)}"
            held_parents = sorted(
                {
                    i.parent.app_id
                    for i in constraining
                    if i.parent is not None
                    and self.p.is_installed(i.parent)
                    and i.parent.app_id not in self.p.requested
                }
            )
            if held_parents:
                names, count = _join(held_parents), len(held_parents)
                hint = (
                    f"{names} {_plural(count, 'is', 'are')} kept at the installed version; "
                    f"add {names} to the request so {_plural(count, 'it', 'they')} may be "
                    "upgraded too, or relax the other range"
                )
            else:
                hint = CLASH_HINT
            return Problem(
                reason=f"{_but(statements)}; no version of {app_id} satisfies {both}",
                location=app_id,
                hint=hint,
            )
        return self._excluded(app_id, constraining, statements, overlap)

    def _excluded(
        self,
        app_id: str,
        infos: Sequence[Info],
        statements: Sequence[str],
        overlap: Sequence[_Entry],
    ) -> Problem:
        pins = {p for i in infos if (p := exact_pin(i.requirement.range_text)) is not None}
        platform: dict[str, list[_Entry]] = {}
        yanked: list[_Entry] = []
        other: list[_Entry] = []
        for entry in overlap:
            installed = self.p.is_installed(entry.candidate)
            if not installed and not entry.platform_ok:
                platform.setdefault(entry.candidate.platform, []).append(entry)
            elif not installed and entry.candidate.yanked and entry.version not in pins:
                yanked.append(entry)
            else:
                other.append(entry)
        reasons: list[str] = []
        hints: list[str] = []
        for prange in sorted(platform):
            group = platform[prange]
            reasons.append(
                f"{app_id} {_join(_versions(group))} would fit but "
                f"{_plural(len(group), 'needs', 'need')} platform API {prange}, and this "
                f"platform's API is {self.p.platform_version}"
            )
        if platform:
            hints.append(
                f"ask for a version of {app_id} that supports platform API "
                f"{self.p.platform_version}, or wait for one"
            )
        if yanked:
            versions = _versions(yanked)
            reasons.append(
                f"{app_id} {_join(versions)} would fit but "
                f"{_plural(len(yanked), 'is', 'are')} yanked"
            )
            hints.append(f"pin an exact version (={versions[-1]}) to install a yanked version")
        if other:
            newest = max(other, key=lambda e: e.version).candidate
            dead_end = self.p.dead_ends.reason(newest)
            listed = _join(_versions(other))
            if dead_end is not None and not reasons:
                # Every version that fits is a dead end: the chain is the explanation,
                # and the app at its end is where the problem is.
                leaf = _leaf(dead_end)
                return Problem(
                    reason=self.render_dead_end(dead_end, lead=statements),
                    location=leaf.app_id,
                    hint=self._dead_end_hint(leaf),
                )
            if dead_end is not None:
                verb = _plural(len(other), "it cannot", "none can")
                reasons.append(
                    f"{app_id} {listed} would fit but {verb} be installed: "
                    f"{self.render_dead_end(dead_end)}"
                )
                hints.append(self._dead_end_hint(_leaf(dead_end)))
            else:
                reasons.append(
                    f"{app_id} {listed} would fit but "
                    f"{_plural(len(other), 'its', 'their')} own requirements cannot be met "
                    "alongside the rest"
                )
                hints.append("see the other problems listed")
        return Problem(
            reason=f"{_join(statements)}; {'; '.join(reasons)}",
            location=app_id,
            hint="; ".join(hints),
        )

    def render_dead_end(self, dead_end: DeadEnd, lead: Sequence[str] = ()) -> str:
        """A dead end as the requirement nothing satisfies, with the chain of needs
        that leads to it (after ``lead``, the clauses that brought its top in)."""
        steps: list[DeadEnd] = []
        step: DeadEnd | None = dead_end
        while step is not None:
            steps.append(step)
            step = step.next if step.kind == "dead" else None
        alternatives = any(len(s.options) > 1 for s in steps if s.kind == "dead")
        needs = [f"{s.candidate} needs {s.app_id} {s.range_text.strip() or '*'}" for s in steps]
        leaf = steps[-1]
        if leaf.kind == "dead":
            cause = f", and no version of {leaf.app_id} there can be installed"
        else:
            cause = self._dead_end_cause(leaf)
        because = [*lead, *needs[:-1]]
        if len(because) > MAX_CHAIN_CLAUSES:
            head = MAX_CHAIN_CLAUSES // 2
            tail = MAX_CHAIN_CLAUSES - head - 1
            hidden = len(because) - head - tail
            because = [*because[:head], f"{hidden} more steps", *because[-tail:]]
        text = needs[-1]
        if because:
            text += f" (because {_join(because)})"
        text += cause
        if alternatives:
            text += " (the other versions at each step are ruled out too)"
        return text

    def _dead_end_hint(self, leaf: DeadEnd) -> str:
        app_id, declared = leaf.app_id, leaf.range_text.strip() or "*"
        if leaf.kind == "unknown":
            return f"check the app id, or publish {app_id} first"
        if leaf.kind == "platform":
            return (
                f"ask for versions whose dependencies support platform API "
                f"{self.p.platform_version}, or wait for a version of {app_id} that does"
            )
        if leaf.kind == "empty" and app_id in self.p.root_ranges:
            return (
                "relax one of these ranges, or ask for other versions of the apps that declare them"
            )
        if leaf.kind == "empty":
            return (
                f"ask for another version of {leaf.candidate.app_id}, or publish a version of "
                f"{app_id} in {declared}"
            )
        return "ask for other versions of the apps in this chain"

    def _dead_end_cause(self, step: DeadEnd) -> str:
        app_id, declared = step.app_id, step.range_text.strip() or "*"
        if step.kind == "unknown":
            return f", but there is no app {app_id} in the registry"
        if step.kind == "platform":
            platforms = _join(sorted({c.platform for c in step.options}), "or")
            versions = _join([c.version for c in sorted(step.options, key=_version_key)])
            return (
                f", but {app_id} {versions} {_plural(len(step.options), 'needs', 'need')} "
                f"platform API {platforms}, and this platform's API is {self.p.platform_version}"
            )
        entries = self.p.entries(app_id)
        requested = self.p.root_ranges.get(app_id, [])
        if requested and any(parse_range(declared).contains(e.version) for e in entries):
            asked = requested[0].strip() or "*"
            return (
                f", but you asked for {app_id} {asked}; no version of {app_id} satisfies both "
                f"{declared} and {asked}"
            )
        return (
            f"; no version of {app_id} matches {declared} (available: {self._available(entries)})"
        )

    def _available(self, entries: Sequence[_Entry]) -> str:
        labels = [
            f"{e.candidate.version} (yanked)" if e.candidate.yanked else e.candidate.version
            for e in sorted(entries, key=lambda e: e.version)
        ]
        if len(labels) > MAX_LISTED_VERSIONS:
            labels = ["...", *labels[-MAX_LISTED_VERSIONS:]]
        return ", ".join(labels)


def _list_versions(candidates: Sequence[Candidate]) -> str:
    """``2.0.0``, ``2.0.0 and 2.1.0``, or ``2.0.0, 2.1.0, 2.2.0 and 7 more versions``."""
    versions = [c.version for c in candidates]
    if len(versions) <= MAX_NAMED_PARENTS:
        return _join(versions)
    shown = versions[: MAX_NAMED_PARENTS - 1]
    return f"{', '.join(shown)} and {len(versions) - len(shown)} more versions"


def _leaf(dead_end: DeadEnd) -> DeadEnd:
    while dead_end.kind == "dead" and dead_end.next is not None:
        dead_end = dead_end.next
    return dead_end


def _version_key(candidate: Candidate) -> Version:
    return version_of(candidate.version)


def _but(statements: Sequence[str]) -> str:
    """``a, but b`` / ``a, b, but c``: the last requirement is the one that clashes."""
    if len(statements) == 1:
        return statements[0]
    return f"{', '.join(statements[:-1])}, but {statements[-1]}"
