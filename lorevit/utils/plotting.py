"""matplotlib without a display (Agg), and figures saved atomically."""
from __future__ import annotations

from pathlib import Path

from lorevit.utils.io import atomic_write

DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    plt.close(fig)
    return Path(path)
