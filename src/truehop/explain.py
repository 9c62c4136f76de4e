"""`truehop explain -c FILE URL [-X METHOD] [-H 'Name: value']... [--from ADDR] [--format json]`

Answers "what will truehop (and nginx) do with this request?" without sending it: which
listener and server take it and why, which location wins and why, what the rewrite module
does, and for a proxied request the exact request line and headers the upstream receives, each
with the line of the config that put it there, whether the upstream connection can be reused,
and the lint findings that concern that location.

It runs the real code, not a copy: `Runtime` (listeners, server-name index), the pipeline's
realip, URI normalisation and rewrite engine, `server.tree.match`, `proxy.target` and the
upstream request builder (`proxy.upstream_request.build_request`, which notes each header's
source as it builds it). Nothing is bound or connected.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.conf.model import Config, LocationConf, ServerConf, UpstreamConf
from truehop.http.events import RequestHead
from truehop.http.headers import connection_tokens
from truehop.lint.rules import for_location
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime
from truehop.proxy.pipeline import Finish, compute_host, start_request
from truehop.proxy.target import choose_target, dynamic_url
from truehop.proxy.upstream_request import (
    BODY_NONE,
    HeaderNote,
    body_mode,
    build_request,
    reuse_verdict,
    upgrade_ok,
)
from truehop.route.state import ConnectionInfo, RequestState
from truehop.route.uri import BadRequest, normalize_path

MAX_REDIRECTS = 10


class ExplainError(Exception):
    pass


@dataclass
class Query:
    url: str
    method: str = "GET"
    headers: list[tuple[str, str]] = field(default_factory=list)
    remote: str = "127.0.0.1"


def parse_rest(rest: list[str]) -> Query:
    url: str | None = None
    method = "GET"
    headers: list[tuple[str, str]] = []
    remote = "127.0.0.1"
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("-X", "-H", "--from", "--request", "--header"):
            if i + 1 >= len(rest):
                raise ExplainError(f'option "{arg}" requires a value')
            val = rest[i + 1]
            i += 2
            if arg in ("-X", "--request"):
                method = val.upper()
            elif arg in ("-H", "--header"):
                name, sep, value = val.partition(":")
                if not sep or not name.strip():
                    raise ExplainError(f'invalid header "{val}", expected "Name: value"')
                headers.append((name.strip(), value.strip()))
            else:
                remote = val
            continue
        if arg.startswith("--from="):
            remote = arg.split("=", 1)[1]
        elif arg.startswith("-") and arg != "-":
            raise ExplainError(f'invalid option: "{arg}"')
        elif url is None:
            url = arg
        else:
            raise ExplainError(f'unexpected argument "{arg}"')
        i += 1
    if url is None:
        raise ExplainError("no URL given: truehop explain -c FILE URL")
    return Query(url, method, headers, remote)


def rel(path: str, base: str) -> str:
    """A path as shown: relative to the config's directory when inside it."""
    try:
        r = os.path.relpath(path, base)
    except ValueError:
        return path
    return path if r.startswith("..") else r


# --- choosing the listener and the server -------------------------------------------------

def split_url(url: str) -> tuple[str, str, int | None, str, str | None]:
    if "://" not in url:
        url = "http://" + url
    u = urlsplit(url)
    scheme = (u.scheme or "http").lower()
    if scheme not in ("http", "https"):
        raise ExplainError(f'unsupported scheme "{scheme}" in "{url}"')
    host = u.hostname or ""
    try:
        port = u.port
    except ValueError:
        raise ExplainError(f'invalid port in "{url}"') from None
    raw = u.path or "/"
    query: str | None = u.query if ("?" in url.split("#", 1)[0]) else None
    return scheme, host, port, raw, query


