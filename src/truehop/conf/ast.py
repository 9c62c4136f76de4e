"""The parser's output: a tree of directives, each carrying where it was written.

Shared by the parser (which builds it), the directive table (which checks it) and the
compiler (which turns it into the model). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument token. `quoted` matters: nginx treats `if ($a = "")` and `if ($a = )`
    differently, and a quoted `{` is a literal, not a block."""

    value: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    args: tuple[Arg, ...]
    block: tuple[Directive, ...] | None  # None: a simple directive ending in ';'
    file: str
    line: int

    @property
    def values(self) -> list[str]:
        return [a.value for a in self.args]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class ConfigError(Exception):
    """A configuration error, worded as nginx words it: `<message> in FILE:LINE`."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.message} in {self.file}"
        return f"{self.message} in {self.file}:{self.line}"

    @classmethod
    def at(cls, message: str, d: Directive) -> ConfigError:
        return cls(message, d.file, d.line)
