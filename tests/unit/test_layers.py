"""The import graph of src/truehop against DESIGN.md's layers.

Every module is parsed with `ast` (nothing is imported), and every import counts: at module
level, under `if TYPE_CHECKING:` (a cycle hidden there is still a cycle in the design), and
inside functions. The graph must have no cycle, every import must go from a module to one of
lower or equal rank in RANKS, and no import may sit inside a function except the few in
FUNCTION_IMPORTS_ALLOWED.

The ranks are DESIGN.md's layers ("data flows down, nothing flows back up"), refined to
modules where a package holds more than one layer:

    0  leaves: the clock, the config's AST/lexer/value parsers, sans-IO events and headers,
       URI normalisation, the location tree, the Template, the client certificate's parsing
    1  sans-IO codecs (HTTP/1 both sides, HTTP/2), server name lookup
    2  conf.model: the frozen model, the data every layer below the runtime reads
    3  the exchange interface (http.exchange), per-request state (route.state)
    4  variables (getters over the request state); the directive table, parser, dump
    5  compile (text -> model), lint, detect, log
    6  net: the only code that touches transports
    7  proxy: the pipeline and what it drives (upstream, static files, balancer, pool)
    8  process.runtime: the model made live; it hands net its callbacks
    9  process.worker / process.master, explain, quick
    10 cli, __main__, demo
"""

from __future__ import annotations

import ast
import pathlib
from typing import Final

SRC: Final = pathlib.Path(__file__).resolve().parents[2] / "src" / "truehop"

RANKS: Final[dict[str, int]] = {
    "truehop": 0, "truehop.clock": 0,
    "truehop.conf": 0, "truehop.conf.ast": 0, "truehop.conf.lexer": 0, "truehop.conf.values": 0,
    "truehop.http": 0, "truehop.http.events": 0, "truehop.http.headers": 0,
    "truehop.http.status": 0, "truehop.http.coding": 0,
    "truehop.http.hpack": 0, "truehop.http.h2frames": 0,
    "truehop.route": 0, "truehop.route.uri": 0, "truehop.route.locations": 0,
    "truehop.route.template": 0, "truehop.certificate": 0, "truehop.htpasswd": 0,
    "truehop.net": 0, "truehop.proxy": 0, "truehop.process": 0,
    "truehop.http.h1": 1, "truehop.http.h1client": 1, "truehop.http.h2": 1,
    "truehop.route.servers": 1,
    "truehop.conf.model": 2,
    "truehop.http.exchange": 3, "truehop.route.state": 3,
    "truehop.route.variables": 4, "truehop.conf.directives": 4, "truehop.conf.parser": 4,
    "truehop.conf.dump": 4, "truehop.conf.parsers": 4, "truehop.conf.reference": 5,
    "truehop.conf.compile": 5, "truehop.lint": 5, "truehop.lint.report": 5,
    "truehop.lint.rules": 5, "truehop.detect": 5, "truehop.log": 5,
    "truehop.net.*": 6,
    "truehop.proxy.*": 7,
    "truehop.process.runtime": 8,
    "truehop.process.worker": 9, "truehop.process.master": 9, "truehop.explain": 9,
    "truehop.quick": 9, "truehop.build": 9, "truehop.localca": 9,
    "truehop.cli": 10, "truehop.testing": 10, "truehop.pytest_plugin": 10, "truehop.__main__": 10, "truehop.demo": 10, "truehop.demo.*": 10,
}

# Imports inside functions that stay: optional dependencies, and CLI start-up (cli.py loads
# only what the command it runs needs). (importing module, imported module)
FUNCTION_IMPORTS_ALLOWED: Final = frozenset({
    ("truehop.process.runtime", "cryptography"),   # optional: certificate expiry warnings
    ("truehop.demo.app", "uvloop"),                     # optional: the demo runs without
    ("truehop.cli", "ssl"),
    ("truehop.cli", "truehop.conf.compile"),
    ("truehop.cli", "truehop.detect"),
    ("truehop.cli", "truehop.explain"),
    ("truehop.cli", "truehop.lint.rules"),
    ("truehop.cli", "truehop.log"),
    ("truehop.cli", "truehop.process.master"),
    ("truehop.cli", "truehop.process.runtime"),
    ("truehop.cli", "truehop.quick"),
})

