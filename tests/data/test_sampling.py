from __future__ import annotations

from collections import Counter

import pytest

from lorevit.data import few_shot_indices, subset_indices

TARGETS = [i % 5 for i in range(200)]  # 5 classes × 40


def test_few_shot_k_per_class_deterministic_no_repeats():
    a = few_shot_indices(TARGETS, 16, seed=1)
    assert a == few_shot_indices(TARGETS, 16, seed=1)
    assert len(a) == len(set(a)) == 80
    assert Counter(TARGETS[i] for i in a) == {c: 16 for c in range(5)}
    assert a != few_shot_indices(TARGETS, 16, seed=2)


def test_few_shot_8_is_inside_16_for_one_seed():
    assert set(few_shot_indices(TARGETS, 8, 3)) <= set(few_shot_indices(TARGETS, 16, 3))


def test_few_shot_small_class_takes_all_and_warns():
    targets = [0] * 20 + [1] * 3
    with pytest.warns(UserWarning, match="fewer than 8"):
        idx = few_shot_indices(targets, 8, seed=0)
    assert Counter(targets[i] for i in idx) == {0: 8, 1: 3}
    assert {20, 21, 22} <= set(idx)


def test_subset_indices():
    s = subset_indices(1000, 50, seed=0)
    assert s == subset_indices(1000, 50, seed=0) != subset_indices(1000, 50, seed=1)
    assert len(set(s)) == 50 and all(0 <= i < 1000 for i in s)
    assert subset_indices(10, None, 0) == list(range(10)) == subset_indices(10, 99, 0)
    strat = subset_indices(200, 10, seed=0, targets=TARGETS)
    assert Counter(TARGETS[i] for i in strat) == {c: 2 for c in range(5)}
