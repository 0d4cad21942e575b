"""Reading formats that are Python pickles by design (CIFAR batches, Revisited Oxford/Paris ground
truth) without letting a crafted file run code.

``pickle.load`` imports and calls whatever globals a file names (``os.system``, ``builtins.eval``):
a downloaded dataset file could run anything. :func:`safe_load` resolves only an explicit allow-list
of ``(module, name)`` globals and refuses every other one *before* it is imported, naming the file
and the global. Plain containers (dict, list, tuple, str, bytes, int, float, bool, None) are built by
pickle opcodes and need no global at all.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Iterable

# What a pickled numpy array (or scalar) needs, under numpy 1.x and 2.x module names. Each builds an
# array or dtype from plain data; none imports or calls anything else.
NUMPY_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer")})
# Python 3 writes ``bytes`` at pickle protocol < 3 as ``_codecs.encode(text, "latin1")`` (a pure text →
# bytes transform): CIFAR batches re-saved by Python 3 at protocol 2 hold it. An *empty* array's bytes are
# written as a bare ``bytes()`` call instead (``__builtin__.bytes`` at protocol 2): a constructor of bytes only.
BYTES_GLOBALS = frozenset({("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")})


class UnsafePickleError(ValueError):
    """The file asks for a global outside the allow-list (or is not a readable pickle)."""


class _Restricted(pickle.Unpickler):
    def __init__(self, file, allowed: frozenset, source: str, replace: dict | None = None, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed, self.source, self.replace = allowed, source, dict(replace or {})

    def find_class(self, module: str, name: str):
        if (module, name) in self.replace:  # a foreign record class read as a plain local one (never imported)
            return self.replace[(module, name)]
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        # Not "corrupt": the file may well be genuine (written by a newer tool), only not on the allow-list.
        allowed = ", ".join(sorted(f"{m}.{n}" for m, n in self.allowed)) or "none"
        raise UnsafePickleError(
            f"{self.source}: refused to load: the pickle asks for the global {module}.{name}, which this reader "
            f"does not allow (allowed: {allowed}); nothing was imported or run. Use a copy from the format's official "
            "source, or re-save the data with plain lists and numbers")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused to load: the pickle uses persistent ids, which this format never needs")


def safe_loads(data: bytes, allowed: Iterable[tuple[str, str]] = (), source: str = "<bytes>",
               encoding: str = "ASCII", replace: dict | None = None) -> object:
    """Unpickle ``data`` resolving only the ``allowed`` (module, name) globals.

    ``replace`` maps a (module, name) global to a local class that stands in for it without importing the
    module (Dassl's ``Datum`` record → a plain record); the local class must only store the state it is given."""
    try:
        return _Restricted(io.BytesIO(data), frozenset(allowed), source, replace, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # UnpicklingError, EOFError, ValueError, ... from a truncated or foreign file
        raise UnsafePickleError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from err


def safe_load(path: str | Path, allowed: Iterable[tuple[str, str]] = (), encoding: str = "ASCII",
              replace: dict | None = None) -> object:
    """Unpickle the file at ``path`` resolving only the ``allowed`` (module, name) globals (and ``replace``)."""
    path = Path(path)
    return safe_loads(path.read_bytes(), allowed, str(path), encoding, replace)
