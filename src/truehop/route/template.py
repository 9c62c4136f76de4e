"""A compiled config string with variables (`"t=${msec}"`): literal parts and getters.

The leaf under the model: `conf.model` holds Templates, `route.variables` makes their getters
(over the request state) and `VariableScope` compiles them. Nothing here knows what a getter
reads: a getter takes the request (whatever the caller passes) and returns a str.

nginx's variables can be "not found" (an absent header, `$remote_user` without credentials).
Everywhere but the access log that reads as "", and that is what getters return. The access
log's default escaping writes "-" for it, so a getter whose value can be not found carries a
twin, recorded by `not_found_twin`, returning None then; `Template.log_parts` holds those
twins. The hot path (proxy_set_header, return, maps) never calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# typed over Any, not the request state: the template sits below the state it is given
Getter = Callable[[Any], str]
# a getter that returns None for nginx's "not found" (the access log's view of a variable)
LogGetter = Callable[[Any], str | None]


class Template:
    """A compiled string with variables. `static` is set when it has none (the common case,
    evaluated without a call)."""

    __slots__ = ("source", "parts", "static", "names", "log_parts")

    def __init__(self, source: str, parts: list[str | Getter], names: list[str]) -> None:
        self.source = source
        self.parts = parts
        self.names = names
        self.static: str | None = None
        if all(isinstance(p, str) for p in parts):
            self.static = "".join(p for p in parts if isinstance(p, str))
        # the parts as the access log reads them: a getter's not-found-aware twin where it has
        # one (None: nginx's "not found", logged "-" with the default escaping)
        self.log_parts: list[str | LogGetter] = [
            p if isinstance(p, str) else _TWIN.get(p, p) for p in parts]

    def render(self, r: Any) -> str:
        if self.static is not None:
            return self.static
        return "".join(p if isinstance(p, str) else p(r) for p in self.parts)

    def uses(self, name: str) -> bool:
        return name in self.names

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class VariableLookup(Protocol):
    """What the model keeps of the scope its templates were compiled in
    (`route.variables.VariableScope`): the getter of a name, for tests and tools."""

    def getter(self, name: str) -> Getter: ...

    def known(self, name: str) -> bool: ...


# getter -> its not-found-aware twin (read by `Template.log_parts` and the access log only).
# A table, not a function attribute: compiled functions have no __dict__. It stays small
# because the getter factories in route.variables are cached by name, so a reload reuses
# their closures.
_TWIN: dict[Getter, LogGetter] = {}


def not_found_twin(get: Getter, nf: LogGetter) -> Getter:
    """Record `nf` as the not-found-aware twin of `get`, and return `get`."""
    _TWIN[get] = nf
    return get


def log_getter(get: Getter) -> LogGetter:
    """The access log's view of a getter: its twin when it has one, else itself."""
    return _TWIN.get(get, get)


def literal(text: str) -> Template:
    return Template(text, [text], [])
