"""The directive table (conf/directives.py) is the one record of each directive: what it
fills, its parser, default, merge and effect. These tests hold the other places to it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from truehop.conf import directives as dt
from truehop.conf.ast import ConfigError
from truehop.conf.compile import Compiler, load
from truehop.conf.model import (
    SETTING_FIELDS,
    LevelSettings,
    ServerConf,
    Settings,
    SslConf,
    UpstreamConf,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "truehop"


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def test_settings_slots_are_the_tables_fields() -> None:
    fields = {s.field for s in dt.TABLE if s.target == dt.SETTINGS_T}
    fields |= {f for s in dt.TABLE if s.target == dt.SETTINGS_T for f, _ in s.also}
    assert fields == set(SETTING_FIELDS)


def test_every_entry_says_what_it_fills_and_does() -> None:
    for s in dt.TABLE:
        assert s.effect.kind in ("applied", "no-effect", "not-applied", "refused"), s
        assert s.effect.detail, s
        if s.target in (dt.SETTINGS_T, dt.MAIN_T, dt.UPSTREAM_T, dt.SERVER_T) and s.supported:
            assert s.parse is not None and s.field, s
        if s.target in (dt.SETTINGS_T, dt.SERVER_T):
            assert s.merge in (dt.VALUE, dt.LIST, dt.RULES), s
        if s.effect.kind == "applied":
            for where in s.effect.detail.split(", "):
                assert (SRC / where).is_file(), f"{s.name}: {where} does not exist"
        if s.effect.kind == "not-applied":
            assert s.effect.finding and s.effect.fix, s


def test_merged_settings_have_no_unset_defaulted_field(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "server { listen 127.0.0.1:8080; location / { } }")
    s = cfg.http.servers[0].locations[0].settings
    defaults = {e.field: e.default for e in dt.TABLE if e.target == dt.SETTINGS_T}
    for f in SETTING_FIELDS:
        v = getattr(s, f)     # AttributeError when a field was left unset
        if f in defaults and defaults[f] is not None:
            assert v is not None, f
    assert (s.keepalive_timeout, s.send_timeout, s.proxy_read_timeout) == (75.0, 60.0, 60.0)
    assert s.keepalive_header == 0.0


def test_level_keeps_what_it_wrote(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "proxy_read_timeout 5s;\nserver { listen 127.0.0.1:8080;\n"
                          "location / { proxy_set_header X-A 1; } }")
    srv = cfg.http.servers[0]
    loc = srv.locations[0]
    assert cfg.http.local.defined_here("proxy_read_timeout")
    assert not srv.local.defined_here("proxy_read_timeout")
    assert loc.local is not None and loc.local.defined_here("proxy_set_header")
    assert loc.settings.proxy_read_timeout == 5.0
    assert loc.settings.where["proxy_set_header"] == (str(tmp_path / "site.conf"), 3)


def test_upstream_defaults_come_from_the_table(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "upstream b { server 127.0.0.1:9; }\n"
                          "server { listen 127.0.0.1:8080; location / { proxy_pass http://b; } }")
    up = cfg.http.upstreams["b"]
    spec = dt.UPSTREAM_SPECS["keepalive"]
    assert spec.default == 32 and up.keepalive == 32 and not up.keepalive_set
    for fld, value in dt.defaults_of(dt.UPSTREAM_T).items():
        assert getattr(up, fld) == value, fld


def test_dataclass_defaults_agree_with_the_table() -> None:
    """UpstreamConf, ServerConf and SslConf keep constructor defaults for the objects built
    outside the compiler (implicit upstreams, tests): they must say what the table says.
    UpstreamConf.keepalive is 0 there on purpose: an implicit upstream caches nothing."""
    ups = {f.name: f.default for f in dataclasses.fields(UpstreamConf)}
    for fld, value in dt.defaults_of(dt.UPSTREAM_T).items():
        if fld != "keepalive":
            assert ups[fld] == value, fld
    srv = ServerConf([], [], [], {}, Settings(), LevelSettings(), (), SslConf())
    for fld, value in dt.defaults_of(dt.SERVER_T).items():
        head, _, rest = fld.partition(".")
        got = getattr(srv.ssl, rest) if rest else getattr(srv, head)
        assert got == value, fld


def test_not_applied_is_recorded_from_the_effect(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # no entry of the table is "accepted, not applied" today (limit_rate was, until it was
    # implemented): one is made for the test, with an `active` test like limit_rate's was
    spec = dt.BY_NAME["open_file_cache"][0]
    fake = dataclasses.replace(spec, effect=dt.not_applied(
        "no cache", "open-file-cache-ignored", "remove it",
        lambda d: d.args[0].value != "off"))
    monkeypatch.setitem(dt.BY_NAME, "open_file_cache", (fake,))
    cfg = _load(tmp_path, "open_file_cache off;\nserver { listen 127.0.0.1:8080;\n"
                          "location / { open_file_cache max=10; open_file_cache max=20; } }")
    where = str(tmp_path / "site.conf")
    assert cfg.not_applied == [("open_file_cache", (where, 3)), ("open_file_cache", (where, 3))]


@pytest.mark.parametrize("name", sorted({s.name for s in dt.SPECS if s.effect.kind == "no-effect"}))
def test_no_effect_directives_fill_nothing_on_the_request_path(name: str) -> None:
    # their Settings field, if any, is read by no module outside conf/ and lint/
    for s in dt.lookup(name):
        if s.target != dt.SETTINGS_T:
            continue
        for path in SRC.rglob("*.py"):
            if path.parent.name in ("conf", "lint"):
                continue
            assert f".{s.field}" not in path.read_text(), f"{s.field} is read in {path}"


# Assignments to an attribute named like a Settings field that are not Settings: another
# class's own attribute (`self.x = ...`), argparse's namespace, a listener's index.
_OTHER_OBJECTS = {("cli.py", "a.error_log"), ("process/runtime.py", "lst.index")}


def test_no_code_outside_conf_writes_a_settings_field() -> None:
    """The model is frozen after compile. mypyc cannot make a native class's attributes
    read-only, so this proves it from the source: outside conf/, no assignment targets a
    Settings field of anything but `self` (another class's own attribute), and no
    `setattr` names one."""
    fields = set(SETTING_FIELDS)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("conf/"):
            continue
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("setattr", "delattr") and len(node.args) >= 2:
                attr = node.args[1]
                if not isinstance(attr, ast.Constant) or attr.value in fields:
                    if ast.unparse(attr) not in ("DEPTH_ATTR", "CHOOSE_ATTR"):
                        found.append((rel, node.lineno, ast.unparse(node)))
            for t in targets:
                for a in ast.walk(t):
                    if isinstance(a, ast.Attribute) and isinstance(a.ctx, ast.Store) and \
                            a.attr in fields:
                        text = ast.unparse(a)
                        if text.startswith("self.") and text.count(".") == 1:
                            continue
                        if (rel, text) not in _OTHER_OBJECTS:
                            found.append((rel, node.lineno, text))
    assert not found, found


# --- block and structural directives: the walk dispatches on the entry -----------------------

def test_every_walk_method_is_a_compiler_method() -> None:
    """An entry's `compile` and `declare` name Compiler methods: `compile(directive, into)`,
    `declare(directive)`."""
    named = 0
    for s in dt.SPECS:
        for method, arity in ((s.compile, 2), (s.declare, 1)):
            if not method:
                continue
            fn = getattr(Compiler, method, None)
            assert callable(fn), f"{s.name}: Compiler.{method} does not exist"
            params = list(inspect.signature(fn).parameters)[1:]
            assert len(params) == arity, f"{s.name}: Compiler.{method}{params}"
            named += 1
    assert named >= 12
    for name in ("http", "events", "upstream", "log_format", "map", "location", "proxy_pass",
                 "internal"):
        assert any(s.compile for s in dt.lookup(name)), name
    assert dt.entry("server", dt.HTTP).compile == "compile_server"    # type: ignore[union-attr]
    assert not dt.entry("server", dt.UPSTREAM).compile    # type: ignore[union-attr]


# Comparisons of a name with a literal that stay in compile.py: values, not dispatch.
_VALUE_COMPARISONS = {
    "name == 'combined'",       # a log_format's name: nginx's built-in format
    "e.name == 'volatile'",     # a key of a map's body (data, not a directive)
    # the two array values apply_server_values pairs in order (certificate with key)
    "spec.name in ('ssl_certificate', 'ssl_certificate_key')",
}


def test_compile_dispatches_on_no_directive_name() -> None:
    tree = ast.parse((SRC / "conf" / "compile.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        if not ((isinstance(left, ast.Attribute) and left.attr == "name") or
                (isinstance(left, ast.Name) and left.id == "name")):
            continue
        literal = any(isinstance(c, ast.Constant) or
                      isinstance(c, (ast.Tuple, ast.Set, ast.List)) for c in node.comparators)
        if literal:
            found.add(ast.unparse(node))
    assert found == _VALUE_COMPARISONS


@pytest.mark.parametrize("text,line", [
    # the http level: upstreams, then log formats, then maps, then its settings, then servers
    ("log_format combined x;\nupstream u { }\n", 2),
    ("map $a $b { a b c; }\nlog_format combined x;\n", 2),
    ("server { location / { proxy_buffering maybe; } }\nmap $a $b { a b c; }\n", 2),
    ("server { location / { proxy_buffering maybe; } }\nproxy_read_timeout x;\n", 2),
    # a location: its proxy_pass before its nested locations
    ("server {\nlocation ~ ^/a {\nlocation /a/b { proxy_buffering maybe; }\n"
     "proxy_pass http://127.0.0.1:1/u;\n} }\n", 4),
    # nested locations in file order, each one whole before the next
    ("server {\nlocation /a { location /a/b { proxy_buffering maybe; } }\n"
     "location /c { proxy_buffering maybe; }\n}\n", 2),
])
def test_errors_are_found_in_the_walks_stage_order(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert e.value.line == line, str(e.value)
