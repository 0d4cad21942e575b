"""``linear``: the plain Black Box, a linear probe on the frozen CLS feature."""
from .base import Method


class LinearProbe(Method):
    name = "linear"