def pick_listener(rt: Any, scheme: str, host: str, port: int | None) -> tuple[Any, str, int]:
    """(listener, local address, port) for a URL, preferring an address equal to the URL's
    host, then the listener whose TLS matches the scheme."""
    want_ssl = scheme == "https"
    cands = list(rt.listeners.values())
    if port is not None:
        cands = [lst for lst in cands if lst.key[1] == port]
    else:
        default = 443 if want_ssl else 80
        same = [lst for lst in cands if lst.key[1] == default]
        cands = same or [lst for lst in cands if lst.ssl == want_ssl] or cands
    if not cands:
        raise ExplainError(f"no listen directive for port {port}")
    by_tls = [lst for lst in cands if lst.ssl == want_ssl]
    cands = by_tls or cands
    bare = host.strip("[]")
    for lst in cands:
        if lst.key[0] == bare:
            return lst, bare, lst.key[1]
        if bare in lst.by_addr:
            return lst, bare, lst.key[1]
    lst = cands[0]
    addr = lst.key[0]
    if addr == "*":
        addr = next(iter(lst.by_addr), "127.0.0.1")
    return lst, addr, lst.key[1]


def server_why(server: ServerConf, host: str, lst: Any, addr: str) -> str:
    if host:
        for n in server.names:
            if n == host:
                return f'exact server_name "{n}"'
        for n in server.names:
            if n.startswith("*.") and host.endswith(n[1:]) or \
                    n.startswith(".") and (host == n[1:] or host.endswith(n)) or \
                    n.endswith(".*") and host.startswith(n[:-1]):
                return f'wildcard server_name "{n}"'
        for n in server.names:
            if n.startswith("~"):
                return f'regex server_name "{n}"'
    explicit = any(ls.default_server for ls in server.listens
                   if ls.port == lst.key[1])
    how = "default_server" if explicit else "first server"
    shown = f"[{addr}]" if ":" in addr else addr
    reason = f'no server_name matches "{host}"' if host else "no Host"
    return f"{reason}: the {how} for {shown}:{lst.key[1]}"


def location_why(server: ServerConf, loc: LocationConf, uri: str) -> str:
    if loc.modifier == "=":
        return "exact match (=)"
    prefixes = [x for x in _all_prefix(server.locations) if uri.startswith(x.pattern)]
    longest = max(prefixes, key=lambda x: len(x.pattern), default=None)
    if loc.modifier in ("~", "~*"):
        before = f' (longest prefix "{longest.pattern}" had no ^~)' if longest else ""
        return f"first matching regex in file order{before}"
    if loc.modifier == "^~":
        return "longest matching prefix, ^~: regexes not checked"
    return "longest matching prefix; no regex location matched"


def _all_prefix(locs: list[LocationConf]) -> list[LocationConf]:
    out: list[LocationConf] = []
    for x in locs:
        if x.modifier in ("", "^~"):
            out.append(x)
        out.extend(_all_prefix(x.children))
    return out


# --- the upstream request -----------------------------------------------------------------

def peers_of(up: UpstreamConf) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in up.peers:
        addr = f"[{p.host}]:{p.port}" if ":" in p.host else f"{p.host}:{p.port}"
        flags = []
        if p.weight != 1:
            flags.append(f"weight={p.weight}")
        if p.backup:
            flags.append("backup")
        if p.down:
            flags.append("down")
        if p.resolve:
            flags.append("resolve")     # a name, looked up at run time (proxy.resolving)
        out.append({"address": addr, "flags": flags})
    return out


# --- the whole explanation ----------------------------------------------------------------

