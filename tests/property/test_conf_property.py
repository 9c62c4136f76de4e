"""Fuzz invariants of the config language: any text parses to a tree of Directives or raises
ConfigError, nothing else; a parsed tree passes or fails `check_tree` with ConfigError; and
the dump of any parsed tree parses back to the same tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truehop.conf.ast import Arg, ConfigError, Directive
from truehop.conf.directives import check_tree, detect_top
from truehop.conf.dump import dump_tree
from truehop.conf.parser import HANDLER_BLOCKS, parse_string

PIECES = [
    "{", "}", ";", '"', "'", "\\", "#", "$", "${", "(", ")", " ", "\t", "\n", "\r\n", "include",
    "include x;", "include *.conf;", "server", "location", "map", "types", "if", "http", "events",
    "listen", "proxy_pass", "gzip", "a", "b1", "$host", "~*", "=", "^~", "\\n", '\\"', "é", "\x00",
    "worker_processes", "upstream", "set", "return", "on", "off", "''", '""',
]

fragments = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
anything = st.one_of(st.text(max_size=300), fragments)


def shape(ds: tuple[Directive, ...]) -> list[object]:
    return [[d.name, d.values, None if d.block is None else shape(d.block)] for d in ds]


def assert_tree(tree: object) -> None:
    assert isinstance(tree, tuple)
    for d in tree:
        assert isinstance(d, Directive)
        assert isinstance(d.name, str) and isinstance(d.line, int) and d.line >= 1
        assert all(isinstance(a, Arg) and isinstance(a.value, str) for a in d.args)
        if d.block is not None:
            assert_tree(d.block)


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conf")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=anything)
def test_parse_gives_tree_or_config_error(text: str, empty_dir: Path) -> None:
    try:
        tree = parse_string(text, "fuzz.conf", base_dir=str(empty_dir))
    except ConfigError as e:
        assert e.file is not None and e.message
        return
    assert_tree(tree)
    try:
        check_tree(tree, detect_top(tree))
    except ConfigError as e:
        assert e.message
    # the dump is canonical: it parses back to the same tree
    again = parse_string(dump_tree(tree), "dump.conf", base_dir=str(empty_dir))
    assert shape(again) == shape(tree)
    for was, now in zip(_flat_args(tree), _flat_args(again), strict=True):
        assert now.quoted or not was.quoted  # a quoted word stays quoted


def _flat_args(ds: tuple[Directive, ...]) -> list[Arg]:
    out: list[Arg] = []
    for d in ds:
        out.extend(d.args)
        if d.block is not None:
            out.extend(_flat_args(d.block))
    return out


@settings(max_examples=200, deadline=None)
@given(text=anything)
def test_command_line_mode(text: str) -> None:
    try:
        tree = parse_string(text, "command line", base_dir="/nonexistent-truehop-dir")
    except ConfigError as e:
        assert e.line is None  # nginx words -g errors "in command line"
        return
    assert all(d.block is None for d in tree)


# well-formed trees: generated as structures, dumped, parsed back
words = st.text(min_size=0, max_size=12)
args = st.lists(st.builds(Arg, words, st.booleans()), max_size=4)


@st.composite
def directives(draw: st.DrawFn, depth: int = 0, in_table: bool = False) -> Directive:
    name = draw(st.text(min_size=1, max_size=10).filter(lambda s: s != "include"))
    block = None
    # inside map/types/geo/... nginx reads `key value;` lines: no block opens there
    if depth < 3 and not in_table and draw(st.booleans()):
        block = tuple(draw(st.lists(directives(depth + 1, name in HANDLER_BLOCKS),
                                    max_size=3)))
    return Directive(name, tuple(draw(args)), block, "gen", 1)


@settings(max_examples=300, deadline=None)
@given(tree=st.lists(directives(), max_size=4).map(tuple))
def test_dump_parse_round_trip(tree: tuple[Directive, ...]) -> None:
    text = dump_tree(tree)
    again = parse_string(text, "dump.conf", base_dir="/nonexistent-truehop-dir")
    assert shape(again) == shape(tree)
    for was, now in zip(_flat_args(tree), _flat_args(again), strict=True):
        assert now.quoted or not was.quoted
