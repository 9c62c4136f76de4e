"""Quick mode and the demo: configuration text with the right defaults, run by the same engine.

`truehop --to 127.0.0.1:3000` writes the config an experienced operator would write for an
app (keepalive upstream, the forwarding headers, the WebSocket map, timeouts) and runs it;
`--print-config` shows that text instead. The flags add what Caddy's `reverse-proxy` offers:
several upstreams, static directories, HTTPS (a certificate given, or one from the local CA
with `--self-signed`) with the plain port redirecting to it, HTTP/2, and realip for a load
balancer in front. `truehop demo` starts the bundled demo app on two
ports and truehop in front of it with `demo/demo.conf`.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from truehop import localca

# the command line's entry (cli.main), handed in by cli: quick mode sits below the CLI
Main = Callable[[list[str]], int]

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_TLS_LISTEN = "127.0.0.1:8443"


class QuickError(Exception):
    """A quick-mode option that cannot be turned into a config; the CLI prints it."""


@dataclass
class QuickOptions:
    """What the quick-mode flags ask for (`truehop --to ...`)."""

    to: list[str] = field(default_factory=list)
    listen: str | None = None           # the site's address (HTTPS when TLS is on)
    redirect_from: str | None = None    # with TLS: the plain address answering with a redirect
    static: list[str] = field(default_factory=list)    # "/prefix/=DIR"
    tls_cert: str | None = None
    tls_key: str | None = None
    self_signed: bool = False
    http2: bool = False
    trust_proxy: list[str] = field(default_factory=list)
    print_config: bool = False

    @property
    def tls(self) -> bool:
        return self.self_signed or self.tls_cert is not None


def split_hostport(addr: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """"3000", ":3000", "host:3000", "[::1]:3000", "http://host:3000" -> (host, port)."""
    a = addr.strip()
    for scheme in ("http://", "https://"):
        if a.startswith(scheme):
            a = a[len(scheme):]
    a = a.rstrip("/")
    if "/" in a:
        raise QuickError(f'"{addr}": an address has no path (HOST:PORT)')
    host, port = default_host, a
    if a.startswith("["):
        end = a.find("]")
        if end < 0 or not a[end + 1:].startswith(":"):
            raise QuickError(f'"{addr}": expected [IPV6]:PORT')
        host, port = a[1:end], a[end + 2:]
    elif ":" in a:
        host, port = a.rsplit(":", 1)
        host = host or default_host
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise QuickError(f'"{addr}": invalid port "{port}"')
    return host, int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _upstream_scheme(to: list[str]) -> str:
    schemes = {"https" if t.strip().startswith("https://") else "http" for t in to}
    if len(schemes) > 1:
        raise QuickError("--to: all upstreams must use the same scheme (http:// or https://)")
    return schemes.pop()


def _statics(opts: QuickOptions) -> list[tuple[str, str]]:
    out = []
    for spec in opts.static:
        prefix, sep, directory = spec.partition("=")
        if not sep or not prefix.startswith("/") or not directory:
            raise QuickError(f'--static "{spec}": expected /PREFIX/=DIRECTORY')
        directory = os.path.abspath(directory)
        if not os.path.isdir(directory):
            raise QuickError(f'--static "{spec}": "{directory}" is not a directory')
        if not prefix.endswith("/"):
            prefix += "/"
        out.append((prefix, directory))
    return out


# The headers every proxied location sends: the app learns the client, the scheme and the
# name the browser used; Upgrade/Connection let WebSockets through (see the map).
PROXY_HEADERS = """\
            proxy_set_header Host              $host;
            proxy_set_header X-Real-IP         $remote_addr;
            proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto {proto};
            proxy_set_header X-Forwarded-Host  $host;
            proxy_set_header Upgrade           $http_upgrade;
            proxy_set_header Connection        $connection_upgrade;
