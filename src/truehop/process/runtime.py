"""The model made live, per worker: listeners with their server routing, upstream balancers
and keepalive pools, log sinks, SSL contexts, and the set of open connections.

`Runtime.build(config)` does everything that can fail before a socket is touched, so the
`-t` path and a reload run it too.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
from collections.abc import Coroutine
from typing import Any

from truehop.certificate import DEPTH_ATTR
from truehop.clock import monotonic as _monotonic
from truehop.conf.ast import ConfigError
from truehop.conf.model import (
    AccessLog,
    Config,
    Listen,
    ServerConf,
    Settings,
    SslConf,
)
from truehop.detect import Detector
from truehop.http.events import RequestHead
from truehop.http.exchange import Exchange
from truehop.http.h1 import H1Limits
from truehop.log import AccessSink, ErrorLog, ScopedErrorLog, escape_default, escape_json
from truehop.net.listen import ClientSide, ConnectionOwner, ConnectionTable, Listener
from truehop.net.tls import CHOOSE_ATTR, apply_tuning, set_protocols
from truehop.proxy.cache.store import prepare as prepare_caches
from truehop.proxy.limits import Zones
from truehop.proxy.pipeline import Pipeline
from truehop.proxy.upstream import Proxy
from truehop.proxy.upstreams import ProxyRuntime, Upstreams
from truehop.route.servers import ServerNameIndex, names_hashed
from truehop.route.state import ConnectionInfo, RequestState
from truehop.route.variables import COMBINED


def _limits(srv: ServerConf) -> H1Limits:
    n, size = srv.large_client_header_buffers
    return H1Limits(max_request_line=size, max_header_line=size, max_headers_total=n * size,
                    underscores_in_headers=srv.underscores_in_headers,
                    ignore_invalid_headers=srv.ignore_invalid_headers)


def _addr_text(key: tuple[str, int]) -> str:
    """nginx's addr_text of a listening address, as its messages show it."""
    addr, port = key
    if addr.startswith("unix:"):
        return addr
    if addr == "*":
        addr = "0.0.0.0"
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def listener_groups(cfg: Config) -> dict[tuple[str, int], list[tuple[Listen, ServerConf]]]:
    """Group listen directives by the socket that serves them, as nginx does: a wildcard
    address on a port takes every specific address on the same port (one socket, the local
    address chooses among the servers)."""
    groups: dict[tuple[str, int], list[tuple[Listen, ServerConf]]] = {}
    wildcard_ports = {ls.port for s in cfg.http.servers for ls in s.listens
                      if ls.addr in ("*", "0.0.0.0")}
    for srv in cfg.http.servers:
        for ls in srv.listens:
            addr = ls.addr
            if addr in ("*", "0.0.0.0"):
                key = ("*", ls.port)
            elif ls.port in wildcard_ports and ":" not in addr and not ls.reuseport:
                key = ("*", ls.port)
            else:
                key = (addr, ls.port)
            groups.setdefault(key, []).append((ls, srv))
    return groups


