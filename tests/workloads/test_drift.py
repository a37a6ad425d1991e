"""Drift statistics against values worked out by hand (docs/retraining.md, section 2)."""

from __future__ import annotations

import math

import pytest

from greenkpi.workloads import drift

REF, CUR = [50, 50], [80, 20]  # shares (0.5, 0.5) -> (0.8, 0.2)


def test_psi_of_a_two_bin_shift_is_0_3_ln_4():
    # (0.8-0.5) ln(0.8/0.5) + (0.2-0.5) ln(0.2/0.5) = 0.3 (ln 1.6 + ln 2.5) = 0.3 ln 4
    assert drift.psi(REF, CUR) == pytest.approx(0.3 * math.log(4))
    assert drift.psi(REF, CUR) == pytest.approx(0.415888, abs=1e-6)


def test_psi_fills_an_empty_bin_with_one_in_ten_thousand():
    # e = (1, 1e-4), a = (0.5, 0.5): -0.5 ln 0.5 + 0.4999 ln 5000 = 0.346574 + 4.257744
    assert drift.psi([100, 0], [50, 50]) == pytest.approx(4.604318, abs=1e-6)


def test_identical_histograms_do_not_drift_whatever_their_scale():
    for name in ("psi", "js"):
        assert drift.statistic(name, [1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-12)
    assert drift.wasserstein([1, 2, 3], [2, 4, 6], [0, 1, 2, 3]) == pytest.approx(0.0)


def test_jensen_shannon_distance_by_hand():
    # m = (0.65, 0.35); KL(p||m) = 0.5 ln(0.5/0.65) + 0.5 ln(0.5/0.35) = 0.0471553
    # KL(q||m) = 0.8 ln(0.8/0.65) + 0.2 ln(0.2/0.35) = 0.0541884; sqrt(mean) = 0.225104
    assert drift.js_distance(REF, CUR) == pytest.approx(0.225104, abs=1e-6)


def test_jensen_shannon_distance_of_disjoint_histograms_is_sqrt_ln_2():
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_wasserstein_is_normed_by_the_reference_spread():
    # centres 0.5, 1.5; |CDF difference| at 0.5 = 0.3, times 1.0 between centres -> W1 = 0.3
    # reference mean 1.0, std 0.5 -> 0.3 / 0.5 = 0.6
    assert drift.wasserstein(REF, CUR, [0, 1, 2]) == pytest.approx(0.6)
    # Units do not matter: the same histograms on edges x 1000 give the same value.
    assert drift.wasserstein(REF, CUR, [0, 1000, 2000]) == pytest.approx(0.6)


def test_a_constant_reference_is_normed_by_the_bin_width():
    assert drift.wasserstein([10, 0, 0], [0, 10, 0], [0, 2, 4, 6]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("reference", "current", "edges"),
    [
        ([1, 2], [1, 2, 3], None),  # different bins
        ([1], [1], None),  # one bin
        ([0, 0], [1, 1], None),  # empty
        ([-1, 2], [1, 1], None),  # negative
        ([1, float("nan")], [1, 1], None),
    ],
)
def test_bad_histograms_are_refused(reference, current, edges):
    with pytest.raises(drift.BadHistogram):
        drift.psi(reference, current)


def test_wasserstein_needs_increasing_edges():
    with pytest.raises(drift.BadHistogram):
        drift.wasserstein(REF, CUR, [0, 1])
    with pytest.raises(drift.BadHistogram):
        drift.wasserstein(REF, CUR, [0, 2, 1])
    with pytest.raises(drift.BadHistogram):
        drift.statistic("wasserstein", REF, CUR)
    with pytest.raises(drift.BadHistogram):
        drift.statistic("ks", REF, CUR)


def test_drift_score_weights_capped_ratios_by_importance():
    features = [
        drift.FeatureDrift("age", value=0.05, threshold=0.1, importance=3),  # ratio 0.5
        drift.FeatureDrift("zip", value=0.50, threshold=0.25, importance=1),  # ratio 2 -> 1
    ]
    assert drift.weights(features) == [0.75, 0.25]
    # 0.75 x 0.5 + 0.25 x 1 = 0.625 (uncapped it would be 0.875)
    assert drift.drift_score(features) == pytest.approx(0.625)


def test_an_unimportant_feature_cannot_saturate_the_score():
    features = [
        drift.FeatureDrift("used", value=0.0, threshold=0.1, importance=0.9),
        drift.FeatureDrift("unused", value=50.0, threshold=0.1, importance=0.1),
    ]
    assert drift.drift_score(features) == pytest.approx(0.1)


def test_weights_without_importance_are_equal_and_missing_ones_get_the_mean():
    plain = [drift.FeatureDrift(n, 0.1, 0.1) for n in "abcd"]
    assert drift.weights(plain) == [0.25] * 4
    mixed = [drift.FeatureDrift("a", 0, 1, 2.0), drift.FeatureDrift("b", 0, 1, None)]
    assert drift.weights(mixed) == [0.5, 0.5]
    assert drift.drift_score([]) == 0.0
