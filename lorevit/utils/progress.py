"""Progress bars for long loops outside the training loop (Lightning draws its own)."""
from __future__ import annotations


def progress_bar(progress: bool | str, total: int | None, unit: str = "img", desc: str = "features"):
    """A tqdm bar for the tasks' long loops (None when ``progress`` is false; a string is its label)."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else desc, unit=unit,
                dynamic_ncols=True, leave=False)