def explain(cfg: Config, rt: Any, q: Query) -> dict[str, Any]:
    base = os.path.dirname(cfg.conf_path)
    scheme, uhost, uport, path, query = split_url(q.url)
    lst, local_addr, port = pick_listener(rt, scheme, uhost, uport)
    default_port = 443 if scheme == "https" else 80
    host_hdr = uhost if ":" not in uhost else f"[{uhost}]"
    if uport is not None and uport != default_port:
        host_hdr += f":{uport}"
    headers: list[tuple[str, str]] = []
    if not any(k.lower() == "host" for k, _ in q.headers):
        headers.append(("Host", host_hdr))
    headers.extend(q.headers)
    head_host = next((v for k, v in headers if k.lower() == "host"), "").lower()
    conn_tokens: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            conn_tokens |= connection_tokens(v)
    upgrade = next((v.lower() for k, v in headers if k.lower() == "upgrade"), None) \
        if "upgrade" in conn_tokens else None
    target = path + ("?" + query if query is not None else "")
    head = RequestHead(q.method, target, path, query, "1.1", headers, head_host, None, False,
                       "close" not in conn_tokens, upgrade=upgrade)
    info = ConnectionInfo(q.remote, 50000, local_addr, port, scheme, 1, listen_key=lst.key)
    # started as Pipeline.handle starts it: the server by the Host (its regex captures
    # kept), $host and $server_name
    r = start_request(info, head, lst)
    server = r.server
    host = compute_host(head.host, lst.default_server) if head.host else ""   # for the why
    pipeline = rt.pipeline
    pipeline.realip(r, server.settings)

    shown_addr = f"[{lst.key[0]}]" if ":" in lst.key[0] else lst.key[0]
    doc: dict[str, Any] = {
        "request": {"method": q.method, "url": q.url, "from": q.remote,
                    "remote_addr": r.remote_addr,
                    "headers": [{"name": k, "value": v} for k, v in headers]},
        "listener": {"address": f"{shown_addr}:{lst.key[1]}", "ssl": lst.ssl,
                     "file": rel(lst.listen.where[0], base), "line": lst.listen.where[1]},
        "server": {"name": server.primary_name or (server.names[0] if server.names else ""),
                   "file": rel(server.where[0], base), "line": server.where[1],
                   "why": server_why(server, host, lst, local_addr)},
    }
    note_realip(doc, r, q, server.settings)
    try:
        r.uri = normalize_path(head.path, server.merge_slashes)
    except BadRequest:
        doc["action"] = {"kind": "return", "code": 400, "why": "the URI does not normalise"}
        return doc

    loc: LocationConf
    steps: list[str] = []
    try:
        pipeline.run_ops(r, server.ops, server_level=True)
        trace: list[tuple[str, Any]] = []
        loc = pipeline.route(r, None, trace)
        for kind, what in trace:
            if kind == "if":
                steps.append(f"if block at {rel(what[0], base)}:{what[1]} is true")
            else:
                steps.append(f"internal redirect to {what}")
    except Finish as f:
        answered = r.loc  # the location whose rewrite instructions answered, if any
        if answered is not None:
            doc["location"] = _loc_doc(server, answered, r.uri, base)
        else:
            doc["location"] = {"name": "(none)", "file": rel(server.where[0], base),
                               "line": server.where[1],
                               "why": "the server's rewrite/return ran before any location "
                                      "was chosen"}
        action: dict[str, Any] = {"kind": "return", "code": f.status}
        if getattr(f, "location", None):
            action["location"] = f.location
        if getattr(f, "text", None):
            action["text"] = f.text
        if steps:
            action["steps"] = steps
        doc["action"] = action
        doc["findings"] = [x.as_dict() for x in for_location(cfg, server, answered)] \
            if answered else []
        return doc
    if not r.realip_done:
        # realip in the chosen location runs once it is chosen, as the pipeline does
        pipeline.realip(r, loc.settings)
        note_realip(doc, r, q, loc.settings)
    if loc is not server.default_loc:
        doc["location"] = _loc_doc(server, loc, r.uri, base)
    else:
        doc["location"] = {"name": "(none)", "file": rel(server.where[0], base),
                           "line": server.where[1], "why": "no location matches: server level"}
    if steps:
        doc["location"]["steps"] = steps
    s = loc.settings
    if loc.proxy is not None:
        doc.update(_proxy_doc(rt, r, loc, base))
        if doc["action"]["kind"] == "return":
            doc["findings"] = [x.as_dict() for x in for_location(cfg, server, loc)]
            for fd in doc["findings"]:
                fd["file"] = rel(fd["file"], base)
            return doc
    elif s.try_files:
        doc["action"] = {"kind": "try_files",
                         "candidates": [t.source for t in s.try_files],
                         "where": _where(s.where.get("try_files"), base)}
    else:
        fpath, _root = pipeline.file_path(r, loc, r.uri)
        if fpath.endswith("/"):
            idx = [t.source for t in s.index]
            doc["action"] = {"kind": "static", "path": fpath, "index": idx,
                             "exists": os.path.isdir(fpath)}
        else:
            doc["action"] = {"kind": "static", "path": fpath, "exists": os.path.isfile(fpath)}
    doc["findings"] = [x.as_dict() for x in for_location(cfg, server, loc)]
    for fd in doc["findings"]:
        fd["file"] = rel(fd["file"], base)
    return doc