def build_ssl_context(srv: ServerConf, http2: bool, warnings: list[str] | None = None,
                      passwords: dict[str, list[bytes]] | None = None) -> ssl.SSLContext:
    """A server's TLS context: its certificates, protocols and ciphers. Raises ssl.SSLError
    or OSError with the path in the message."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_protocols(ctx, srv.ssl.protocols)
    if srv.ssl.dhparam:
        try:
            ctx.load_dh_params(srv.ssl.dhparam)
        except (OSError, ssl.SSLError):
            w = srv.ssl.dhparam_where
            raise ConfigError(f'PEM_read_bio_DHparams("{srv.ssl.dhparam}") failed', w[0],
                              w[1]) from None
    try:
        ctx.set_ciphers(srv.ssl.ciphers)
    except ssl.SSLError:
        pass
    if srv.ssl.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if not srv.ssl.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    pf = srv.ssl.password_file
    if pf is None:
        pws: list[bytes] = []
    elif passwords is not None and pf in passwords:
        pws = passwords[pf]
    else:
        pws = read_passwords(pf, srv.ssl.password_where)
    for cert, key, where in srv.ssl.certificates:
        load_certificate(ctx, cert, key, where, pws)
        if warnings is not None:
            warnings.extend(certificate_warnings(cert, where))
    client_verification(ctx, srv.ssl)
    apply_tuning(ctx, srv.ssl.ecdh_curve[0], srv.ssl.conf_commands)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    return ctx


def read_passwords(path: str, where: tuple[str, int]) -> list[bytes]:
    """ssl_password_file: one passphrase a line, tried in turn (ngx_ssl_read_password_file)."""
    try:
        with open(path, "rb") as f:
            lines = [ln.rstrip(b"\r\n") for ln in f.read().splitlines()]
    except OSError as e:
        raise ConfigError(f'open() "{path}" failed ({e.errno}: {e.strerror})', where[0],
                          where[1]) from None
    pws = [ln for ln in lines if ln]
    if not pws:
        raise ConfigError(f'empty file "{path}"', where[0], where[1])
    return pws


def load_certificate(ctx: ssl.SSLContext, cert: str, key: str, where: tuple[str, int],
                     passwords: list[bytes] | None = None) -> None:
    """Load one certificate/key pair; failures become ConfigErrors in nginx's words, pointing
    at the ssl_certificate line. An encrypted key takes the ssl_password_file passphrases in
    turn; without them it fails (never a prompt on the terminal, which would hang start-up)."""
    for what, path in (("certificate", cert), ("certificate key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise ConfigError(f'cannot load {what} "{path}": BIO_new_file() failed '
                              f"({e.errno}: {e.strerror})", where[0], where[1]) from None
    err: ssl.SSLError | None = None
    for pw in passwords or [b""]:
        try:
            ctx.load_cert_chain(cert, key, password=pw)
            return
        except ssl.SSLError as e:
            err = e     # a wrong passphrase and an unreadable key look alike: try them all
    if err is not None:
        # typeshed says str, OpenSSL may leave it None (read untyped: the compiled build
        # checks a declared type when it reads the attribute)
        reason = getattr(err, "reason", None) or str(err)
        if "KEY_VALUES_MISMATCH" in reason.upper() or "mismatch" in str(err).lower():
            raise ConfigError(f'SSL_CTX_use_PrivateKey("{key}") failed (SSL: key values '
                              f'mismatch: the key does not belong to "{cert}")',
                              where[0], where[1]) from None
        raise ConfigError(f'cannot load certificate "{cert}" or key "{key}": PEM_read_bio() '
                          f"failed (SSL: {reason})", where[0], where[1]) from None


def client_verification(ctx: ssl.SSLContext, t: SslConf) -> None:
    """ssl_verify_client, ssl_client_certificate, ssl_trusted_certificate, ssl_verify_depth
    and ssl_crl on a server's context, in nginx's order and words (ngx_http_ssl_merge_srv_conf:
    the CA check, then the CA files, then the CRLs)."""
    if t.verify_client != "off":
        if not t.client_certificate and not t.trusted_certificate:
            raise ConfigError("no ssl_client_certificate or ssl_trusted_certificate for "
                              "ssl_verify_client", t.verify_where[0], t.verify_where[1])
        # CERT_OPTIONAL for `on` too: a client without a certificate then completes the
        # handshake and its request is answered 496, as nginx does (CERT_REQUIRED would end
        # the handshake with an alert instead)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # Python cannot set OpenSSL's verify depth: certificate.ClientCert checks it on the chain
        setattr(ctx, DEPTH_ATTR, t.verify_depth)
        if t.client_certificate:
            load_verify_file(ctx, t.client_certificate, t.client_certificate_where, False)
    # nginx loads these whatever ssl_verify_client says (they then verify nothing). Python
    # has no way to send only ssl_client_certificate's names in the certificate request
    # (SSL_CTX_set_client_CA_list): it sends none, and clients offer any certificate.
    if t.trusted_certificate:
        load_verify_file(ctx, t.trusted_certificate, t.trusted_certificate_where, False)
    if t.crl:
        load_verify_file(ctx, t.crl, t.crl_where, True)
        # X509_V_FLAG_CRL_CHECK|X509_V_FLAG_CRL_CHECK_ALL, as ngx_ssl_crl sets on the store
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


def load_verify_file(ctx: ssl.SSLContext, path: str, where: tuple[str, int], crl: bool) -> None:
    """Add a PEM file of CA certificates (or of CRLs) to the context's verify store; failures
    in nginx's words (ngx_ssl_client_certificate, ngx_ssl_crl and ngx_ssl_cache_*_create)."""
    what, reader, marker = ("CRL", "PEM_read_bio_X509_CRL()", b"-----BEGIN X509 CRL-----") \
        if crl else ("certificate", "PEM_read_bio_X509_AUX()", b"CERTIFICATE-----")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f'cannot load {what} "{path}": BIO_new_file() failed '
                          f"({e.errno}: {e.strerror})", where[0], where[1]) from None
    if marker not in data:
        raise ConfigError(f'cannot load {what} "{path}": {reader} failed (SSL: no start line)',
                          where[0], where[1])
    try:
        ctx.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as e:
        reason = getattr(e, "reason", None) or str(e)
        raise ConfigError(f'cannot load {what} "{path}": {reader} failed (SSL: '
                          f'{str(reason).lower().replace("_", " ")})', where[0], where[1]) from None


