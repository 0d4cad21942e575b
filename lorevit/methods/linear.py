"""``linear``: the plain Black Box, a linear probe on the frozen CLS feature (only the head trains)."""
from lorevit.methods.base import Method
from lorevit.methods.tuning import TuningGrid, vpt_grid


class LinearProbe(Method):
    """No prompts, no change to the ViT: the head alone trains. Trivially mergeable (nothing to fold), so
    ``lorevit export --merge --format timm`` gives the plain timm ViT with the probe as its head."""

    mergeable = True

    @classmethod
    def tuning_grid(cls, cfg, protocol: str) -> TuningGrid:
        """VPT:tune_vtab.py ``get_lrwd_range("linear")`` (BASELINES_VISION §A4): VPT's prompt grid, 40 points."""
        return vpt_grid(cfg, protocol, kind="linear")

    def merge(self) -> None:
        """Nothing to fold: the ViT is unchanged."""
