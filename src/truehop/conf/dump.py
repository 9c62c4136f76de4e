"""Directive tree -> config text, and the `nginx -T` listing of the files read.

`dump_tree` writes a canonical form (4-space indents, one directive per line) that parses
back to the same tree: same names, same values, same blocks (only file:line differ). A word
is written bare when the lexer would read it back unchanged, otherwise in double quotes
with `"`, a backslash that would otherwise escape something, and control characters escaped.

`dump_files` is what `truehop -T` prints after the test: each file's original text under a
`# configuration file PATH:` header, exactly as `nginx -T` does.
"""

from __future__ import annotations

from collections.abc import Iterable

from truehop.conf.ast import Arg, ConfigError, Directive
from truehop.conf.lexer import Kind, tokenize

__all__ = ["quote", "dump_word", "dump_directive", "dump_tree", "dump_files"]

_UNSAFE = frozenset(" \t\r\n;{}\"'\\#")
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """`value` in double quotes, escaped so that nginx's lexer reads back exactly `value`."""
    out: list[str] = ['"']
    n = len(value)
    for i, c in enumerate(value):
        if c == '"':
            out.append('\\"')
        elif c in _CONTROL:
            out.append(_CONTROL[c])
        elif c == "\\":
            nxt = value[i + 1] if i + 1 < n else ""
            # a backslash stays as written unless the lexer would combine it with the next
            # character (or with the closing quote)
            out.append("\\\\" if nxt == "" or nxt in "\"'\\nrt" or nxt in _CONTROL else "\\")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _bare_ok(value: str) -> bool:
    """Would the lexer read `value` written bare back as exactly `value`, unquoted?"""
    if not value:
        return False
    if not any(c in _UNSAFE for c in value):
        return True
    if value[0] in "\"'" or any(c in value for c in "\r\n"):
        return False
    try:
        toks = list(tokenize(value + ";", "dump"))
    except ConfigError:
        return False
    return (len(toks) == 3 and toks[0].kind is Kind.WORD and toks[0].value == value
            and toks[1].kind is Kind.SEMI)


def dump_word(value: str, quoted: bool = False) -> str:
    """One word as config text; quoted when it was quoted or must be."""
    if quoted or not _bare_ok(value):
        return quote(value)
    return value


def _arg(a: Arg) -> str:
    return dump_word(a.value, a.quoted)


def dump_directive(d: Directive, indent: int = 0) -> list[str]:
    pad = "    " * indent
    head = " ".join([dump_word(d.name), *(_arg(a) for a in d.args)])
    if d.block is None:
        return [f"{pad}{head};"]
    lines = [f"{pad}{head} {{"]
    for e in d.block:
        lines.extend(dump_directive(e, indent + 1))
    lines.append(f"{pad}}}")
    return lines


def dump_tree(directives: Iterable[Directive]) -> str:
    """The tree as canonical config text (ends with a newline unless empty)."""
    lines: list[str] = []
    for d in directives:
        lines.extend(dump_directive(d))
    return "".join(line + "\n" for line in lines)


def dump_files(sources: Iterable[tuple[str, str]]) -> str:
    """`nginx -T`'s listing: `# configuration file PATH:`, the file's text, a newline."""
    return "".join(f"# configuration file {path}:\n{text}\n" for path, text in sources)
