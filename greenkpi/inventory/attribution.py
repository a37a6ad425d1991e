"""Identity mappings applied to a scheduler identity: which team, model and run kind a job gets.

Pure (no ORM): both rollup paths (kpis.rollup, kpis.rollup_pg), the run materialiser
(workloads.scheduler_runs) and the mapping forms call ``resolve`` with the same rules, so a page,
the API and the stored rollups can never disagree. Precedence (docs/kpis.md):

1. a share's explicit team / model (``greenkpi-collector wrap``, ``GREENKPI_TEAM``) — applied by
   the callers before they ask here;
2. mappings, per target (team, model, run kind) independently: the matching mapping with the
   highest ``priority``; on a tie the more specific kind (user before account; comment before job
   name), then a cluster-specific mapping before an any-cluster one, then the oldest;
3. nothing matched: the host's default team (counted as "unmapped"), no model, run kind training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from greenkpi.inventory.models import MappingKind

# Kinds matched by exact value, and the identity field each reads.
EXACT_KINDS: dict[str, str] = {
    MappingKind.SLURM_USER: "user",
    MappingKind.SLURM_ACCOUNT: "account",
}
# Kinds matched by a regular expression searched in an identity field.
PATTERN_KINDS: dict[str, str] = {
    MappingKind.SLURM_COMMENT: "comment",
    MappingKind.SLURM_JOB_NAME: "job_name",
}
# The scheduler kind each mapping kind applies to.
SCHEDULER_OF: dict[str, str] = {
    MappingKind.SLURM_USER: "slurm",
    MappingKind.SLURM_ACCOUNT: "slurm",
    MappingKind.SLURM_COMMENT: "slurm",
    MappingKind.SLURM_JOB_NAME: "slurm",
}
# Tie-break between kinds of equal priority: lower is more specific and wins.
SPECIFICITY: dict[str, int] = {
    MappingKind.SLURM_USER: 0,
    MappingKind.SLURM_ACCOUNT: 1,
    MappingKind.SLURM_COMMENT: 0,
    MappingKind.SLURM_JOB_NAME: 1,
}
MAX_PATTERN_LEN = 200
MODEL_GROUP = "model"


class PatternError(ValueError):
    """A mapping's pattern does not compile (or is empty): the message says why."""


def compile_pattern(kind: str, pattern: str) -> re.Pattern[str] | None:
    """The compiled regex of a pattern kind (None for exact kinds); PatternError if it is bad."""
    if not pattern:
        raise PatternError("must not be empty")
    if len(pattern) > MAX_PATTERN_LEN:
        raise PatternError(f"at most {MAX_PATTERN_LEN} characters")
    if kind not in PATTERN_KINDS:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class Identity:
    """The scheduler facts of one job that mappings read (a SchedulerJob row)."""

    kind: str = "slurm"
    cluster: str = ""
    user: str = ""
    account: str = ""
    job_name: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """One mapping, compiled. Built from an IdentityMapping row by ``rules_from``."""

    id: int
    kind: str
    cluster: str
    pattern: str
    team_id: int | None = None
    model_key: str = ""
    run_kind: str = ""
    priority: int = 0
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    def match(self, identity: Identity) -> re.Match[str] | bool:
        """A truthy value when this rule applies to ``identity`` (the regex match for patterns)."""
        if SCHEDULER_OF.get(self.kind) != identity.kind:
            return False
        if self.cluster and self.cluster != identity.cluster:
            return False
        if self.kind in EXACT_KINDS:
            return getattr(identity, EXACT_KINDS[self.kind]) == self.pattern
        value = getattr(identity, PATTERN_KINDS[self.kind])
        if not value or self.regex is None:
            return False
        return self.regex.search(value) or False

    def model_for(self, found: re.Match[str] | bool) -> str:
        if self.model_key:
            return self.model_key
        if isinstance(found, re.Match) and MODEL_GROUP in self.regex.groupindex:  # type: ignore[union-attr]
            return found.group(MODEL_GROUP) or ""
        return ""


def rules_from(rows: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Compiled rules in precedence order from mapping rows (dicts of IdentityMapping fields).

    A stored pattern that no longer compiles (validation makes that impossible; a hand-edited row
    could) is skipped rather than failing every rollup of the organisation.
    """
    rules = []
    for row in rows:
        try:
            regex = compile_pattern(row["kind"], row["pattern"])
        except PatternError:
            continue
        rules.append(
            Rule(
                id=row["id"],
                kind=row["kind"],
                cluster=row.get("cluster") or "",
                pattern=row["pattern"],
                team_id=row.get("team_id"),
                model_key=row.get("model_key") or "",
                run_kind=row.get("run_kind") or "",
                priority=row.get("priority") or 0,
                regex=regex,
            )
        )
    rules.sort(key=lambda r: (-r.priority, SPECIFICITY.get(r.kind, 9), not r.cluster, r.id))
    return rules


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the mappings give one job; empty fields = no mapping set them."""

    team_id: int | None = None
    model_key: str = ""
    run_kind: str = ""
    team_rule_id: int | None = None
    model_rule_id: int | None = None


def resolve(identity: Identity, rules: Iterable[Rule]) -> Resolution:
    """The first rule (in precedence order) that matches and sets each target."""
    team_id: int | None = None
    model_key, run_kind = "", ""
    team_rule = model_rule = None
    for rule in rules:
        found = rule.match(identity)
        if not found:
            continue
        if team_id is None and rule.team_id is not None:
            team_id, team_rule = rule.team_id, rule.id
        if not model_key:
            model = rule.model_for(found)
            if model:
                model_key, model_rule = model, rule.id
        if not run_kind and rule.run_kind:
            run_kind = rule.run_kind
        if team_id is not None and model_key and run_kind:
            break
    return Resolution(team_id, model_key, run_kind, team_rule, model_rule)


def spec_matches(kind: str, cluster: str, pattern: str, identity: Identity) -> bool:
    """Whether a mapping spec (as recorded by an IdentityMappingChange) applies to ``identity``."""
    try:
        regex = compile_pattern(kind, pattern)
    except PatternError:
        return False
    return bool(Rule(0, kind, cluster, pattern, regex=regex).match(identity))
