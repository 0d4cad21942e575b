"""``linear``: the plain Black Box, a linear probe on the frozen CLS feature (only the head trains)."""
from lorevit.methods.base import Method


class LinearProbe(Method):
    """No prompts, no change to the ViT: the head alone trains."""
