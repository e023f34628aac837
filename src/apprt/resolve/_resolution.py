"""resolvelib's resolution loop, made incremental.

Stock ``Resolution.resolve`` recomputes, on every round, which apps' pins no longer
satisfy their requirements by checking *every* requirement of *every* app: twice per
round, one round per pinned app. For a plan of n apps that is O(n²) ``is_satisfied_by``
calls: about 6 million for the 1,000-app benchmark, 20 s in all.

This subclass keeps the same algorithm (same pins, same backjumping, same
optimistic-backjumping fallback, same errors) and only changes the bookkeeping: after
a successful pin, the only apps whose satisfaction can change are the pinned app and
its dependencies (the only criteria ``_attempt_to_pin_criterion`` replaced), so only
those are re-checked; after a backjump or a rollback, whole states were replaced, and
everything is re-checked once. The result builder is iterative too (resolvelib's
recurses once per level of a dependency chain).

It relies on ``Resolution``'s internals as of resolvelib 1.2 (pinned in ``uv.lock``);
the property tests compare its answers with a brute-force search.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Iterable

from resolvelib.resolvers.criterion import Criterion
from resolvelib.resolvers.exceptions import (
    RequirementsConflicted,
    ResolutionImpossible,
    ResolutionTooDeep,
)
from resolvelib.resolvers.resolution import Resolution
from resolvelib.structs import IteratorMapping, State

from apprt.resolve._model import Candidate
from apprt.resolve._provider import Requirement

_State = State[Requirement, Candidate, str]


class IncrementalResolution(Resolution[Requirement, Candidate, str]):
    _unsatisfied: set[str] | None

    def _is_satisfying(self, name: str, criterion: Criterion[Requirement, Candidate]) -> bool:
        pin = self.state.mapping.get(name)
        if pin is None:
            return False
        return all(
            self._p.is_satisfied_by(requirement=r, candidate=pin)
            for r in criterion.iter_requirement()
        )

    def _current_unsatisfied(self) -> set[str]:
        if self._unsatisfied is None:
            self._unsatisfied = {
                name
                for name, criterion in self.state.criteria.items()
                if not self._is_satisfying(name, criterion)
            }
        return self._unsatisfied

    def resolve(self, requirements: Iterable[Requirement], max_rounds: int) -> _State:
        if self._states:
            raise RuntimeError("already resolved")
        self._r.starting()
        # A plain dict, not resolvelib's OrderedDict: the same LIFO ``popitem`` and
        # insertion order, and copied (once per round) several times faster.
        self._states = [State(mapping={}, criteria={}, backtrack_causes=[])]
        for r in requirements:
            try:
                self._add_to_criteria(self.state.criteria, r, parent=None)
            except RequirementsConflicted as e:
                raise ResolutionImpossible(e.criterion.information) from e
        self._push_new_state()
        self._unsatisfied = None

        optimistic_rounds_cutoff: int | None = None
        optimistic_backjumping_start_round: int | None = None

        for round_index in range(max_rounds):
            self._r.starting_round(index=round_index)

            if self._optimistic_backjumping_ratio and self._save_states is not None:
                if optimistic_backjumping_start_round is None:
                    optimistic_backjumping_start_round = round_index
                    optimistic_rounds_cutoff = int(
                        (max_rounds - round_index) * self._optimistic_backjumping_ratio
                    )
                    if optimistic_rounds_cutoff <= 0:
                        self._rollback_states()
                        self._unsatisfied = None
                        continue
                elif (
                    optimistic_rounds_cutoff is not None
                    and round_index - optimistic_backjumping_start_round >= optimistic_rounds_cutoff
                ):
                    self._rollback_states()
                    self._unsatisfied = None
                    continue

            unsatisfied = self._current_unsatisfied()
            if not unsatisfied:
                self._r.ending(state=self.state)
                return self.state

            unsatisfied_names = sorted(unsatisfied)
            if len(unsatisfied_names) > 1:
                narrowed = list(
                    self._p.narrow_requirement_selection(
                        identifiers=unsatisfied_names,
                        resolutions=self.state.mapping,
                        candidates=IteratorMapping(
                            self.state.criteria, operator.attrgetter("candidates")
                        ),
                        information=IteratorMapping(
                            self.state.criteria, operator.attrgetter("information")
                        ),
                        backtrack_causes=self.state.backtrack_causes,
                    )
                )
            else:
                narrowed = unsatisfied_names
            if not narrowed:
                raise RuntimeError("narrow_requirement_selection returned 0 names")
            name = min(narrowed, key=self._get_preference) if len(narrowed) > 1 else narrowed[0]

            failure_criterion = self._attempt_to_pin_criterion(name)

            if failure_criterion:
                causes = self._extract_causes(failure_criterion)
                self._r.resolving_conflicts(causes=causes)
                try:
                    success = self._backjump(causes)
                except ResolutionImpossible:
                    if self._optimistic_backjumping_ratio and self._save_states:
                        failed_optimistic_backjumping = True
                    else:
                        raise
                else:
                    failed_optimistic_backjumping = bool(
                        not success and self._optimistic_backjumping_ratio and self._save_states
                    )
                self._unsatisfied = None
                if failed_optimistic_backjumping and self._save_states:
                    self._rollback_states()
                else:
                    self.state.backtrack_causes[:] = causes
                    if not success:
                        raise ResolutionImpossible(self.state.backtrack_causes)
            else:
                # Only the pinned app's pin and its dependencies' criteria changed.
                pinned = self.state.mapping[name]
                changed = {name} | {
                    self._p.identify(r) for r in self._p.get_dependencies(candidate=pinned)
                }
                criteria = self.state.criteria
                newly_unsatisfied: set[str] = set()
                for key in changed:
                    if self._is_satisfying(key, criteria[key]):
                        unsatisfied.discard(key)
                    elif key not in unsatisfied:
                        # A new criterion (no pin yet) is unsatisfied, not *newly* so:
                        # only a pin that satisfied its requirements before can be.
                        if key in self.state.mapping:
                            newly_unsatisfied.add(key)
                        unsatisfied.add(key)
                if newly_unsatisfied:
                    self._remove_information_from_criteria(criteria, newly_unsatisfied)
                    self._unsatisfied = None
                self._push_new_state()

            self._r.ending_round(index=round_index, state=self.state)

        raise ResolutionTooDeep(max_rounds)


def connected_mapping(state: _State) -> dict[str, Candidate]:
    """The pins reachable from the root requirements (resolvelib's ``_build_result``
    without the recursion): a pin whose every requirement came from pins that were
    dropped is left out."""
    mapping = state.mapping
    pinned_ids = {id(candidate): name for name, candidate in mapping.items()}
    children: dict[str | None, list[str]] = collections.defaultdict(list)
    for key, criterion in state.criteria.items():
        for parent in criterion.iter_parent():
            if parent is None:
                children[None].append(key)
            elif id(parent) in pinned_ids:
                children[pinned_ids[id(parent)]].append(key)
    connected: set[str] = set()
    queue: collections.deque[str | None] = collections.deque([None])
    while queue:
        node = queue.popleft()
        for child in children.get(node, ()):
            if child not in connected:
                connected.add(child)
                queue.append(child)
    return {name: candidate for name, candidate in mapping.items() if name in connected}
