"""Lexer and parser: nginx's tokenisation, structure errors and include expansion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from truehop.conf.ast import Arg, ConfigError, Directive
from truehop.conf.lexer import CONF_BUFFER, Kind, Token, tokenize, unescape
from truehop.conf.parser import (
    MAX_INCLUDE_DEPTH,
    bundled_mime_types,
    parse_file,
    parse_file_with_sources,
    parse_string,
)


def words(text: str) -> list[list[tuple[str, bool]]]:
    """Each directive of a flat text as [(word, quoted), ...] (name included)."""
    out: list[list[tuple[str, bool]]] = []
    cur: list[tuple[str, bool]] = []
    for t in tokenize(text, "t"):
        if t.kind is Kind.WORD:
            cur.append((t.value, t.quoted))
        elif t.kind in (Kind.SEMI, Kind.OPEN):
            out.append(cur)
            cur = []
    return out


def err(text: str, filename: str = "t.conf") -> str:
    with pytest.raises(ConfigError) as ei:
        parse_string(text, filename)
    return str(ei.value)


def shape(ds: tuple[Directive, ...]) -> list[object]:
    """Directives as nested lists of names/values, for compact expectations."""
    out: list[object] = []
    for d in ds:
        item: list[object] = [d.name, *d.values]
        if d.block is not None:
            item.append(shape(d.block))
        out.append(item)
    return out


# --- lexer -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("a b c;", [[("a", False), ("b", False), ("c", False)]]),
    ("a\tb\r\nc;", [[("a", False), ("b", False), ("c", False)]]),
    ('a "b c";', [[("a", False), ("b c", True)]]),
    ("a 'b c';", [[("a", False), ("b c", True)]]),
    ('a "";', [[("a", False), ("", True)]]),
    ("a '';", [[("a", False), ("", True)]]),
    # quotes inside a word are literal
    ('a b"c"d;', [[("a", False), ('b"c"d', False)]]),
    # } does not end a word, # inside a word is literal
    ("a b}c d#e;", [[("a", False), ("b}c", False), ("d#e", False)]]),
    # ${var}: the { after $ belongs to the word
    ("a ${host}x;", [[("a", False), ("${host}x", False)]]),
    ('a "${host}";', [[("a", False), ("${host}", True)]]),
    ("a x${a}${b};", [[("a", False), ("x${a}${b}", False)]]),
    # backslash escapes
    (r'a "x\"y";', [[("a", False), ('x"y', True)]]),
    (r"a 'x\'y';", [[("a", False), ("x'y", True)]]),
    (r'a "x\\y";', [[("a", False), ("x\\y", True)]]),
    (r'a "x\ny\tz\r";', [[("a", False), ("x\ny\tz\r", True)]]),
    (r'a "\d+\.\w";', [[("a", False), (r"\d+\.\w", True)]]),
    (r"a ^/(\d+)$;", [[("a", False), (r"^/(\d+)$", False)]]),
    # an escaped space or ; stays inside an unquoted word, backslash kept
    (r"a b\ c;", [[("a", False), (r"b\ c", False)]]),
    (r"a b\;c;", [[("a", False), (r"b\;c", False)]]),
    (r"a \"b;", [[("a", False), ('"b', False)]]),
    # a closing quote may be followed by ) (if conditions)
    ('if ($a = "x") {', [[("if", False), ("($a", False), ("=", False), ("x", True), (")", False)]]),
    # comments
    ("a b; # c d;\ne;", [[("a", False), ("b", False)], [("e", False)]]),
    ("a #b\n c;", [[("a", False), ("c", False)]]),
    ('a "#b";', [[("a", False), ("#b", True)]]),
    # ; and { end an unquoted word
    ("a b;c;", [[("a", False), ("b", False)], [("c", False)]]),
    ("a b{", [[("a", False), ("b", False)]]),
])
def test_words(text: str, expected: list[list[tuple[str, bool]]]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize("raw, value", [
    ("", ""),
    ("abc", "abc"),
    (r"\"", '"'),
    (r"\'", "'"),
    (r"\\", "\\"),
    (r"\n\r\t", "\n\r\t"),
    (r"\x", r"\x"),
    (r"\\n", r"\n"),
    (r"\x\n", "\\x\n"),
    ("a\\", "a\\"),
])
def test_unescape(raw: str, value: str) -> None:
    assert unescape(raw) == value


def test_token_lines() -> None:
    toks = list(tokenize('a\n"b\nc"\n;\n}', "t"))
    assert toks == [
        Token(Kind.WORD, 1, "a"),
        Token(Kind.WORD, 2, "b\nc", True),
        Token(Kind.SEMI, 4),
        Token(Kind.CLOSE, 5),
        Token(Kind.EOF, 5),
    ]


def test_too_long_parameter() -> None:
    text = 'a "' + "x" * (CONF_BUFFER + 10) + '";'
    with pytest.raises(ConfigError) as ei:
        parse_string("\n" + text, "t.conf")
    assert ei.value.message == 'too long parameter, probably missing terminating """ character'
    assert ei.value.line == 2
    with pytest.raises(ConfigError) as ei:
        parse_string("a " + "y" * (CONF_BUFFER + 1) + ";", "t.conf")
    assert ei.value.message == 'too long parameter "yyyyyyyyyy..." started'
    # just under the limit is fine
    assert parse_string("a " + "y" * (CONF_BUFFER - 1) + ";", "t")[0].values[0] == "y" * (
        CONF_BUFFER - 1)


