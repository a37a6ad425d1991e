"""Drift statistics from histograms, and the importance-weighted drift score (docs/retraining.md).

Pure numpy: no Django, no drift library. Histograms are bin counts on shared bins (reference and
current), so a client never has to ship raw data. Logs are natural (scipy's default), so the usual
thresholds (Jensen-Shannon distance 0.1 as in Evidently and NannyML) keep their meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Empty bins would make PSI infinite; Evidently fills them with this proportion, and so do we.
PSI_EMPTY_BIN = 1e-4

# The value at which a feature counts as drifted (d_f / threshold = 1): PSI "significant" 0.25,
# Jensen-Shannon distance 0.1 and Wasserstein normed by the reference std 0.1 (Evidently defaults).
DEFAULT_THRESHOLDS: dict[str, float] = {"psi": 0.25, "js": 0.1, "wasserstein": 0.1}
SERVER_STATISTICS = tuple(DEFAULT_THRESHOLDS)


class BadHistogram(ValueError):
    """Counts that cannot describe a distribution (negative, empty, mismatched bins)."""


def proportions(counts: Sequence[float]) -> npt.NDArray[np.float64]:
    """Counts as proportions summing to 1."""
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise BadHistogram("a histogram needs at least two bins")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise BadHistogram("bin counts must be finite and non-negative")
    total = float(values.sum())
    if total <= 0:
        raise BadHistogram("a histogram must count something")
    return values / total


def _pair(
    reference: Sequence[float], current: Sequence[float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if len(reference) != len(current):
        raise BadHistogram("reference and current histograms must have the same bins")
    return proportions(reference), proportions(current)


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), e = reference share,
    a = current share; empty bins count as ``PSI_EMPTY_BIN``."""
    e, a = _pair(reference, current)
    e = np.where(e == 0, PSI_EMPTY_BIN, e)
    a = np.where(a == 0, PSI_EMPTY_BIN, a)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance sqrt(JSD) with natural logs, in [0, sqrt(ln 2)] (scipy's
    ``spatial.distance.jensenshannon``). Empty bins contribute 0 (0 * ln 0 = 0)."""
    p, q = _pair(reference, current)
    m = (p + q) / 2

    def kl(x: npt.NDArray[np.float64]) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log(x[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def wasserstein(
    reference: Sequence[float], current: Sequence[float], bin_edges: Sequence[float]
) -> float:
    """Wasserstein-1 (earth mover's) distance between the histograms with each bin's mass at its
    centre, divided by the reference standard deviation (Evidently's "normed" form) so the
    threshold does not depend on the feature's unit. Equals scipy.stats.wasserstein_distance on
    (centres, centres, reference, current) / std."""
    e, a = _pair(reference, current)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.size != e.size + 1 or not np.all(np.diff(edges) > 0):
        raise BadHistogram("bin_edges must be increasing, one more than the bins")
    centres = (edges[:-1] + edges[1:]) / 2
    distance = float(np.sum(np.abs(np.cumsum(e) - np.cumsum(a))[:-1] * np.diff(centres)))
    mean = float(np.sum(e * centres))
    std = float(np.sqrt(np.sum(e * (centres - mean) ** 2)))
    if std == 0:
        # A constant reference has no spread to measure by: use the mean bin width instead, so
        # the value stays finite (and JSON-able) and a move of one bin reads 1.0.
        std = float(np.mean(np.diff(edges)))
    return distance / std


def statistic(
    name: str,
    reference: Sequence[float],
    current: Sequence[float],
    bin_edges: Sequence[float] | None = None,
) -> float:
    """One of ``SERVER_STATISTICS`` computed from histograms."""
    if name == "psi":
        return psi(reference, current)
    if name == "js":
        return js_distance(reference, current)
    if name == "wasserstein":
        if bin_edges is None:
            raise BadHistogram("wasserstein needs bin_edges")
        return wasserstein(reference, current, bin_edges)
    raise BadHistogram(f"unknown statistic {name!r}; the server computes {SERVER_STATISTICS}")


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's effect size ``value`` against the ``threshold`` at which it counts as drifted."""

    feature: str
    value: float
    threshold: float
    importance: float | None = None


def weights(features: Sequence[FeatureDrift]) -> list[float]:
    """Importance weights summing to 1: given importances are normalised; where none is given
    every feature weighs the same; a feature without one among others that have it gets their
    mean (it is not ignored, nor allowed to dominate)."""
    if not features:
        return []
    given = [f.importance for f in features if f.importance is not None]
    if not given:
        return [1.0 / len(features)] * len(features)
    fill = sum(given) / len(given)
    raw = [max(0.0, f.importance if f.importance is not None else fill) for f in features]
    total = sum(raw)
    if total <= 0:
        return [1.0 / len(features)] * len(features)
    return [r / total for r in raw]


def drift_score(features: Sequence[FeatureDrift]) -> float:
    """s_drift = clip(sum_f w_f * min(d_f / tau_f, 1), 0, 1).

    Each feature's ratio is capped at 1 before weighting, so one unimportant feature with an
    extreme statistic cannot saturate the score by itself (the importance weights stay meaningful).
    """
    total = 0.0
    for feature, weight in zip(features, weights(features), strict=True):
        if feature.threshold <= 0:
            raise ValueError(f"{feature.feature}: threshold must be positive")
        total += weight * min(max(feature.value, 0.0) / feature.threshold, 1.0)
    return min(max(total, 0.0), 1.0)