def _proxy_doc(rt: Runtime, r: RequestState, loc: LocationConf, base: str) -> dict[str, Any]:
    """The action, the upstream request and the reuse verdict of a proxied request: what the
    proxy's own target choice and request builder (proxy.target, proxy.upstream_request)
    make of it, with each header's source."""
    s = loc.settings
    pp = loc.proxy
    assert pp is not None
    try:
        up, up_scheme, uri = choose_target(rt.proxy_rt, r, loc)
    except Finish as f:
        if f.status != 502:
            return {"action": {"kind": "return", "code": f.status,
                               "why": "proxy_pass with variables makes an invalid URL"}}
        if s.resolver is None:
            return {"action": {"kind": "return", "code": f.status,
                               "why": "proxy_pass with variables names a host that is no "
                                      "upstream and no address, and no resolver is set"}}
        # a name the resolver looks up at run time: the request is known all the same
        up_scheme, hostport, uri = dynamic_url(rt.log, r, pp)
        up = UpstreamConf(hostport, [], implicit=True, keepalive=0)
    head = r.head
    # explain reads no body: a request that has one is described as streamed
    streamed = body_mode(s, head, False) != BODY_NONE
    try:
        req = build_request(r, s, rt.proxy.plan(s)[0], uri, upgrade_ok(head), streamed, None,
                            notes=True)
    except ValueError as e:
        return {"action": {"kind": "return", "code": 400,
                           "why": f"the upstream request cannot be written: {e}"}}
    ok, why = reuse_verdict(req, up, lambda path: rel(path, base))
    pw = pp.where
    return {
        "action": {
            "kind": "proxy",
            "proxy_pass": f"{rel(pw[0], base)}:{pw[1]}",
            "upstream": up.name, "implicit": up.implicit, "scheme": up_scheme,
            "balancer": up.kind.replace("_", " "),
            "peers": peers_of(up),
        },
        "upstream_request": {
            "request_line": f"{req.method} {req.uri} HTTP/{req.version}",
            "version": req.version,
            "headers": _notes(req.sources, base),
            "dropped": _notes(req.dropped, base),
            "upgrade": req.upgrading,
        },
        "reuse": {"reusable": ok, "why": ("yes: " if ok else "no: ") + why},
    }


def _notes(notes: list[HeaderNote] | None, base: str) -> list[dict[str, str]]:
    return [{"name": n.name, "value": n.value, "source": n.describe(lambda p: rel(p, base))}
            for n in notes or ()]


def note_realip(doc: dict[str, Any], r: Any, q: Query, s: Any) -> None:
    """Say in the request part when realip replaced the client address."""
    if r.remote_addr != q.remote:
        doc["request"]["remote_addr"] = r.remote_addr
        doc["request"]["realip"] = (f"$remote_addr is {r.remote_addr} (set_real_ip_from trusts "
                                    f"{q.remote}, real_ip_header {s.real_ip_header})")


def _where(w: tuple[str, int] | None, base: str) -> str:
    return f"{rel(w[0], base)}:{w[1]}" if w else ""


def _loc_doc(server: ServerConf, loc: LocationConf, uri: str, base: str) -> dict[str, Any]:
    if loc.modifier == "if" and loc.parent is not None:
        outer = loc.parent
        return {"name": outer.name, "file": rel(outer.where[0], base), "line": outer.where[1],
                "why": location_why(server, outer, uri)}
    return {"name": loc.name, "file": rel(loc.where[0], base), "line": loc.where[1],
            "why": location_why(server, loc, uri)}