def certificate_warnings(cert: str, where: tuple[str, int]) -> list[str]:
    """An expired (or not yet valid) certificate loads, and browsers refuse it: say so."""
    try:
        from cryptography import x509
        with open(cert, "rb") as f:
            leaf = x509.load_pem_x509_certificate(f.read())
    except Exception:  # unreadable here means load_cert_chain already reported it
        return []
    now = datetime.datetime.now(datetime.UTC)
    after = leaf.not_valid_after_utc
    before = leaf.not_valid_before_utc
    at = f"in {where[0]}:{where[1]}"
    if after < now:
        return [f'certificate "{cert}" expired on {after:%Y-%m-%d %H:%M} UTC {at}']
    if before > now:
        return [f'certificate "{cert}" is not valid before {before:%Y-%m-%d %H:%M} UTC {at}']
    if (after - now).days < 7:
        return [f'certificate "{cert}" expires on {after:%Y-%m-%d %H:%M} UTC {at}']
    return []


class Runtime(ConnectionOwner):
    """The model made live for one worker (or for `-t`): it owns the listeners, upstreams,
    log sinks and open connections, and is the owner the connections are handed (net.listen:
    they call `serve`, `refuse`, `connection_opened`...; it answers through the pipeline)."""

    def __init__(self, cfg: Config, log: ErrorLog | None = None) -> None:
        self.cfg = cfg
        self.log = log or ErrorLog(cfg.main.error_logs or [(os.path.join(cfg.prefix, "logs/error.log"), "warn")])
        self.detect = Detector(self.log, os.path.join(cfg.prefix, "logs"))
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.upstreams = Upstreams(cfg.http.upstreams)
        self.sinks: dict[str, AccessSink] = {}
        # worker_connections slots, from accept (net.listen.ConnectionTable)
        self.table = ConnectionTable(self, cfg.main.worker_connections)
        self.connections: set[ClientSide] = self.table.connections
        self.tasks: set[asyncio.Task[Any]] = set()
        self.tunnels: set[asyncio.Future[None]] = set()
        self.shutting_down = False
        # error_log at http/server/location level: one log per distinct list of targets
        self.scoped_logs: dict[tuple[tuple[str, str], ...], ErrorLog] = {}
        try:
            self.build()
        except BaseException:
            # a refused configuration must not leave the files it opened so far open
            for sink in self.sinks.values():
                sink.close()
            ScopedErrorLog(self.log, self.scoped_logs).close_files()
            raise
        if self.scoped_logs:
            self.log = self.detect.log = ScopedErrorLog(self.log, self.scoped_logs)
        # proxy_pass is handed what it uses of this runtime (it imports nothing from here),
        # the error log being final by now
        self.proxy_rt = ProxyRuntime(self.log, self.detect, self.upstreams, self.tunnels)
        self.proxy = Proxy(self.proxy_rt)
        self.pipeline = Pipeline(self)      # binds the proxy's content phase
        self.proxy_rt.pipeline = self.pipeline
        self.proxy_rt.slots = self.table

    # -- build (can fail; nothing bound yet) -------------------------------------------

    def build(self) -> None:
        cfg = self.cfg
        # ssl_password_file is read once per load for every server with certificates, as
        # nginx reads it when merging the config (a FIFO is read once, errors stop the load),
        # whether or not an ssl listener uses that server
        self.passwords: dict[str, list[bytes]] = {}
        for srv in cfg.http.servers:
            pf = srv.ssl.password_file
            if pf and srv.ssl.certificates and pf not in self.passwords:
                self.passwords[pf] = read_passwords(pf, srv.ssl.password_where)
        for key, members in listener_groups(cfg).items():
            servers: list[ServerConf] = []
            for _, srv in members:
                if srv not in servers:
                    servers.append(srv)
            default = next((srv for ls, srv in members if ls.default_server), servers[0])
            first = members[0][0]
            use_ssl = any(ls.ssl for ls, _ in members)
            use_h2 = any(ls.http2 or srv.http2 for ls, srv in members)
            lst = Listener(key, first, servers, default, _limits(default), use_ssl, use_h2)
            lst.index = ServerNameIndex.build(
                [(srv.names, srv) for srv in servers], default, addr_text=_addr_text(key),
                check=names_hashed(len(servers), default.names))
            if key[0] == "*":
                addrs = {ls.addr for ls, _ in members if ls.addr not in ("*", "0.0.0.0")}
                for a in addrs:
                    mem = [(ls, srv) for ls, srv in members if ls.addr in (a, "*", "0.0.0.0")]
                    srvs: list[ServerConf] = []
                    for ls, srv in mem:
                        if srv not in srvs and ls.addr == a:
                            srvs.append(srv)
                    if not srvs:
                        continue
                    d = next((srv for ls, srv in mem if ls.default_server and ls.addr == a), srvs[0])
                    lst.by_addr[a] = ServerNameIndex.build(
                        [(s.names, s) for s in srvs], d, addr_text=_addr_text((a, key[1])),
                        check=names_hashed(len(srvs), d.names))
            if use_ssl:
                # SNI: the handshake picks the server by name, then its certificate
                lst.ssl_context = self.sni_context(lst)
            self.listeners[key] = lst
        # limit_req / limit_conn zones: made here, in the master before it forks, so that
        # every worker shares them
        self.limits = Zones.build(cfg)
        self._open_error_log(cfg.http.settings)  # opened (and checked) even if unused
        hs = cfg.http.settings
        temp_paths = {hs.client_body_temp_path, hs.proxy_temp_path}
        for srv in cfg.http.servers:
            self._open_sinks(srv.settings)
            temp_paths.add(srv.settings.client_body_temp_path)
            temp_paths.add(srv.settings.proxy_temp_path)
            for loc in _walk(srv.locations + list(srv.named.values())):
                self._open_sinks(loc.settings)
                temp_paths.add(loc.settings.client_body_temp_path)
                temp_paths.add(loc.settings.proxy_temp_path)
        for tp in temp_paths:
            if tp is not None:
                self._create_temp_path(tp[0])
        # proxy_cache: the zones named exist, their directories are made
        prepare_caches(cfg, cfg.main.uid)

    def _create_temp_path(self, path: str) -> None:
        """ngx_create_paths: the directory (not its parents) is made 0700 if missing, and
        given to the workers' user when the master runs as root (they write in it)."""
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise ConfigError(f'mkdir() "{path}" failed ({e.errno}: {e.strerror})') from None
        uid = self.cfg.main.uid
        if uid is None or os.geteuid() != 0:
            return
        try:
            st = os.stat(path)
            if st.st_uid != uid:
                os.chown(path, uid, -1)
            if st.st_mode & 0o700 != 0o700:
                os.chmod(path, st.st_mode | 0o700)
        except OSError as e:
            raise ConfigError(f'chown("{path}", {uid}) failed ({e.errno}: {e.strerror})') from None

    def _open_error_log(self, s: Settings) -> None:
        targets = s.error_log
        if targets is not None and targets not in self.scoped_logs:
            self.scoped_logs[targets] = ErrorLog(list(targets), strict=True)

    def sni_context(self, lst: Listener) -> ssl.SSLContext:
        """The listener's TLS context: the default server's, switched in the SNI callback to
        the context of the server the name picks. Each context offers h2 in ALPN as its own
        server allows (`http2 on`, or a `listen ... http2` on this address), as nginx 1.25+
        decides HTTP/2 per server. Servers with the same TLS settings share one context."""
        addr, port = lst.key
        addr_h2 = any(ls.http2 for srv in lst.servers for ls in srv.listens
                      if ls.port == port and (addr == "*" or ls.addr == addr))
        contexts: dict[int, ssl.SSLContext] = {}
        shared: dict[tuple[Any, ...], ssl.SSLContext] = {}
        for srv in lst.servers:
            if not srv.ssl.certificates:
                continue
            h2 = srv.http2 or addr_h2
            t = srv.ssl
            key = (h2, tuple(t.certificates), t.protocols, t.ciphers, t.prefer_server_ciphers,
                   t.session_cache, t.session_timeout, t.session_tickets, t.dhparam,
                   t.password_file, t.verify_client, t.client_certificate,
                   t.trusted_certificate, t.verify_depth, t.crl, t.ecdh_curve,
                   tuple(t.conf_commands))
            ctx = shared.get(key)
            if ctx is None:
                ctx = shared[key] = build_ssl_context(srv, h2, self.cfg.warnings,
                                                      self.passwords)
            contexts[id(srv)] = ctx
        # as nginx, the default server of each address of an `ssl` listener needs a certificate
        defaults = [lst.default_server]
        for a, idx in lst.by_addr.items():
            if any(ls.ssl and ls.addr == a and ls.port == port
                   for srv in lst.servers for ls in srv.listens):
                defaults.append(idx.default)
        for srv in defaults:
            if id(srv) not in contexts:
                raise ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" '
                                  'directive', srv.where[0], srv.where[1])
        default = contexts[id(lst.default_server)]

        def pick(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            if not name:
                return
            srv = lst.index.find(name.lower())
            ctx = contexts.get(id(srv))
            if ctx is not None and ctx is not default:
                sslobj.context = ctx

        default.sni_callback = pick
        lst.client_verify = any(srv.ssl.verify_client != "off" for srv in lst.servers)
        if any(c.verify_mode != ssl.CERT_NONE for c in contexts.values()):
            # Python's SNI switch (SSL_set_SSL_CTX) keeps the first context's verify mode,
            # and its session cache and ticket keys: the connection is made on the context
            # the ClientHello's name picks (net.tls), so each server asks for (or does not
            # ask for) a certificate itself, and a session verified by one server's CAs is
            # never resumed on another's
            def choose(name: str | None) -> ssl.SSLContext:
                if not name:
                    return default
                return contexts.get(id(lst.index.find(name.lower())), default)

            setattr(default, CHOOSE_ATTR, choose)
            for c in contexts.values():
                c.sni_callback = pick
        return default

    def _open_sinks(self, s: Settings) -> None:
        self._open_error_log(s)
        for al in s.access_log:
            if al.path != "off" and al.path not in self.sinks and not al.path.startswith("syslog:"):
                if al.where == ("", 0):
                    # the built-in default, <prefix>/logs/access.log: its directory is ours to
                    # make (an nginx install ships it); a configured path's is not
                    os.makedirs(os.path.dirname(al.path), exist_ok=True)
                self.sinks[al.path] = AccessSink(al.path, al.buffer, al.flush)

    # -- per connection ------------------------------------------------------------------

    def connection_opened(self, c: ClientSide) -> None:
        # nginx's bound on memory per worker: no slot (none reusable either), no connection
        if not self.table.admit(c, self.connections):
            c.abort()
            return
        if self.shutting_down:
            c.closing = True

    def connection_closed(self, c: ClientSide) -> None:
        self.connections.discard(c)
        self.table.released()

    def serve(self, ex: Exchange, info: ConnectionInfo, listener: Listener
              ) -> Coroutine[Any, Any, None]:
        return self.pipeline.serve(ex, info, listener)

    def refuse(self, ex: Exchange, info: ConnectionInfo, listener: Listener, status: int,
               why: str) -> Coroutine[Any, Any, None]:
        return self.pipeline.refuse(ex, info, listener, status, why)

    def http2_refusal(self, listener: Listener, info: ConnectionInfo, head: RequestHead
                      ) -> tuple[int, str] | None:
        return self.pipeline.http2_refusal(listener, info, head)

    # -- logs ----------------------------------------------------------------------------

    def write_access(self, r: RequestState, logs: tuple[AccessLog, ...]) -> None:
        formats = self.cfg.http.log_formats
        for al in logs:
            if al.path == "off":
                return
            if al.condition is not None:
                v = al.condition.render(r)
                if v in ("", "0"):
                    continue
            sink = self.sinks.get(al.path)
            if sink is None:
                continue
            if al.format == "combined" and "combined" not in formats:
                line = self._combined(r)
            else:
                lf = formats[al.format]
                # log_parts: the getters' not-found-aware twins (None: nginx's "not found").
                # ngx_http_log_variable writes "-" for one; escape=json and escape=none write
                # nothing; a found empty value writes nothing in all three
                esc = None if lf.escape == "none" else \
                    escape_json if lf.escape == "json" else escape_default
                nf = "-" if esc is escape_default else ""
                out = []
                for p in lf.template.log_parts:
                    if isinstance(p, str):
                        out.append(p)
                    else:
                        val = p(r)
                        out.append(nf if val is None else esc(val) if esc is not None else val)
                line = "".join(out)
            sink.write(line + "\n")

    def _combined(self, r: RequestState) -> str:
        """nginx's built-in format: '$remote_addr - $remote_user [$time_local] "$request"
        $status $body_bytes_sent "$http_referer" "$http_user_agent"', "-" for a variable
        that is not found (no credentials, no Referer...), repeated fields joined."""
        c = COMBINED
        user = c.remote_user(r)
        request = c.request(r)
        referer = c.referer(r)
        ua = c.user_agent(r)
        return (f'{r.remote_addr} - {"-" if user is None else escape_default(user)} '
                f'[{c.time_local(r)}] "{"-" if request is None else escape_default(request)}" '
                f'{c.status(r)} {r.body_bytes_sent} '
                f'"{"-" if referer is None else escape_default(referer)}" '
                f'"{"-" if ua is None else escape_default(ua)}"')

    def flush_logs(self) -> None:
        for s in self.sinks.values():
            s.flush()

    def reopen_logs(self) -> None:
        self.log.reopen()
        for s in self.sinks.values():
            s.reopen()

    def close_files(self) -> None:
        """Close the log files this runtime opened (the master's copies, once its workers
        have been replaced); the main-level error log is the master's to close."""
        for sink in self.sinks.values():
            sink.close()
        if isinstance(self.log, ScopedErrorLog):
            self.log.close_files()

    # -- shutdown ------------------------------------------------------------------------

    def graceful(self) -> None:
        self.shutting_down = True
        for c in list(self.connections):
            c.graceful_close()

    def busy(self) -> bool:
        return bool(self.tasks or self.tunnels or any(
            c.current is not None or c.queue for c in self.connections))

    def close_all(self) -> None:
        for c in list(self.connections):
            c.abort()
        self.upstreams.close_all()
        self.flush_logs()

    def sweep(self) -> None:
        self.detect.save()
        now = _monotonic()
        self.upstreams.sweep(now)
        self.flush_logs()


def _walk(locs: list[Any]) -> list[Any]:
    out = []
    stack = list(locs)
    while stack:
        loc = stack.pop()
        out.append(loc)
        stack.extend(loc.children)
        for op in loc.ops:
            if getattr(op, "loc", None) is not None:
                out.append(op.loc)
    return out
