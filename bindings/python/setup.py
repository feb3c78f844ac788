"""The build step of the Python package: compiles libbhsync from the Rust crate with
cargo and puts it inside the package, so that ``pip install ./bindings/python`` (or
``pip wheel``) gives a package that imports anywhere with nothing else set.

The metadata is in pyproject.toml; this file only adds the step (docs/adr/052).

Environment:
  BHSYNC_CRATE_DIR      the bhsync repository (the directory of its Cargo.toml); by
                        default two levels above this file, where it is in a clone
  BHSYNC_CARGO_PROFILE  the cargo profile to build, ``release`` by default (``make test``
                        uses ``dev`` to reuse the build its Rust tests made)
  CARGO, CARGO_TARGET_DIR  as for cargo itself
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
LIBRARY_NAME = "libbhsync.so"


def crate_dir() -> Path:
    """The bhsync crate to build, with a message that says what to set when it is not
    where a clone has it (pip may build from a copy of this directory)."""
    explicit = os.environ.get("BHSYNC_CRATE_DIR")
    candidate = Path(explicit) if explicit else HERE.parent.parent
    manifest = candidate / "Cargo.toml"
    if manifest.is_file() and 'name = "bhsync"' in manifest.read_text(encoding="utf-8"):
        return candidate.resolve()
    where = f"BHSYNC_CRATE_DIR={explicit}" if explicit else f"{candidate} (two levels above setup.py)"
    raise SystemExit(
        f"bhsync: the Rust crate is not at {where}: build from a clone of the bhsync repository "
        "(pip install ./bindings/python), or set BHSYNC_CRATE_DIR to the directory with its Cargo.toml"
    )


def build_library() -> Path:
    """Runs cargo and returns the path of the shared library it built."""
    crate = crate_dir()
    cargo = os.environ.get("CARGO", "cargo")
    if shutil.which(cargo) is None:
        raise SystemExit(
            f"bhsync: {cargo} not found: install Rust (https://rustup.rs) to build libbhsync, "
            "or install a wheel built elsewhere"
        )
    profile = os.environ.get("BHSYNC_CARGO_PROFILE", "release")
    command = [
        cargo, "build", "--lib", "--profile", profile,
        "--manifest-path", str(crate / "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]
    print(f"bhsync: {' '.join(command)}", flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bhsync: cargo failed (exit {done.returncode}); its messages are above")
    built: List[Path] = []
    for line in done.stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "bhsync":
            built += [Path(name) for name in message["filenames"] if name.endswith("/" + LIBRARY_NAME)]
    if not built:
        raise SystemExit(f"bhsync: cargo built no {LIBRARY_NAME} (is the crate-type cdylib still in Cargo.toml?)")
    return built[-1]


class build_py_with_library(build_py):
    """build_py, then the library next to the package's modules."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds target/{release,debug} of the clone
        target = Path(self.build_lib) / "bhsync" / LIBRARY_NAME
        shutil.copyfile(build_library(), target)
        # The wheel carries the code, not the debug info (tens of MB); `make install`
        # keeps the debug info for those who debug the library itself.
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-unneeded", str(target)], check=True)
        target.chmod(0o755)


class binary_distribution(Distribution):
    """Holds a compiled library: installed into platlib, in a platform wheel."""

    def has_ext_modules(self) -> bool:
        return True


class platform_wheel(bdist_wheel):
    """A wheel for this platform, but for any Python 3: the library is loaded through
    ctypes, not built against the interpreter (py3-none-linux_x86_64)."""

    def get_tag(self) -> Tuple[str, str, str]:
        _python, _abi, platform = super().get_tag()
        return "py3", "none", platform


setup(
    distclass=binary_distribution,
    cmdclass={"build_py": build_py_with_library, "bdist_wheel": platform_wheel},
)