"""


def quick_config(opts: QuickOptions, *, pid: str, access_log: str,
                 cert: tuple[str, str] | None = None) -> str:
    """The nginx config quick mode runs. `cert` is (certificate, key) when TLS is on."""
    if not opts.to:
        raise QuickError("--to: at least one upstream (HOST:PORT)")
    if (opts.tls_cert is None) != (opts.tls_key is None):
        raise QuickError("--tls-cert and --tls-key go together")
    if opts.self_signed and opts.tls_cert is not None:
        raise QuickError("--self-signed and --tls-cert exclude each other")
    scheme = _upstream_scheme(opts.to)
    servers = [_join(*split_hostport(t)) for t in opts.to]
    listen_host, listen_port = split_hostport(
        opts.listen or (DEFAULT_TLS_LISTEN if opts.tls else DEFAULT_LISTEN))
    name = listen_host if not _is_ip(listen_host) else "localhost"
    flags = " [--to ...]" if len(servers) > 1 else ""
    lines = [
        f"# Written by `truehop --to {opts.to[0]}{flags}`: a reverse proxy with the defaults "
        "done right.",
        "# Save it with --print-config, edit it, run it with `truehop -c FILE`; `truehop -t`",
        "# checks it. Every directive means what it means to nginx 1.30.",
        f"pid {pid};",
        "error_log stderr notice;",
        "",
        "events {}",
        "",
        "http {",
        "    include mime.types;",
        "    default_type application/octet-stream;",
        f"    access_log {access_log};",
        "",
        "    # WebSockets: forward Upgrade, and ask for \"Connection: upgrade\" only when the",
        "    # client did (an empty value sends no Connection header: the pool stays reusable).",
        "    map $http_upgrade $connection_upgrade {",
        "        default upgrade;",
        "        ''      '';",
        "    }",
        "",
    ]
    proto = "$scheme"
    if opts.trust_proxy:
        for cidr in opts.trust_proxy:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise QuickError(f'--trust-proxy "{cidr}": not an address or CIDR') from None
        lines += [
            "    # A load balancer in front (--trust-proxy): the client is the last address it",
            "    # adds to X-Forwarded-For, and the scheme is the X-Forwarded-Proto it sends.",
            "    # Only a request whose address realip replaced (it came from the trusted",
            "    # proxy) may set the scheme; anyone else's X-Forwarded-Proto is ignored.",
            "    map \"$remote_addr $realip_remote_addr\" $from_trusted_proxy {",
            "        \"~^(\\S+) \\1$\"  0;",
            "        default        1;",
            "    }",
            "    map \"$from_trusted_proxy:$http_x_forwarded_proto\" $forwarded_proto {",
            "        \"~^1:(?<p>https?)$\"  $p;",
            "        default             $scheme;",
            "    }",
            "",
        ]
        proto = "$forwarded_proto"
    lines += ["    upstream app {"]
    lines += [f"        server {s};" for s in servers]
    lines += [
        "        keepalive 32;",
        "        # Node and uvicorn close idle connections after 5 s: retire ours first",
        "        keepalive_timeout 4s;",
        "    }",
        "",
    ]
    if opts.tls:
        redirect = opts.redirect_from or _join(
            listen_host, 80 if listen_port == 443 else 8080 if listen_port == 8443
            else listen_port + 1)
        r_host, r_port = split_hostport(redirect)
        port_part = "" if listen_port == 443 else f":{listen_port}"
        lines += [
            "    # Plain HTTP: every request is sent to the HTTPS site.",
            "    server {",
            f"        listen {_join(r_host, r_port)};",
            f"        server_name {name};",
            f"        return 301 https://$host{port_part}$request_uri;",
            "    }",
            "",
        ]
    lines += ["    server {"]
    if opts.tls:
        assert cert is not None
        lines += [f"        listen {_join(listen_host, listen_port)} ssl;"]
    else:
        lines += [f"        listen {_join(listen_host, listen_port)};"]
    if opts.tls or opts.http2:
        lines += ["        http2 on;"]
    lines += [f"        server_name {name};"]
    if opts.tls:
        assert cert is not None
        lines += [
            f"        ssl_certificate     {cert[0]};",
            f"        ssl_certificate_key {cert[1]};",
            "        add_header Strict-Transport-Security \"max-age=300\" always;",
        ]
    for cidr in opts.trust_proxy:
        lines += [f"        set_real_ip_from {cidr};"]
    if opts.trust_proxy:
        lines += ["        real_ip_header X-Forwarded-For;", "        real_ip_recursive on;"]
    lines += ["", "        client_max_body_size 10m;", ""]
    statics = _statics(opts)
    root_static = next((d for p, d in statics if p == "/"), None)
    for prefix, directory in statics:
        if prefix == "/":
            continue
        lines += [
            "        # static files, served without waking the app",
            f"        location {prefix} {{",
            f"            alias {directory}/;",
            "            expires 1h;",
            "        }",
            "",
        ]
    if root_static is not None:
        lines += [
            "        # files under the root directory first, then the app",
            "        location / {",
            f"            root {root_static};",
            "            try_files $uri @app;",
            "        }",
            "",
            "        location @app {",
        ]
    else:
        lines += ["        location / {"]
    lines += [f"            proxy_pass {scheme}://app;"]
    if scheme == "https":
        lines += ["            proxy_ssl_server_name on;"]
    lines += ["            proxy_http_version 1.1;"]
    lines += PROXY_HEADERS.format(proto=proto).rstrip("\n").split("\n")
    lines += [
        "",
        "            proxy_connect_timeout 5s;",
        "            proxy_read_timeout    300s;",
        "            proxy_send_timeout    300s;",
        "        }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def urls(opts: QuickOptions) -> list[str]:
    """The addresses a person opens, for the start-up message."""
    host, port = split_hostport(opts.listen or (DEFAULT_TLS_LISTEN if opts.tls
                                                else DEFAULT_LISTEN))
    shown = f"[{host}]" if ":" in host else host
    if opts.tls:
        return [f"https://{shown}{'' if port == 443 else f':{port}'}/"]
    return [f"http://{shown}{'' if port == 80 else f':{port}'}/"]


def certificate_for(opts: QuickOptions) -> tuple[tuple[str, str] | None, str | None]:
    """(certificate, key) for the site, and a message to print when the local CA made it."""
    if opts.tls_cert is not None and opts.tls_key is not None:
        return (os.path.abspath(opts.tls_cert), os.path.abspath(opts.tls_key)), None
    if not opts.self_signed:
        return None, None
    host, _ = split_hostport(opts.listen or DEFAULT_TLS_LISTEN)
    names = [host] + [n for n in ("localhost", "127.0.0.1", "::1") if n != host]
    got = localca.issue(names)
    note = (f"truehop: certificate for {', '.join(names)} from the local CA {got.ca}"
            f"{' (new)' if got.created else ''}; {localca.trust_hint(got.ca)}")
    return (got.cert, got.key), note


def run(opts: QuickOptions, main: Main) -> int:
    try:
        cert, note = certificate_for(opts)
        if opts.print_config:
            # a file to keep: the pid file beside it, the access log on the terminal
            sys.stdout.write(quick_config(opts, pid="truehop.pid", access_log="/dev/stdout",
                                          cert=cert))
            if note:
                print(note, file=sys.stderr)
            return 0
        workdir = tempfile.mkdtemp(prefix="truehop-quick-")
        text = quick_config(opts, pid=os.path.join(workdir, "truehop.pid"),
                            access_log="/dev/stdout", cert=cert)
    except QuickError as e:
        print(f"truehop: {e}", file=sys.stderr)
        return 1
    path = os.path.join(workdir, "truehop.conf")
    with open(path, "w") as f:
        f.write(text)
    if note:
        print(note, file=sys.stderr)
    print(f"truehop: {' and '.join(urls(opts))} -> {', '.join(opts.to)} (config: {path}; "
          f"--print-config shows it)", file=sys.stderr)
    return main(["-p", workdir + "/", "-c", path])


DEMO_HTTP = "127.0.0.1:8080"
DEMO_HTTPS = "127.0.0.1:8443"
DEMO_APPS = (3000, 3001)


def demo_options(rest: list[str], listen: str | None) -> tuple[str, str, tuple[int, int]]:
    """`truehop demo [--listen ADDR:PORT] [--tls-listen ADDR:PORT] [--app-ports P1,P2]`."""
    http, https, apps = listen or DEMO_HTTP, DEMO_HTTPS, DEMO_APPS
    i = 0
    while i < len(rest):
        if rest[i] in ("--tls-listen", "--app-ports") and i + 1 < len(rest):
            if rest[i] == "--tls-listen":
                https = rest[i + 1]
            else:
                a, _, b = rest[i + 1].partition(",")
                if not (a.isdigit() and b.isdigit()):
                    raise QuickError(f'--app-ports "{rest[i + 1]}": expected PORT,PORT')
                apps = (int(a), int(b))
            i += 2
            continue
        raise QuickError(f'demo: unknown option "{rest[i]}"')
    for addr in (http, https):
        split_hostport(addr)
    return http, https, apps


def demo(a: Any, main: Main) -> int:
    """The demo app on 127.0.0.1:3000 and :3001, truehop in front of it on plain HTTP (:8080)
    and on HTTPS with HTTP/2 (:8443), with a certificate from the local CA."""
    try:
        http, https, app_ports = demo_options(a.rest, a.listen)
        issued = localca.issue(["localhost", "127.0.0.1", "::1"])
    except QuickError as e:
        print(f"truehop: {e}", file=sys.stderr)
        return 1
    here = os.path.dirname(os.path.abspath(__file__))
    demo_dir = os.path.join(here, "demo")
    # a private prefix: logs and the pid file never land inside the installed package
    work = tempfile.mkdtemp(prefix="truehop-demo-")
    os.chmod(work, 0o755)  # started as root, the workers run as nobody and serve static/
    shutil.copytree(os.path.join(demo_dir, "static"), os.path.join(work, "static"))
    shutil.copy(issued.cert, os.path.join(work, "demo-cert.pem"))
    shutil.copy(issued.key, os.path.join(work, "demo-key.pem"))
    conf = os.path.join(work, "demo.conf")
    with open(os.path.join(demo_dir, "demo.conf")) as f:
        text = f.read()
    text = (text.replace(DEMO_HTTP, http).replace(DEMO_HTTPS, https)
            .replace(f"127.0.0.1:{DEMO_APPS[0]}", f"127.0.0.1:{app_ports[0]}")
            .replace(f"127.0.0.1:{DEMO_APPS[1]}", f"127.0.0.1:{app_ports[1]}"))
    with open(conf, "w") as f:
        f.write(text)
    apps = [subprocess.Popen([sys.executable, "-m", "truehop.demo.app", "--host", "127.0.0.1",
                              "--port", str(port), "--name", name])
            for port, name in zip(app_ports, ("app-a", "app-b"), strict=True)]
    try:
        for port in app_ports:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        print(f"truehop demo: the demo app did not start on port {port}",
                              file=sys.stderr)
                        return 1
                    time.sleep(0.05)
        https_port = split_hostport(https)[1]
        print(f"truehop demo: open https://localhost:{https_port}/ (HTTP/2; the certificate "
              f"is from truehop's local CA, {issued.ca}) or http://{http}/\n"
              f"truehop demo: {localca.trust_hint(issued.ca)}\n"
              f"truehop demo: the demo apps run on 127.0.0.1:{app_ports[0]} and "
              f":{app_ports[1]}; the config is {conf}. Ctrl-C stops.", file=sys.stderr)
        return main(["-p", work + "/", "-c", conf, "-e", "stderr"])
    finally:
        for p in apps:
            p.terminate()
        for p in apps:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