# --- structure ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("  \n# only a comment\n", []),
    ("a;", [["a"]]),
    ("a b; c d e;", [["a", "b"], ["c", "d", "e"]]),
    ("a { }", [["a", []]]),
    ("a b { c; d { e; } }", [["a", "b", [["c"], ["d", [["e"]]]]]]),
    ("a{b;}c;", [["a", [["b"]]], ["c"]]),
    ("map $a $b { default 0; '' 1; \"~^x\" 2; }", [["map", "$a", "$b",
                                                   [["default", "0"], ["", "1"], ["~^x", "2"]]]]),
    ("types { text/html html htm; }", [["types", [["text/html", "html", "htm"]]]]),
    ('"quoted-name" x;', [["quoted-name", "x"]]),
])
def test_structure(text: str, expected: list[object]) -> None:
    assert shape(parse_string(text, "t.conf")) == expected


def test_directive_fields() -> None:
    (d,) = parse_string('server {\n  listen 80;\n  add_header X "a b"\n    always;\n}\n', "s.conf")
    assert d.name == "server" and d.args == () and d.file == "s.conf" and d.line == 1
    assert d.block is not None
    listen, add = d.block
    assert listen == Directive("listen", (Arg("80"),), None, "s.conf", 2)
    # like nginx, a directive's line is the line of its ";" or "{"
    assert add.line == 4
    assert add.args == (Arg("X"), Arg("a b", True), Arg("always"))


