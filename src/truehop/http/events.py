"""Events that the sans-IO HTTP layers produce, and the error they raise.

The server side (`h1.H1ServerParser`, later `h2`) turns client bytes into `Request`, `Data`
and `EndOfMessage`; the client side (`h1client.H1ResponseParser`) turns upstream bytes into
`Response`, `Data` and `EndOfMessage`. A violation raises `ProtocolError` carrying the status
nginx would answer with; the caller answers and closes. Nothing from httptools or h2 leaks past
these modules.
"""

from __future__ import annotations

from typing import Final


class ProtocolError(Exception):
    """Bad bytes from a peer. `status` is what to answer (client side: 400, 413, 414, 431, 501,
    505; upstream side: 502). The connection must be closed after answering."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


# The event classes are plain classes with an explicit __init__, not dataclasses: in the
# compiled build (setup.py) a dataclass keeps the __init__ that `dataclasses` generates, which
# runs as interpreted Python (about 1,000 instructions for `Data`, 5,000 for `RequestHead`,
# once per message); a written-out __init__ is compiled like the rest.


class RequestHead:
    __slots__ = ("method", "target", "path", "query", "version", "headers", "host",
                 "content_length", "chunked", "keep_alive", "upgrade", "expect_continue",
                 "scheme", "header_bytes", "conn_tokens")

    def __init__(
        self,
        method: str,                      # e.g. "GET"; validated token
        target: str,                      # the request target as sent (origin-form after
                                          # absolute-form is split)
        path: str,                        # raw path part of target, before '?', never empty
        query: str | None,                # raw part after '?', None when there is no '?'
        version: str,                     # "1.0", "1.1" or "2.0"
        headers: list[tuple[str, str]],   # (name as sent, value stripped of OWS), in order
        host: str,                        # validated host (absolute-form or Host), lower-cased,
                                          # port kept; "" if none
        content_length: int | None,       # body length when framed by Content-Length
        chunked: bool,                    # body framed by chunked coding
        keep_alive: bool,                 # client allows reuse (version + Connection rules)
        upgrade: str | None = None,       # lower-cased Upgrade value when Connection names it
        expect_continue: bool = False,    # "Expect: 100-continue"
        scheme: str | None = None,        # scheme of an absolute-form target, lower-cased
        header_bytes: int = 0,            # size of the request head on the wire
        conn_tokens: frozenset[str] = frozenset(),  # lower-cased options of Connection
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.host = host
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.expect_continue = expect_continue
        self.scheme = scheme
        self.header_bytes = header_bytes
        self.conn_tokens = conn_tokens

    def get(self, name: str) -> str | None:
        """First value of a header, case-insensitive (name given lower-case)."""
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestHead):
            return NotImplemented
        return self.method == other.method and self.target == other.target and self.path == other.path and self.query == other.query and self.version == other.version and self.headers == other.headers and self.host == other.host and self.content_length == other.content_length and self.chunked == other.chunked and self.keep_alive == other.keep_alive and self.upgrade == other.upgrade and self.expect_continue == other.expect_continue and self.scheme == other.scheme and self.header_bytes == other.header_bytes and self.conn_tokens == other.conn_tokens

    def __repr__(self) -> str:
        return f"RequestHead({self.method} {self.target} HTTP/{self.version}, {self.headers!r})"


class ResponseHead:
    __slots__ = ("status", "reason", "version", "headers", "content_length", "chunked",
                 "keep_alive", "until_close", "conn_tokens")

    def __init__(
        self,
        status: int,
        reason: str,
        version: str,                     # "1.0" or "1.1"
        headers: list[tuple[str, str]],   # (name as sent, value), in order
        content_length: int | None,       # None when chunked or read-until-close
        chunked: bool,
        keep_alive: bool,                 # upstream allows reuse after this response
        until_close: bool = False,        # body is delimited by the upstream closing
        conn_tokens: frozenset[str] = frozenset(),  # lower-cased options of Connection
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.until_close = until_close
        self.conn_tokens = conn_tokens

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResponseHead):
            return NotImplemented
        return self.status == other.status and self.reason == other.reason and self.version == other.version and self.headers == other.headers and self.content_length == other.content_length and self.chunked == other.chunked and self.keep_alive == other.keep_alive and self.until_close == other.until_close and self.conn_tokens == other.conn_tokens

    def __repr__(self) -> str:
        return f"ResponseHead(HTTP/{self.version} {self.status} {self.reason}, {self.headers!r})"


class Request:
    __slots__ = ("head",)

    def __init__(self, head: RequestHead) -> None:
        self.head = head

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self.head == other.head

    def __repr__(self) -> str:
        return f"Request({self.head!r})"


class Response:
    __slots__ = ("head",)

    def __init__(self, head: ResponseHead) -> None:
        self.head = head

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return self.head == other.head

    def __repr__(self) -> str:
        return f"Response({self.head!r})"


class InformationalResponse:
    """A 1xx other than 101 from the upstream (e.g. 100 Continue, 103 Early Hints)."""

    __slots__ = ("head",)

    def __init__(self, head: ResponseHead) -> None:
        self.head = head

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InformationalResponse):
            return NotImplemented
        return self.head == other.head

    def __repr__(self) -> str:
        return f"InformationalResponse({self.head!r})"


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Data):
            return NotImplemented
        return self.data == other.data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    """The message is complete. Trailers are checked and dropped by the parsers, so every
    end is the same: use the `END` instance (one object fewer per message)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = EndOfMessage()


Event = Request | Response | InformationalResponse | Data | EndOfMessage
