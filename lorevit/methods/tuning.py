"""The declared tuning grids of ``bench suite --protocol vtab|fgvc`` (issue 21 §2), as data.

A method's grid is what its own recipe searches on train800 → val200 (VTAB-1k) or train → val.json (FGVC):
:meth:`lorevit.methods.base.Method.tuning_grid` returns a :class:`TuningGrid` of config overrides (``lr``,
``weight_decay``, and ``method_options`` where a recipe also searches a method option), with the source it is
restated from (BASELINES_VISION.md sections; ``Alias:path`` as there) and the small subset ``--quick`` searches.
The suite chooses among the points (:func:`lorevit.bench.suite.choose_point`); nothing here trains.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

# VPT:tune_vtab.py `get_lrwd_range` ("prompt" and "linear": the same ten lrs and four wds; BASELINES_VISION §A4/§A5);
# its setup() scales every lr by DATA.BATCH_SIZE / 256 before training (all train types). FGVC: VPT:tune_fgvc.py's
# `<kind>_main`, "grids as in A4/A5" (§B2; KMnP/vpt's prompt_main as read at 7f3942e lists 9 of the 10, no 0.05)
VPT_LRS = (50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05)
VPT_WDS = (0.01, 0.001, 0.0001, 0.0)
VPT_FULL_LRS = (0.001, 0.0001, 0.0005, 0.005)  # VPT:tune_vtab.py "finetune" (§A4), same wds, same batch scaling
# PETLV:experiment/config/lr_wd_vtab_processed.yml (§A1): PETL_Vision's grid for every method it tunes
PETLV_LRS = (1e-3, 1e-2)
PETLV_WDS = (1e-4, 1e-3)
# PETLV:experiment/config/method/adaptformer.yml (§A2): k and s, searched with the PETLV lr × wd grid
ADAPTFORMER_KS = (4, 16, 32)
ADAPTFORMER_SCALES = (0.05, 0.1, 0.2)
# no declared grid (the CLIP family, a user's method): lr × these, at the run's own weight decay (lorevit's choice;
# the suite's grid before issue 21 §2 declared the methods' own)
DEFAULT_LR_FACTORS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class TuningGrid:
    """``points``: config overrides in search order; ``source``: where they come from (or "our choice");
    ``quick``: indices of the points ``--quick`` searches (two, so a quick suite costs what it did); ``names``:
    each point's run folder (default :func:`point_name`)."""

    points: tuple[dict[str, Any], ...]
    source: str
    quick: tuple[int, ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.points or not self.quick or any(not 0 <= i < len(self.points) for i in self.quick):
            raise ValueError(f"a tuning grid needs points and --quick indices among them; got {len(self.points)} "
                             f"points, quick {self.quick}")
        if not self.names:
            object.__setattr__(self, "names", tuple(point_name(p) for p in self.points))
        if len(set(self.names)) != len(self.points):
            raise ValueError(f"the points of a tuning grid need distinct names; got {self.names}")

    def quick_grid(self) -> "TuningGrid":
        """The ``--quick`` subset, as a grid of its own."""
        return TuningGrid(tuple(self.points[i] for i in self.quick), f"{self.source}; --quick: {len(self.quick)} of "
                          f"its {len(self.points)} points", tuple(range(len(self.quick))),
                          tuple(self.names[i] for i in self.quick))


def point_name(point: dict[str, Any]) -> str:
    """A point's folder name: ``lr0.00625_wd0.0001`` (method options appended: ``_bottleneck_dim4_scale0.05``)."""
    parts = [f"{'wd' if k == 'weight_decay' else k}{v:g}" for k, v in point.items() if k != "method_options"]
    parts += [f"{k}{v:g}" if isinstance(v, (int, float)) else f"{k}{v}"
              for k, v in point.get("method_options", {}).items()]
    return "_".join(parts) or "default"


def product_points(lrs: Sequence[float], wds: Sequence[float], scale: float = 1.0,
                   options: dict[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """lr × weight decay (× each method option's values), lr outermost, in the order given; ``scale`` multiplies
    every lr (VPT's batch / 256)."""
    names = list(options or {})
    points = []
    for lr, wd, *values in itertools.product(lrs, wds, *(options or {}).values()):
        point: dict[str, Any] = {"lr": lr * scale, "weight_decay": wd}
        if names:
            point["method_options"] = dict(zip(names, values))
        points.append(point)
    return points


def index_of(points: Sequence[dict], **wanted: Any) -> int:
    """The index of the first point whose keys (and method options) have the wanted values."""
    for i, point in enumerate(points):
        flat = {**point.get("method_options", {}), **point}
        if all(flat.get(k) == v for k, v in wanted.items()):
            return i
    raise ValueError(f"no point with {wanted}")


def vpt_grid(cfg: Any, protocol: str, lrs: Sequence[float] = VPT_LRS, kind: str = "prompt") -> TuningGrid:
    """VPT's lr × wd grid, every lr × batch_size / 256 (the run's batch size, as tune_vtab.py scales by its
    config's). ``--quick``: the two smallest lrs at wd 1e-4."""
    scale = cfg.batch_size / 256
    points = product_points(lrs, VPT_WDS, scale)
    small = sorted(lrs)[:2]
    where = f"tune_fgvc.py {kind}_main" if protocol == "fgvc" else f"tune_vtab.py get_lrwd_range({kind!r})"
    return TuningGrid(tuple(points), f"VPT:{where}: lr {{{', '.join(f'{v:g}' for v in lrs)}}}"
                      f" × batch {cfg.batch_size}/256, wd {{{', '.join(f'{v:g}' for v in VPT_WDS)}}} "
                      f"(BASELINES_VISION §{'A5' if kind == 'prompt' else 'A4'})",
                      tuple(index_of(points, lr=v * scale, weight_decay=1e-4) for v in small))


def petlv_grid(protocol: str, options: dict[str, Sequence[Any]] | None = None, source: str = "",
               quick_options: dict[str, Any] | None = None) -> TuningGrid:
    """PETL_Vision's lr {1e-3, 1e-2} × wd {1e-4, 1e-3} (× method options); ``--quick``: both lrs at wd 1e-4 (and
    ``quick_options``)."""
    points = product_points(PETLV_LRS, PETLV_WDS, options=options)
    where = "PETLV:experiment/config/lr_wd_vtab_processed.yml (BASELINES_VISION §A1)" + \
        (" [I]: its VTAB grid, reused on FGVC" if protocol == "fgvc" else "")
    return TuningGrid(tuple(points), f"{where}: lr {{1e-3, 1e-2}} × wd {{1e-4, 1e-3}}{source}",
                      tuple(index_of(points, lr=lr, weight_decay=1e-4, **(quick_options or {})) for lr in PETLV_LRS))


def lr_factor_grid(cfg: Any, factors: Sequence[float], source: str) -> TuningGrid:
    """lr × each factor at the run's weight decay; ``--quick``: the factors 1 and 2 where present (else the first
    two)."""
    points = [{"lr": cfg.lr * f} for f in factors]
    quick = tuple(i for i, f in enumerate(factors) if f in (1.0, 2.0)) or tuple(range(min(2, len(points))))
    return TuningGrid(tuple(points), source, quick, tuple(f"lr{f:g}x" for f in factors))
