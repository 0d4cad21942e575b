"""Hypothesis profiles and helpers of the fuzz suite (issue 25 §3; ``tests/reliability/test_fuzz_readers.py``).

Profiles (``pytest --hypothesis-profile NAME``): ``ci`` (the default: derandomised, the whole suite in about two
minutes on a small CI machine) and ``nightly`` (random seeds, 25× the cases). Every fuzz test counts the cases it
ran in :data:`CASES`; ``tests/reliability/conftest.py`` prints the count at the end of the session.
"""
from __future__ import annotations

import collections
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CASES: collections.Counter = collections.Counter()  # test name -> cases run (all phases, shrinking included)

_COMMON = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture], print_blob=True)
settings.register_profile("ci", max_examples=100, deadline=10_000, derandomize=True, database=None, **_COMMON)
settings.register_profile("nightly", max_examples=1000, deadline=30_000, **_COMMON)
if settings.get_current_profile_name() == "default":  # imported by tests/conftest.py before --hypothesis-profile
    settings.load_profile(os.environ.get("LOREVIT_HYPOTHESIS_PROFILE", "ci"))


def count(name: str) -> None:
    CASES[name] += 1


# ------------------------------------------------------------------------------------------- mutations
@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` cut, with bytes flipped, inserted, deleted or overwritten, or replaced by random bytes."""
    n = len(valid)
    kind = draw(st.sampled_from(["cut", "flip", "insert", "delete", "overwrite", "random", "same"]))
    if kind == "same":
        return valid
    if kind == "random":
        return draw(st.binary(max_size=max(64, 2 * n) if n < 4096 else 4096))
    if kind == "cut":
        return valid[:draw(st.integers(0, max(n - 1, 0)))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
    return bytes(data)


# Values that break readers: wrong types, huge and non-finite numbers, names that leave a folder.
ODD_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 63, max_value=2 ** 1100),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", " ", "..", "../x", "/etc/passwd", "a/b", "C:x", "a\0b", "\\x", "NaN", "1e400", "-1"]),
)
JSON_VALUES = st.recursive(ODD_SCALARS.filter(lambda v: not (isinstance(v, int) and abs(v) > 2 ** 64)),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=4), max_leaves=8)
PY_VALUES = st.recursive(ODD_SCALARS | st.binary(max_size=8),
                         lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                         | st.dictionaries(st.text(max_size=6) | st.binary(max_size=6), inner, max_size=4),
                         max_leaves=8)


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into nested dicts and lists, the root () included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: _replace(obj[head], rest, value)}
    items = list(obj)
    items[head] = _replace(items[head], rest, value)
    return type(obj)(items) if isinstance(obj, tuple) else items


@st.composite
def edited(draw, valid, values=JSON_VALUES):
    """``valid`` (nested dicts/lists) with one to three parts replaced, deleted or given an extra key."""
    obj = valid
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(obj))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete" and path:
            parent = _get(obj, path[:-1])
            if isinstance(parent, dict):
                obj = _replace(obj, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
            else:
                items = list(parent)
                del items[path[-1]]
                obj = _replace(obj, path[:-1], items)
        elif action == "add" and isinstance(_get(obj, path), dict):
            obj = _replace(obj, path, {**_get(obj, path), draw(st.text(max_size=6)): draw(values)})
        else:
            obj = _replace(obj, path, draw(values))
    return obj


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


# ------------------------------------------------------------------------------------------ watching
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: a reader that writes anything changes it."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st_ = os.stat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), root)] = (st_.st_size, st_.st_mtime_ns)
    return out
