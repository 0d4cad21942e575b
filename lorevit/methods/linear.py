"""``linear``: the plain Black Box, a linear probe on the frozen CLS feature (only the head trains)."""
from lorevit.methods.base import Method


class LinearProbe(Method):
    """No prompts, no change to the ViT: the head alone trains. Trivially mergeable (nothing to fold), so
    ``lorevit export --merge --format timm`` gives the plain timm ViT with the probe as its head."""

    mergeable = True

    def merge(self) -> None:
        """Nothing to fold: the ViT is unchanged."""
