"""Text -> directive tree, following nginx's `ngx_conf_parse()`.

Theory of operation
-------------------
Tokens from the lexer are grouped into directives: words up to a `;` make a simple directive,
words up to a `{` open a block that ends at the matching `}`. The checks nginx makes while
reading are made here, with nginx's words and the line nginx reports (the line where the
offending character is; for a directive, the line of its `;` or `{`, which is what
`Directive.line` records, as nginx does in its own messages):

* `;` or `{` with no word before it -> `unexpected ";"` / `unexpected "{"`;
* `}` after words of an unfinished directive, or outside any block -> `unexpected "}"`;
* end of file inside a block -> `unexpected end of file, expecting "}"`;
* end of file after words of an unfinished directive ->
  `unexpected end of file, expecting ";" or "}"`;
* a block opened inside `map`, `types`, `split_clients`, `geo` or `charset_map` (whose
  bodies nginx hands to a custom handler) -> `unexpected "{"`.

`include PATTERN;` is expanded where it stands, at any depth and inside `map`/`types` too
(nginx does the same): the included directives replace it and keep their own file:line.
Relative patterns resolve against the directory of the top-level file; a pattern with glob
characters (`*?[`) may match nothing, its matches are read in sorted order; a plain path that
does not exist is `open() "/abs/path" failed (2: No such file or directory)`. One
convenience nginx does not have: `include mime.types;` that names a file missing from the
config directory reads the `mime.types` bundled with truehop (the one nginx ships).

Every file read is recorded once, with its text, for `truehop -T`.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterator
from importlib import resources

from truehop.conf.ast import Arg, ConfigError, Directive
from truehop.conf.lexer import COMMAND_LINE, Kind, Token, tokenize

__all__ = [
    "MAX_INCLUDE_DEPTH",
    "HANDLER_BLOCKS",
    "bundled_mime_types",
    "parse_string",
    "parse_file",
    "parse_file_with_sources",
]

MAX_INCLUDE_DEPTH = 32

# Blocks whose contents nginx gives to a custom handler: "name args;" lines, no nested blocks.
HANDLER_BLOCKS = frozenset({"map", "types", "split_clients", "geo", "charset_map"})

_GLOB_CHARS = frozenset("*?[")


def bundled_mime_types() -> str:
    """Path of the `mime.types` file shipped with truehop (nginx's own, release 1.30)."""
    return str(resources.files("truehop") / "data" / "mime.types")


def _os_error(call: str, path: str, e: OSError) -> str:
    code = e.errno if e.errno is not None else 0
    reason = os.strerror(code) if code else str(e)
    return f'{call}() "{path}" failed ({code}: {reason})'


def _read_text(path: str) -> str:
    """Read a config file; OSError propagates. Undecodable bytes are kept as latin-1 (nginx
    reads bytes; this never fails and keeps every byte distinct)."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(st.st_mode):
        # nginx reads as many bytes as fstat() reports: nothing, for a device or a fifo
        return ""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class _Parser:
    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir
        self.sources: list[tuple[str, str]] = []
        self._seen: set[str] = set()

    # --- files ---------------------------------------------------------------------------

    def record(self, path: str, text: str) -> None:
        if path not in self._seen:
            self._seen.add(path)
            self.sources.append((path, text))

    def parse_text(self, text: str, filename: str, depth: int) -> tuple[Directive, ...]:
        tokens = tokenize(text, filename)
        body = self._block(tokens, filename, depth, None, None)
        return tuple(body)

    def parse_path(self, path: str, depth: int, where: Directive | None) -> tuple[Directive, ...]:
        try:
            text = _read_text(path)
        except OSError as e:
            call = "pread" if isinstance(e, IsADirectoryError) else "open"
            msg = _os_error(call, path, e)
            if where is None:
                raise ConfigError(msg) from None
            raise _err(msg, where.file, where.line) from None
        self.record(path, text)
        return self.parse_text(text, path, depth)

    def include(self, d: Directive, depth: int) -> list[Directive]:
        if depth >= MAX_INCLUDE_DEPTH:
            raise _err(f'include nesting is deeper than {MAX_INCLUDE_DEPTH} levels '
                       f'(an include loop?) while including "{d.args[0].value}"', d.file, d.line)
        pattern = d.args[0].value
        full = pattern if os.path.isabs(pattern) else os.path.join(self.base_dir, pattern)
        full = os.path.normpath(full)
        out: list[Directive] = []
        if _GLOB_CHARS.intersection(pattern):
            for path in sorted(glob.glob(full)):
                out.extend(self.parse_path(path, depth + 1, d))
            return out
        if not os.path.exists(full) and os.path.basename(full) == "mime.types":
            full = bundled_mime_types()
        out.extend(self.parse_path(full, depth + 1, d))
        return out

    # --- structure -----------------------------------------------------------------------

    def _block(self, tokens: Iterator[Token], filename: str, depth: int,
               parent: str | None, open_line: int | None) -> list[Directive]:
        """Read directives up to the `}` closing `parent` (or to end of file when parent is
        None) and return them, includes expanded."""
        out: list[Directive] = []
        words: list[Token] = []
        in_handler = parent in HANDLER_BLOCKS
        for tok in tokens:
            if tok.kind is Kind.WORD:
                words.append(tok)
                continue
            if tok.kind is Kind.EOF:
                if words:
                    if filename == COMMAND_LINE:
                        raise _err('unexpected end of parameter, expecting ";"', filename, tok.line)
                    raise _err('unexpected end of file, expecting ";" or "}"', filename, tok.line)
                if parent is not None:
                    raise _err('unexpected end of file, expecting "}"', filename, tok.line)
                return out
            if tok.kind is Kind.CLOSE:
                if words or parent is None:
                    raise _err('unexpected "}"', filename, tok.line)
                return out
            # SEMI or OPEN
            if not words:
                raise _err(f'unexpected "{tok.kind.value}"', filename, tok.line)
            name = words[0].value
            args = tuple(Arg(w.value, w.quoted) for w in words[1:])
            words = []
            if tok.kind is Kind.SEMI:
                d = Directive(name, args, None, filename, tok.line)
                if name == "include":
                    if len(args) != 1:
                        raise _err('invalid number of arguments in "include" directive',
                                   filename, tok.line)
                    out.extend(self.include(d, depth))
                else:
                    out.append(d)
                continue
            # OPEN
            if filename == COMMAND_LINE:
                raise _err("block directives are not supported in -g option", filename, tok.line)
            if in_handler:
                raise _err('unexpected "{"', filename, tok.line)
            if name == "include":
                raise _err('directive "include" is not terminated by ";"', filename, tok.line)
            body = self._block(tokens, filename, depth, name, tok.line)
            out.append(Directive(name, args, tuple(body), filename, tok.line))
        raise AssertionError("the lexer always ends with EOF")  # pragma: no cover


def _err(message: str, filename: str, line: int) -> ConfigError:
    if filename == COMMAND_LINE:
        return ConfigError(message, filename, None)
    return ConfigError(message, filename, line)


def parse_string(text: str, filename: str, *, base_dir: str | None = None) -> tuple[Directive, ...]:
    """Parse config text. `filename` names it in errors and in `Directive.file`; includes
    resolve against `base_dir` (default: the directory of `filename` when it is an absolute
    path, else the current directory). `filename == "command line"` gives nginx's `-g`
    behaviour (no blocks, errors "in command line")."""
    if base_dir is None:
        base_dir = os.path.dirname(filename) if os.path.isabs(filename) else os.getcwd()
    p = _Parser(os.path.abspath(base_dir))
    return p.parse_text(text, filename, 0)


def parse_file_with_sources(path: str) -> tuple[tuple[Directive, ...], list[tuple[str, str]]]:
    """Parse a config file; also return every file read, once each, as (path, text) in the
    order nginx reads them (what `nginx -T` prints)."""
    path = os.path.abspath(path)
    p = _Parser(os.path.dirname(path))
    tree = p.parse_path(path, 0, None)
    return tree, p.sources


def parse_file(path: str) -> tuple[Directive, ...]:
    """Parse a config file (absolute file names in the tree)."""
    return parse_file_with_sources(path)[0]
