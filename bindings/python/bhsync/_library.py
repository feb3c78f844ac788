"""Finding and loading libbhsync.so.

The package is Python over the C ABI (``include/bhsync.h``) through ctypes. ``pip
install`` builds the shared library with cargo and puts it next to this file (setup.py),
so an installed package needs nothing else. It looks, in this order, at:

1. the ``BHSYNC_LIB`` environment variable: the path of the library file;
2. ``libbhsync.so`` next to this file (where a wheel or ``pip install`` puts it);
3. ``target/release`` then ``target/debug`` of the source tree this package sits in
   (an editable install or running from the repository), then of the current directory
   and its parents;
4. the system's search path (``ldconfig``, ``LD_LIBRARY_PATH``).

ctypes ``CDLL`` releases the GIL for the duration of every foreign call, so a blocking
``bhs_sync`` or ``bhs_poll_event`` never stalls the other Python threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Iterator, Optional

LIBRARY_ENV = "BHSYNC_LIB"
_LIBRARY_NAME = "libbhsync.so"


class LibraryNotFoundError(ImportError):
    """libbhsync.so was not found, or is not loadable (the message lists where we looked)."""


def _candidates() -> Iterator[Path]:
    here = Path(__file__).resolve().parent
    yield here / _LIBRARY_NAME
    roots = [here, *here.parents, Path.cwd(), *Path.cwd().parents]
    seen = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        for profile in ("release", "debug"):
            yield root / "target" / profile / _LIBRARY_NAME


def find_library() -> str:
    """The path of the library to load (see the module doc for the order)."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise LibraryNotFoundError(f"{LIBRARY_ENV}={explicit!r} is not a file")
        return explicit
    looked = []
    for candidate in _candidates():
        looked.append(str(candidate))
        if candidate.is_file():
            return str(candidate)
    system = ctypes.util.find_library("bhsync")
    if system:
        return system
    raise LibraryNotFoundError(
        "libbhsync.so not found: reinstall the package with `pip install ./bindings/python` (it builds "
        f"the library inside it), or set {LIBRARY_ENV} to a libbhsync.so; looked in {LIBRARY_ENV}, "
        + ", ".join(looked[:4]) + ", …, and the system path"
    )


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Loads the library (CDLL: the GIL is released during each call)."""
    path = path or find_library()
    try:
        return ctypes.CDLL(path)
    except OSError as error:
        raise LibraryNotFoundError(f"cannot load {path}: {error}") from error
