"""Events that the sans-IO HTTP layers produce, and the error they raise.

The server side (`h1.H1ServerParser`, later `h2`) turns client bytes into `Request`, `Data`
and `EndOfMessage`; the client side (`h1client.H1ResponseParser`) turns upstream bytes into
`Response`, `Data` and `EndOfMessage`. A violation raises `ProtocolError` carrying the status
nginx would answer with; the caller answers and closes. Nothing from httptools or h2 leaks past
these modules.
"""

from __future__ import annotations

from dataclasses import dataclass


class ProtocolError(Exception):
    """Bad bytes from a peer. `status` is what to answer (client side: 400, 413, 414, 431, 501,
    505; upstream side: 502). The connection must be closed after answering."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


@dataclass(slots=True)
class RequestHead:
    method: str                       # e.g. "GET"; validated token
    target: str                       # the request target as sent (origin-form after absolute-form is split)
    path: str                         # raw path part of target, before '?', never empty (starts with '/')
    query: str | None                 # raw part after '?', None when there is no '?'
    version: str                      # "1.0", "1.1" or "2.0"
    headers: list[tuple[str, str]]    # (name as sent, value stripped of OWS), in order, latin-1
    host: str                         # validated host (from absolute-form or Host), lower-cased, port kept; "" if none
    content_length: int | None        # body length when framed by Content-Length
    chunked: bool                     # body framed by chunked coding
    keep_alive: bool                  # client allows reuse (version + Connection rules)
    upgrade: str | None = None        # lower-cased Upgrade value when Connection names "upgrade"
    expect_continue: bool = False     # "Expect: 100-continue"
    scheme: str | None = None         # scheme of an absolute-form target, lower-cased
    header_bytes: int = 0             # size of the request head on the wire ($request_length)
    conn_tokens: frozenset[str] = frozenset()  # lower-cased options of Connection (hop-by-hop)

    def get(self, name: str) -> str | None:
        """First value of a header, case-insensitive (name given lower-case)."""
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    version: str                      # "1.0" or "1.1"
    headers: list[tuple[str, str]]    # (name as sent, value), in order
    content_length: int | None        # None when chunked or read-until-close
    chunked: bool
    keep_alive: bool                  # upstream allows reuse after this response
    until_close: bool = False         # body is delimited by the upstream closing
    conn_tokens: frozenset[str] = frozenset()  # lower-cased options of Connection (hop-by-hop)

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass(slots=True)
class Request:
    head: RequestHead


@dataclass(slots=True)
class Response:
    head: ResponseHead


@dataclass(slots=True)
class InformationalResponse:
    """A 1xx other than 101 from the upstream (e.g. 100 Continue, 103 Early Hints)."""

    head: ResponseHead


@dataclass(slots=True)
class Data:
    data: bytes


@dataclass(slots=True, frozen=True)
class EndOfMessage:
    """The message is complete. Trailers are checked and dropped by the parsers, so every
    end is the same: use the `END` instance (one object fewer per message)."""

    trailers: tuple[tuple[str, str], ...] = ()


END = EndOfMessage()


Event = Request | Response | InformationalResponse | Data | EndOfMessage