# --- output --------------------------------------------------------------------------------

def render_text(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    req = doc["request"]
    lines.append(f"request   {req['method']} {req['url']} from {req['from']}")
    if "realip" in req:
        lines.append(f"          {req['realip']}")
    ls = doc["listener"]
    lines.append(f"listener  {ls['address']}{' ssl' if ls['ssl'] else ''} "
                 f"(listen at {ls['file']}:{ls['line']})")
    sv = doc["server"]
    name = sv["name"] or '""'
    lines.append(f"server    {name} at {sv['file']}:{sv['line']}")
    lines.append(f"          why: {sv['why']}")
    if "location" in doc:
        lc = doc["location"]
        lines.append(f"location  {lc['name']} at {lc['file']}:{lc['line']}")
        lines.append(f"          why: {lc['why']}")
        for st in lc.get("steps", ()):
            lines.append(f"          then: {st}")
    act = doc.get("action", {})
    kind = act.get("kind")
    if kind == "return":
        extra = act.get("location") or act.get("text") or ""
        lines.append(f"action    return {act['code']}{' ' + extra if extra else ''}")
        for st in act.get("steps", ()):
            lines.append(f"          after: {st}")
    elif kind == "proxy":
        what = "address" if act["implicit"] else "upstream"
        lines.append(f"action    proxy_pass to {what} {act['upstream']} "
                     f"(proxy_pass at {act['proxy_pass']})")
        peers = ", ".join(p["address"] + (" " + " ".join(p["flags"]) if p["flags"] else "")
                          for p in act["peers"])
        lines.append(f"          peers in order ({act['balancer']}): {peers}")
        ur = doc["upstream_request"]
        lines.append(f"upstream request (HTTP/{ur['version']}):")
        lines.append(f"  {ur['request_line']}")
        rows = [(f"{h['name']}: {h['value']}", f"<- {h['source']}") for h in ur["headers"]]
        rows += [("(" + (f"{h['name']}: {h['value']}" if h["value"] else h["name"]) + ")",
                  f"-- {h['source']}") for h in ur["dropped"]]
        width = min(max((len(t) for t, _ in rows), default=0), 60)
        for text, src in rows:
            lines.append(f"  {text:<{width}}   {src}")
        if ur["upgrade"]:
            lines.append("  (the connection becomes a tunnel if the upstream answers 101)")
        lines.append(f"reuse     {doc['reuse']['why']}")
    elif kind == "static":
        state = "exists" if act["exists"] else "not found: 404"
        lines.append(f"action    static file {act['path']} ({state})")
        if act.get("index"):
            lines.append(f"          index: {' '.join(act['index'])}")
    elif kind == "try_files":
        lines.append(f"action    try_files {' '.join(act['candidates'])} (at {act['where']})")
    findings = doc.get("findings", [])
    if findings:
        lines.append("findings:")
        for f in findings:
            lines.append(f"  [{f['severity']}] [{f['rule']}] {f['message']} "
                         f"({f['file']}:{f['line']}); fix: {f['fix']}")
    else:
        lines.append("findings: none")
    return "\n".join(lines) + "\n"


def main(a: Any, conf: str, prefix: str) -> int:
    """`truehop explain`, with the config file and prefix cli resolved from -c and -p."""
    try:
        q = parse_rest(list(a.rest))
    except ExplainError as e:
        print(f"truehop: {e}", file=sys.stderr)
        return 1
    try:
        cfg = load(conf, prefix, getattr(a, "globals", None))
        rt = Runtime(cfg, ErrorLog([("stderr", "emerg")]))
    except ConfigError as e:
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        return 1
    except Exception as e:  # certificates, files
        print(f"truehop: [emerg] {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    try:
        doc = explain(cfg, rt, q)
    except ExplainError as e:
        print(f"truehop: {e}", file=sys.stderr)
        return 1
    if getattr(a, "format", "text") == "json":
        print(json.dumps(doc, indent=1))
    else:
        sys.stdout.write(render_text(doc))
    return 0