# Edges in files other work packages own right now, known and temporary: the lead removes
# each line once the file's owner has untied it. (importing module, imported module)
KNOWN_TEMPORARY: Final[frozenset[tuple[str, str]]] = frozenset()


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = p
    return mods


MODULES: Final = _modules()


def _resolve(name: str) -> str:
    """`truehop.conf.model.Config` -> `truehop.conf.model`: the longest module prefix."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


class Edge:
    __slots__ = ("src", "dst", "line", "in_function")

    def __init__(self, src: str, dst: str, line: int, in_function: bool) -> None:
        self.src = src
        self.dst = dst
        self.line = line
        self.in_function = in_function

    def __repr__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.src}:{self.line} -> {self.dst}{where}"


def _imports(mod: str, path: pathlib.Path) -> list[Edge]:
    """Every import in the module: at module level, under any `if` (TYPE_CHECKING included),
    inside functions and classes."""
    tree = ast.parse(path.read_text(), str(path))
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                # `from truehop import cli` imports a module; `from x import Name` a name
                names = [f"{target}.{a.name}" for a in child.names]
                if not target.startswith("truehop"):
                    names = [target]
            for name in names:
                if name.startswith("truehop"):
                    dst = _resolve(name)
                    if dst and dst != mod:
                        out.append(Edge(mod, dst, child.lineno, in_function))
                elif in_function:
                    out.append(Edge(mod, name, child.lineno, True))
            visit(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


EDGES: Final = [e for m, p in MODULES.items() for e in _imports(m, p)]


def rank(mod: str) -> int:
    if mod in RANKS:
        return RANKS[mod]
    parts = mod.split(".")
    for n in range(len(parts) - 1, 0, -1):
        r = RANKS.get(".".join(parts[:n]) + ".*")
        if r is not None:
            return r
    raise AssertionError(f"{mod} has no rank in RANKS: give it one (see the docstring)")


def _known(e: Edge) -> bool:
    return (e.src, e.dst) in KNOWN_TEMPORARY


def test_every_module_has_a_rank() -> None:
    for mod in MODULES:
        rank(mod)


def test_no_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        if e.dst in MODULES and not _known(e):
            graph[e.src].add(e.dst)
    # depth-first search, iteratively; a grey node reached again closes a cycle
    state: dict[str, int] = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))


def test_imports_go_down_the_layers() -> None:
    upward = [e for e in EDGES if e.dst in MODULES and not _known(e)
              and rank(e.src) < rank(e.dst)]
    assert not upward, "imports against the layers (rank up):\n" + "\n".join(
        f"  {e!r}  [{rank(e.src)} -> {rank(e.dst)}]" for e in upward)


def test_no_import_inside_a_function() -> None:
    inside = [e for e in EDGES if e.in_function and not _known(e)
              and (e.src, e.dst) not in FUNCTION_IMPORTS_ALLOWED]
    assert not inside, "imports inside functions:\n" + "\n".join(f"  {e!r}" for e in inside)


def test_the_allowances_are_still_needed() -> None:
    """An entry that matches no import any more goes (the lists only shrink)."""
    seen = {(e.src, e.dst) for e in EDGES}
    stale = sorted((FUNCTION_IMPORTS_ALLOWED | KNOWN_TEMPORARY) - seen)
    assert not stale, f"entries that match no import: {stale}"


def test_the_graph_sees_hidden_imports(tmp_path: pathlib.Path) -> None:
    """The parser finds imports under TYPE_CHECKING and inside functions (the test would pass
    vacuously otherwise)."""
    p = tmp_path / "x.py"
    p.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from truehop.conf.model import ServerConf\n"
        "def f():\n"
        "    from truehop.proxy.pipeline import Finish\n"
        "class C:\n"
        "    def m(self):\n"
        "        from .process import runtime\n")
    tree_edges = _imports("truehop.x", p)
    got = {(e.dst, e.in_function) for e in tree_edges}
    assert ("truehop.conf.model", False) in got          # under TYPE_CHECKING
    assert ("truehop.proxy.pipeline", True) in got       # inside a function
    assert ("truehop.process.runtime", True) in got      # relative, inside a method

