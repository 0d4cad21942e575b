"""The one exception type of :mod:`lorevit.weights`."""
from __future__ import annotations

from lorevit.errors import UserError


class WeightsError(UserError):
    """Weights could not be found, converted, verified, read or loaded.

    The message always says which file or package is involved and what to do about it.
    """


class WeightsNote(UserWarning):
    """A weights file was loaded with an adjustment the user should know of (its classifier head dropped or
    kept from the model, raw keys converted by timm's filter for the family); printed as one warning line."""