@pytest.mark.parametrize("text, message", [
    ("}", 'unexpected "}" in t.conf:1'),
    ("a;\n}", 'unexpected "}" in t.conf:2'),
    ("a {\n b c }\n", 'unexpected "}" in t.conf:2'),
    ("a b\n}", 'unexpected "}" in t.conf:2'),
    (";", 'unexpected ";" in t.conf:1'),
    ("a; ;", 'unexpected ";" in t.conf:1'),
    ("{", 'unexpected "{" in t.conf:1'),
    ("a {\n {", 'unexpected "{" in t.conf:2'),
    ("a {\n b;\n", 'unexpected end of file, expecting "}" in t.conf:3'),
    ("a {", 'unexpected end of file, expecting "}" in t.conf:1'),
    ("a", 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ("a b\n", 'unexpected end of file, expecting ";" or "}" in t.conf:2'),
    ('a "b', 'unexpected end of file, expecting ";" or "}" in t.conf:1'),
    ("a 'b\n\n", 'unexpected end of file, expecting ";" or "}" in t.conf:3'),
    ('a "b"c;', 'unexpected "c" in t.conf:1'),
    ("a 'b'\"c\";", "unexpected \"\"\" in t.conf:1"),
    ('a "b"}', 'unexpected "}" in t.conf:1'),
    ('a "b"#c', 'unexpected "#" in t.conf:1'),
    ("map $a $b {\n x {\n", 'unexpected "{" in t.conf:2'),
    ("types {\n text/html html { }\n}", 'unexpected "{" in t.conf:2'),
    ("split_clients $a $b { 50% { } }", 'unexpected "{" in t.conf:1'),
    ("include a b;", 'invalid number of arguments in "include" directive in t.conf:1'),
    ("include;", 'invalid number of arguments in "include" directive in t.conf:1'),
    ("include x {}", 'directive "include" is not terminated by ";" in t.conf:1'),
])
def test_structure_errors(text: str, message: str) -> None:
    assert err(text) == message


def test_error_carries_file_and_line() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_string("a;\n\n  }", "/etc/x.conf")
    e = ei.value
    assert (e.message, e.file, e.line) == ('unexpected "}"', "/etc/x.conf", 3)


@pytest.mark.parametrize("text, message", [
    ("worker_processes 2", 'unexpected end of parameter, expecting ";" in command line'),
    ("events { }", "block directives are not supported in -g option in command line"),
    ("}", 'unexpected "}" in command line'),
])
def test_command_line_mode(text: str, message: str) -> None:
    assert err(text, "command line") == message


def test_command_line_ok() -> None:
    assert shape(parse_string("daemon off; worker_processes 2;", "command line")) == [
        ["daemon", "off"], ["worker_processes", "2"]]


# --- files and includes ------------------------------------------------------------------

def write(p: Path, text: str) -> str:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return str(p)


def test_parse_file_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as ei:
        parse_file(path)
    assert str(ei.value) == f'open() "{path}" failed (2: No such file or directory)'


def test_include_in_place_keeps_file_and_line(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "a;\ninclude sub/x.conf;\nb;\n")
    sub = write(tmp_path / "sub" / "x.conf", "\n\nx 1;\ny { z; }\n")
    tree, sources = parse_file_with_sources(main)
    assert [(d.name, d.file, d.line) for d in tree] == [
        ("a", main, 1), ("x", sub, 3), ("y", sub, 4), ("b", main, 3)]
    assert sources == [(main, "a;\ninclude sub/x.conf;\nb;\n"), (sub, "\n\nx 1;\ny { z; }\n")]


def test_include_inside_blocks_and_map(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf",
                 "http { server { include loc.conf; } map $a $b { include m.map; } }")
    write(tmp_path / "loc.conf", "location / { return 204; }")
    write(tmp_path / "m.map", "default 0;\nfoo 1;\n")
    assert shape(parse_file(main)) == [["http", [
        ["server", [["location", "/", [["return", "204"]]]]],
        ["map", "$a", "$b", [["default", "0"], ["foo", "1"]]],
    ]]]


def test_include_relative_to_top_level_dir(tmp_path: Path) -> None:
    """Relative includes inside included files still resolve against the top file's dir."""
    main = write(tmp_path / "nginx.conf", "include conf.d/a.conf;")
    write(tmp_path / "conf.d" / "a.conf", "include snippets/b.conf;")
    write(tmp_path / "snippets" / "b.conf", "b;")
    assert shape(parse_file(main)) == [["b"]]


def test_include_glob_sorted_and_empty(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "include conf.d/*.conf; include none/*.conf; end;")
    for name in ("b.conf", "a.conf", "c.conf", "skip.txt", ".hidden.conf"):
        write(tmp_path / "conf.d" / name, f"{name.split('.')[0] or 'hidden'};")
    tree, sources = parse_file_with_sources(main)
    assert shape(tree) == [["a"], ["b"], ["c"], ["end"]]
    assert [os.path.basename(p) for p, _ in sources] == ["nginx.conf", "a.conf", "b.conf", "c.conf"]


def test_include_absolute(tmp_path: Path) -> None:
    inc = write(tmp_path / "abs" / "x.conf", "x;")
    main = write(tmp_path / "nginx.conf", f'include "{inc}";')
    assert shape(parse_file(main)) == [["x"]]


def test_include_missing_plain_path(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "a;\n\ninclude missing.conf;\n")
    missing = tmp_path / "missing.conf"
    with pytest.raises(ConfigError) as ei:
        parse_file(main)
    assert str(ei.value) == (
        f'open() "{missing}" failed (2: No such file or directory) in {main}:3')


def test_include_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    main = write(tmp_path / "nginx.conf", "include d;")
    with pytest.raises(ConfigError) as ei:
        parse_file(main)
    assert "Is a directory" in str(ei.value) and str(ei.value).endswith(f"in {main}:1")


def test_error_in_included_file_points_there(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "http {\n include bad.conf;\n}\n")
    bad = write(tmp_path / "bad.conf", "a;\nb {\n")
    with pytest.raises(ConfigError) as ei:
        parse_file(main)
    assert str(ei.value) == f'unexpected end of file, expecting "}}" in {bad}:3'


def test_included_file_cannot_close_outer_block(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "http {\n include bad.conf;\n")
    bad = write(tmp_path / "bad.conf", "a;\n}\n")
    with pytest.raises(ConfigError) as ei:
        parse_file(main)
    assert str(ei.value) == f'unexpected "}}" in {bad}:2'


def test_include_loop_is_stopped(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "include loop.conf;")
    loop = write(tmp_path / "loop.conf", "x;\ninclude loop.conf;\n")
    with pytest.raises(ConfigError) as ei:
        parse_file(main)
    assert "include nesting is deeper than" in ei.value.message
    assert ei.value.file == loop and ei.value.line == 2


def test_include_depth_limit_allows_deep_chains(tmp_path: Path) -> None:
    depth = MAX_INCLUDE_DEPTH - 1
    for i in range(depth):
        write(tmp_path / f"f{i}.conf", f"d{i};\ninclude f{i + 1}.conf;\n")
    write(tmp_path / f"f{depth}.conf", "last;")
    main = write(tmp_path / "nginx.conf", "include f0.conf;")
    assert shape(parse_file(main))[-1] == ["last"]


def test_sources_listed_once(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "include x.conf; include x.conf;")
    write(tmp_path / "x.conf", "x;")
    tree, sources = parse_file_with_sources(main)
    assert shape(tree) == [["x"], ["x"]]
    assert len(sources) == 2


def test_mime_types_fallback_to_bundled(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "http { include mime.types; }")
    tree, sources = parse_file_with_sources(main)
    assert sources[1][0] == bundled_mime_types()
    http = tree[0]
    assert http.block is not None
    (types,) = http.block
    assert types.name == "types" and types.file == bundled_mime_types()


def test_mime_types_local_file_wins(tmp_path: Path) -> None:
    main = write(tmp_path / "nginx.conf", "include mime.types;")
    write(tmp_path / "mime.types", "types { a/b c; }")
    assert shape(parse_file(main)) == [["types", [["a/b", "c"]]]]


def test_bundled_mime_types_is_nginx_complete() -> None:
    (types,) = parse_file(bundled_mime_types())
    assert types.name == "types" and types.block is not None
    ext = {e: t.name for t in types.block for e in t.values}
    assert len(types.block) == 86  # nginx 1.30 conf/mime.types, copied verbatim
    assert ext["html"] == "text/html" and ext["js"] == "application/javascript"
    assert ext["woff2"] == "font/woff2" and ext["wasm"] == "application/wasm"
    assert ext["avif"] == "image/avif"
    assert ext["docx"].endswith("wordprocessingml.document")


def test_parse_string_base_dir(tmp_path: Path) -> None:
    write(tmp_path / "x.conf", "x;")
    assert shape(parse_string("include x.conf;", "inline", base_dir=str(tmp_path))) == [["x"]]
    assert shape(parse_string("include x.conf;", str(tmp_path / "top.conf"))) == [["x"]]


def test_latin1_bytes_do_not_crash(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_bytes(b"add_header X \"caf\xe9\";\n")
    assert parse_file(str(p))[0].values == ["X", "caf\xe9"]


# --- differential: the same text through a real nginx ------------------------------------

NGINX_ERROR_CASES = [
    # lexer and structure (unchanged in nginx for many years, so any installed nginx will do)
    "}",
    "events {}\n}",
    ";",
    "events {}\n{",
    "events {",
    "events {}\nhttp {\n server {\n",
    "worker_processes",
    "worker_processes 1\n",
    'events {}\nhttp { add_header X "a"b; }',
    "events {}\nhttp { add_header X 'a'\"b\"; }",
    'events {}\nhttp { add_header X "a"}',
    'events {}\nhttp {\n add_header X "unterminated;\n}\n',
    "events {}\nhttp { add_header X a}\n",
    "events {}\nhttp { map $a $b {\n default 0;\n x { }\n} }",
    "events {}\nhttp { types {\n text/html html { }\n} }",
    "events {}\nhttp { server { location / {\n return 200 }\n } }",
    'events {}\nhttp { server { listen 80 "x"y; } }',
    "events {}\nhttp {\n server {\n  a#b; } }",
    # directive checks
    "events {}\nhttp { server { location / {\n proxy_pas http://127.0.0.1; } } }",
    "events {}\nhttp {\n server {\n  map $a $b { }\n }\n}",
    "events {}\nhttp { server; }",
    "events {}\nhttp { server { listen 80 { } } }",
    "events {}\nhttp { server { listen; } }",
    "events {}\nhttp { server { location = /a /b { } } }",
    "events {}\nhttp { add_header A; }",
    "events {}\nhttp { proxy_set_header A b c; }",
    "events {}\nhttp { sendfile on off; }",
    "events {}\nhttp { server { if ($a) { proxy_pass http://x; } } }",
    "events {}\nhttp { server { location / { if ($a) { proxy_set_header A b; } } } }",
    "events {}\nhttp { server { location / { if ($a) { if ($b) { } } } } }",
    "events {}\nhttp { location / { } }",
    "events {}\nhttp { upstream u { listen 80; } }",
    "events {}\nhttp { upstream u { server a { } } }",
    "events {}\nhttp { server { try_files $uri; } }",
    "events {}\nevents {}",
    "server { }",
    "events { server { } }",
    "events {}\nhttp {\n include /nonexistent-truehop.conf;\n}",
    "events {}\nhttp { include a b; }",
    "events {}\nhttp { include a { } }",
    "events {}\nhttp {\n add_header\n  A\n  ;\n}",
    "events {}\nhttp {\n server\n\n {\n map $a $b\n {\n } } }",
    'events {}\nhttp {\n add_header X "' + "x" * 5000 + '";\n}',
    "events {}\nhttp {\n add_header X '" + "\\n" * 3000,
    "events {}\nhttp {\n add_header X " + "y" * 5000 + ";\n}",
    "events {}\n# " + "c" * 5000 + "\nhttp {}",
]


def _nginx_first_error(conf: Path, prefix: Path) -> str | None:
    import re
    import shutil
    import subprocess

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed")
    r = subprocess.run([nginx, "-t", "-q", "-p", str(prefix), "-e", "stderr", "-c", str(conf)],
                       capture_output=True, text=True, timeout=20)
    m = re.search(r"\[emerg\] \d+#\d+: (.*)", r.stderr)
    return m.group(1) if m else None


@pytest.mark.nginx
@pytest.mark.parametrize("text", NGINX_ERROR_CASES)
def test_same_error_as_nginx(text: str, tmp_path: Path) -> None:
    from truehop.conf.directives import check_tree

    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    expected = _nginx_first_error(conf, tmp_path)
    assert expected is not None, "nginx accepted the config"
    with pytest.raises(ConfigError) as ei:
        check_tree(parse_file(str(conf)), "main")
    assert str(ei.value) == expected
