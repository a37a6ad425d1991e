"""Identity mappings applied to a scheduler identity: which team, model and run kind a job gets.

Pure (no ORM): both rollup paths (kpis.rollup, kpis.rollup_pg), the run materialiser
(workloads.scheduler_runs) and the mapping forms call ``resolve`` with the same rules, so a page,
the API and the stored rollups can never disagree. Precedence (docs/kpis.md):

1. a share's explicit team / model (``greenkpi-collector wrap``, ``GREENKPI_TEAM``) — applied by
   the callers before they ask here;
2. mappings, per target (team, model, run kind) independently: the matching mapping with the
   highest ``priority``; on a tie the more specific kind (user before account; comment before job
   name; a pod label before its namespace), then a cluster-specific mapping before an any-cluster
   one, then the oldest;
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
    MappingKind.K8S_NAMESPACE: "k8s",
    MappingKind.K8S_LABEL: "k8s",
}
# Tie-break between kinds of equal priority: lower is more specific and wins.
SPECIFICITY: dict[str, int] = {
    MappingKind.SLURM_USER: 0,
    MappingKind.SLURM_ACCOUNT: 1,
    MappingKind.SLURM_COMMENT: 0,
    MappingKind.SLURM_JOB_NAME: 1,
    MappingKind.K8S_LABEL: 0,
    MappingKind.K8S_NAMESPACE: 1,
}
# Kubernetes names (kubernetes.io/docs/concepts/overview/working-with-objects/names, labels):
# a namespace is an RFC 1123 label; a label key an optional DNS-subdomain prefix and "/" before a
# name of <= 63 alphanumerics, "-", "_", "." (alphanumeric at both ends); a value the same, or empty.
_K8S_NAMESPACE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
_K8S_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_K8S_LABEL_KEY = re.compile(rf"^(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_K8S_NAME}\Z")
_K8S_LABEL_VALUE = re.compile(rf"^(?:{_K8S_NAME})?\Z")


def _check_k8s(kind: str, pattern: str) -> None:
    """PatternError unless ``pattern`` is a namespace (k8s-namespace) or ``key[=value]``."""
    if kind == MappingKind.K8S_NAMESPACE:
        if not _K8S_NAMESPACE.search(pattern):
            raise PatternError("must be a Kubernetes namespace (lower-case RFC 1123 label, <= 63)")
        return
    key, has_value, value = pattern.partition("=")
    if not _K8S_LABEL_KEY.search(key):
        raise PatternError(
            "must be a Kubernetes label key (e.g. team or app.kubernetes.io/name), "
            "optionally =value"
        )
    if has_value and not _K8S_LABEL_VALUE.search(value):
        raise PatternError("the label value must be <= 63 letters, digits, '-', '_' or '.'")


def label_rule(pattern: str) -> tuple[str, str | None]:
    """A k8s-label pattern as (key, value or None: any value)."""
    key, has_value, value = pattern.partition("=")
    return key, value if has_value else None


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
    if SCHEDULER_OF.get(kind) == "k8s":
        _check_k8s(kind, pattern)
        return None
    if kind not in PATTERN_KINDS:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class Identity:
    """The scheduler facts of one job that mappings read (a SchedulerJob row). A pod's are its
    namespace and its labels (sorted (key, value) pairs: the identity stays hashable)."""

    kind: str = "slurm"
    cluster: str = ""
    user: str = ""
    account: str = ""
    job_name: str = ""
    comment: str = ""
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _LabelMatch:
    """A k8s-label rule's match: truthy, carrying the label's value."""

    value: str

    def __bool__(self) -> bool:
        return True


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

    def match(self, identity: Identity) -> re.Match[str] | _LabelMatch | bool:
        """A truthy value when this rule applies to ``identity`` (the regex match for patterns)."""
        if SCHEDULER_OF.get(self.kind) != identity.kind:
            return False
        if self.cluster and self.cluster != identity.cluster:
            return False
        if self.kind == MappingKind.K8S_NAMESPACE:
            return identity.namespace == self.pattern
        if self.kind == MappingKind.K8S_LABEL:
            key, value = label_rule(self.pattern)
            found = dict(identity.labels).get(key)
            if found is None or (value is not None and found != value):
                return False
            return _LabelMatch(found)
        if self.kind in EXACT_KINDS:
            return getattr(identity, EXACT_KINDS[self.kind]) == self.pattern
        value = getattr(identity, PATTERN_KINDS[self.kind])
        if not value or self.regex is None:
            return False
        return self.regex.search(value) or False

    def model_for(self, found: re.Match[str] | _LabelMatch | bool) -> str:
        if self.model_key:
            return self.model_key
        if isinstance(found, _LabelMatch) and label_rule(self.pattern)[1] is None:
            return found.value[:200]  # a key-only label mapping: the label's value is the model
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
