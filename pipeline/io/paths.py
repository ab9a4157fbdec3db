"""Which files a command reads and writes, checked before anything is opened.

Two outputs that land in one file overwrite each other (two handles each writing from
offset 0), and an output that is also an input is truncated before it is read. Every
command that writes files names all of them here, derived defaults included, and
fails at start with the options that collide instead of losing data at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

__all__ = ["FilePlan", "same_file_key"]


def same_file_key(path: Path) -> tuple[int, int] | str:
    """What makes two paths one file: device and inode for an existing file (hard
    links, symlinks, ``./a`` vs ``a``), the resolved absolute path otherwise."""
    try:
        st = os.stat(path)
    except OSError:
        return str(path.resolve())
    return (st.st_dev, st.st_ino)


@dataclass
class _Entry:
    option: str
    path: Path
    role: str  # "output", "directory" or "input"


@dataclass
class FilePlan:
    """The files of one command run; ``check()`` refuses any two that are one file.

    Outputs may share a file only when declared together with ``output(..., shares=)``
    (alerts and rollback commands written to one JSONL file, in order, through one
    handle); an input may be rewritten in place only where ``rewrites=`` says so
    (a state file read at start and replaced atomically at the end).
    """

    entries: list[_Entry] = field(default_factory=list)
    _allowed: set[frozenset[str]] = field(default_factory=set)

    def output(self, option: str, path: Path | str | None) -> FilePlan:
        if path is not None and str(path) != "-":
            self.entries.append(_Entry(option, Path(path), "output"))
        return self

    def directory(self, option: str, path: Path | str | None) -> FilePlan:
        if path is not None:
            self.entries.append(_Entry(option, Path(path), "directory"))
        return self

    def inputs(self, option: str, paths: Iterable[Path | str | None]) -> FilePlan:
        for path in paths:
            if path is not None and str(path) != "-":
                self.entries.append(_Entry(option, Path(path), "input"))
        return self

    def allow(self, first: str, second: str) -> FilePlan:
        """Let the files of options ``first`` and ``second`` be one file."""
        self._allowed.add(frozenset((first, second)))
        return self

    def check(self) -> None:
        """Raise ``ConfigError`` naming both options when two entries are one file
        (an input named twice is fine), or when a directory output is a file."""
        seen: dict[tuple[int, int] | str, _Entry] = {}
        for entry in self.entries:
            if entry.role == "directory" and entry.path.exists() and not entry.path.is_dir():
                raise ConfigError(f"{entry.option}: {entry.path} exists and is not a directory")
            key = same_file_key(entry.path)
            other = seen.get(key)
            if other is None:
                seen[key] = entry
                continue
            if other.role == entry.role == "input":
                continue
            if frozenset((other.option, entry.option)) in self._allowed:
                continue
            what = "is also read by" if "input" in (other.role, entry.role) else "would clobber"
            raise ConfigError(
                f"{entry.option} {what} {other.option}: both name {entry.path}; "
                "give them different files"
            )
