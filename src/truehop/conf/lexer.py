"""Tokens of nginx's configuration language, read exactly as nginx's `ngx_conf_read_token()` reads.

Theory of operation
-------------------
The lexer is a character-at-a-time state machine that mirrors `src/core/ngx_conf_file.c`
(nginx 1.30) flag for flag, so that the same bytes split into the same words:

* whitespace is space, tab, CR and LF; `#` starts a comment only where a word could start
  (`a#b` is one word);
* an unquoted word ends at whitespace, `;` or `{` -- but *not* at `}` (`a}` is one word) --
  and a `{` right after `$` belongs to the word (`${var}`);
* a quoted word (`"..."` or `'...'`) must be followed by whitespace, `;`, `{` or `)`,
  otherwise nginx says `unexpected "x"`; quotes in the middle of a word are literal;
* a backslash makes the next character inert (`\\"` does not close a string, `a\\ b` is one
  word); after the word is cut, `\\"` `\\'` `\\\\` lose their backslash, `\\n` `\\r` `\\t` become
  control characters and any other `\\x` keeps the backslash (regexes survive: `\\d`);
* a word (or comment) that runs for 4096 characters without ending is refused the way
  nginx refuses it (its read buffer is that size).

It yields `WORD`, `SEMI` (`;`), `OPEN` (`{`), `CLOSE` (`}`) and one final `EOF` token, each
with the line it was read on. Which of `;`/`{`/`}` is legal where is the parser's business
(nginx checks it against the number of words read so far, so does the parser). The lexer
itself raises only: `unexpected "x"` after a quoted word, `unexpected end of file, expecting
";" or "}"` inside an unfinished word, and the too-long-parameter errors.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from truehop.conf.ast import ConfigError

# nginx's NGX_CONF_BUFFER: a token must fit in the read buffer.
CONF_BUFFER = 4096

# The pseudo file name of `-g` directives; nginx words its errors "in command line".
COMMAND_LINE = "command line"

_SPACE = frozenset(" \t\r\n")


class Kind(enum.Enum):
    WORD = "word"
    SEMI = ";"
    OPEN = "{"
    CLOSE = "}"
    EOF = "end of file"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    line: int
    value: str = ""
    quoted: bool = False


def unescape(raw: str) -> str:
    """nginx's post-processing of a cut word: `\\"` `\\'` `\\\\` drop the backslash, `\\n` `\\r`
    `\\t` become control characters, every other backslash stays."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt == "n":
                out.append("\n")
                i += 2
                continue
            if nxt == "r":
                out.append("\r")
                i += 2
                continue
            if nxt == "t":
                out.append("\t")
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _error(message: str, filename: str, line: int) -> ConfigError:
    if filename == COMMAND_LINE:
        return ConfigError(message, filename, None)
    return ConfigError(message, filename, line)


def tokenize(text: str, filename: str) -> Iterator[Token]:
    """Yield the tokens of `text`; raise ConfigError (nginx wording) on a lexical error.

    `filename` is only used in error messages; `COMMAND_LINE` switches to the wording nginx
    uses for `-g` parameters."""
    n = len(text)
    line = 1
    i = 0
    # nginx's flags, reset after every `;`, `{` and `}` (each ends one read_token() call).
    need_space = False
    last_space = True
    sharp = False
    variable = False
    escaped = False  # nginx's `quoted`: the previous character was a backslash
    s_quoted = False
    d_quoted = False
    start = 0
    start_line = 1

    while True:
        if i >= n:
            if not last_space:
                if filename == COMMAND_LINE:
                    raise _error('unexpected end of parameter, expecting ";"', filename, line)
                raise _error('unexpected end of file, expecting ";" or "}"', filename, line)
            yield Token(Kind.EOF, line)
            return
        if i - start >= CONF_BUFFER:
            if d_quoted or s_quoted:
                q = '"' if d_quoted else "'"
                raise _error(
                    f'too long parameter, probably missing terminating "{q}" character',
                    filename, start_line)
            raise _error(f'too long parameter "{text[start:start + 10]}..." started',
                         filename, start_line)

        ch = text[i]
        i += 1

        if ch == "\n":
            line += 1
            sharp = False
        if sharp:
            continue
        if escaped:
            escaped = False
            continue

        if need_space:
            if ch in _SPACE:
                last_space = True
                need_space = False
                continue
            if ch == ";" or ch == "{":
                yield Token(Kind.SEMI if ch == ";" else Kind.OPEN, line)
                need_space = False
                last_space = True
                variable = False
                start = i
                start_line = line
                continue
            if ch == ")":
                last_space = True
                need_space = False
            else:
                raise _error(f'unexpected "{ch}"', filename, line)

        if last_space:
            start = i - 1
            start_line = line
            if ch in _SPACE:
                continue
            if ch == ";" or ch == "{" or ch == "}":
                kind = Kind.SEMI if ch == ";" else Kind.OPEN if ch == "{" else Kind.CLOSE
                yield Token(kind, line)
                variable = False
                start = i
                continue
            if ch == "#":
                sharp = True
                continue
            last_space = False
            if ch == "\\":
                escaped = True
            elif ch == '"':
                start += 1
                d_quoted = True
            elif ch == "'":
                start += 1
                s_quoted = True
            elif ch == "$":
                variable = True
            continue

        if ch == "{" and variable:
            continue
        variable = False
        if ch == "\\":
            escaped = True
            continue
        if ch == "$":
            variable = True
            continue

        found = False
        quoted_word = False
        if d_quoted:
            if ch == '"':
                d_quoted = False
                need_space = True
                found = quoted_word = True
        elif s_quoted:
            if ch == "'":
                s_quoted = False
                need_space = True
                found = quoted_word = True
        elif ch in _SPACE or ch == ";" or ch == "{":
            last_space = True
            found = True

        if found:
            yield Token(Kind.WORD, start_line, unescape(text[start:i - 1]), quoted_word)
            if ch == ";" or ch == "{":
                yield Token(Kind.SEMI if ch == ";" else Kind.OPEN, line)
                variable = False
                start = i
                start_line = line
