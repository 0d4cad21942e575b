"""Easy-to-hard selection on hand-made features whose answer is known."""
from __future__ import annotations

import math

import torch

from lorevit.data import easy_indices, hard_indices, herding_order


def _ring(angles_deg, scale=1.0):
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(a), torch.sin(a)], 1) * scale


# class 0 around +x (angles symmetric about 0 → centroid exactly +x), class 1 around +y.
F0 = _ring([0, 10, -10, 40, -40, 80])
F1 = _ring([95, 85, 90, 150]) * 3.0  # scale must not matter (cosine)
FEATURES = torch.cat([F0, F1]).float()
LABELS = torch.tensor([0] * 6 + [1] * 4)


def test_easy_picks_closest_to_centroid_per_class():
    # class 0 centroid: mean of unit vectors at 0, ±10, ±40, 80 → angle ≈ 11.9°; closest: 10°, 0°.
    # class 1 centroid: 95, 85, 90, 150 → angle ≈ 103.9°; closest: 95° (index 6), 90° (index 8).
    assert easy_indices(FEATURES, LABELS, 2) == [1, 0, 6, 8]


def test_easy_more_than_available_gives_all():
    out = easy_indices(FEATURES, LABELS, 50)
    assert sorted(out) == list(range(10))


def test_hard_misclassified_first_then_farthest():
    preds = LABELS.clone()
    preds[1] = 1   # 10°: close to centroid but misclassified
    preds[3] = 1   # 40°
    # class 0 (centroid ≈ 11.9°): the wrong ones farthest first: 3 (40°, 28° away) then 1 (10°);
    # then the correct ones farthest first: 5 (80°, 68° away) then 4 (-40°, 52° away)
    assert hard_indices(FEATURES, LABELS, preds, 4)[:4] == [3, 1, 5, 4]
    # class 1 (no mistakes): farthest from its centroid first → 150° (index 9)
    assert hard_indices(FEATURES, LABELS, preds, 1) == [3, 9]


def test_herding_starts_near_the_mean():
    order = herding_order(F0.float())
    assert sorted(order) == list(range(6))
    assert order[0] == 1  # the single feature nearest the class mean
