"""The command line, compatible with nginx's where nginx has the flag.

    truehop [-c FILE] [-p PREFIX] [-g DIRECTIVES] [-e ERRORLOG]      run (master + workers)
    truehop -t | -T [-q] [--strict] [--format json|sarif]             test (and dump) the config
    truehop -s reload|stop|quit|reopen                                 signal the running master
    truehop -v | -V                                                    version
    truehop --to HOST:PORT [--to ...] [--listen ADDR:PORT] [--static /P/=DIR]
            [--tls-cert C --tls-key K | --self-signed] [--http2] [--trust-proxy CIDR]
            [--redirect-from ADDR:PORT] [--print-config]            quick mode, no config file
    truehop explain -c FILE URL [-X METHOD] [-H 'N: v']... [--from ADDR] [--format json]
    truehop check FILE [--format json|sarif] [--strict]                lint a config meant for nginx
    truehop demo [--listen ADDR:PORT]                                  the demo app behind truehop
    truehop status [-p PREFIX] [--format json]                         live findings of the workers
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from truehop import NGINX_COMPAT, __version__
from truehop.build import build_name
from truehop.conf.ast import ConfigError
from truehop.lint.report import Finding, render_sarif

DEFAULT_PREFIX = "/usr/local/truehop/"
DEFAULT_CONF = "conf/truehop.conf"
DEFAULT_LEVEL = "warn"

USAGE = f"""truehop version: truehop/{__version__} (nginx/{NGINX_COMPAT} compatible)
Usage: truehop [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]
       truehop --to HOST:PORT [--to ...] [--listen ADDR:PORT] [--static /PREFIX/=DIR]
               [--tls-cert FILE --tls-key FILE | --self-signed] [--http2]
               [--trust-proxy CIDR] [--redirect-from ADDR:PORT] [--print-config]
       truehop explain -c FILE URL [-X METHOD] [-H 'Name: value'] [--from ADDR]
       truehop check FILE | truehop demo

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and configure options then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: {DEFAULT_PREFIX})
  -e filename   : set error log file (default: logs/error.log)
  -c filename   : set configuration file (default: conf/truehop.conf)
  -g directives : set global directives out of configuration file
  --strict      : with -t: warnings are fatal (exit 1)
  --format json : with -t: print lint findings as JSON on stdout
  --format sarif: with -t: print them as a SARIF 2.1.0 log (GitHub code scanning)
  --to HOST:PORT: quick mode: a correct reverse proxy to HOST:PORT, no config file
                  (repeat for a balanced pool; http:// or https:// upstreams)
  --listen ADDR : quick mode: the site's address (default 127.0.0.1:8080, 127.0.0.1:8443
                  with TLS)
  --static /P/=DIR : quick mode: serve DIR under /P/ without the app (/=DIR: files first,
                  then the app)
  --tls-cert FILE --tls-key FILE : quick mode: HTTPS with this certificate
  --self-signed : quick mode: HTTPS with a certificate from truehop's local CA (kept under
                  ~/.local/share/truehop; the trust command is printed)
  --redirect-from ADDR : quick mode with TLS: the plain address that redirects to HTTPS
                  (default: port 8080, or 80 when the site is on 443)
  --http2       : quick mode: HTTP/2 (on by default with TLS)
  --trust-proxy CIDR : quick mode: a load balancer there; its X-Forwarded-For gives the
                  client address and its X-Forwarded-Proto the scheme
  --print-config: quick mode: print the nginx config instead of running it
"""


# quick mode's options beyond --to/--listen/--print-config (quick.QuickOptions's fields)
QUICK_VALUES = {"--static": "static", "--tls-cert": "tls_cert", "--tls-key": "tls_key",
                "--trust-proxy": "trust_proxy", "--redirect-from": "redirect_from"}
QUICK_FLAGS = {"--self-signed": "self_signed", "--http2": "http2"}


class Args:
    def __init__(self) -> None:
        self.conf: str | None = None
        self.prefix: str | None = None
        self.test = False
        self.dump = False
        self.quiet = False
        self.signal: str | None = None
        self.globals: str | None = None
        self.error_log: str | None = None
        self.strict = False
        self.format = "text"
        self.to: list[str] = []
        self.listen: str | None = None
        self.quick: dict[str, Any] = {}     # the other quick-mode flags (quick.QuickOptions)
        self.print_config = False
        self.command: str | None = None
        self.rest: list[str] = []


def die(msg: str) -> int:
    print(f"truehop: {msg}", file=sys.stderr)
    return 1


def parse_args(argv: list[str]) -> Args | int:
    a = Args()
    i = 0
    if argv and argv[0] in ("explain", "check", "demo", "status"):
        a.command = argv[0]
        argv = argv[1:]
    while i < len(argv):
        arg = argv[i]

        def value(opt: str = arg) -> str:
            nonlocal i
            i += 1
            if i >= len(argv):
                raise SystemExit(die(f'option "{opt}" requires ' + {
                    "-c": "file name", "-p": "directory name", "-g": "parameter number",
                    "-s": "parameter number", "-e": "file name"}.get(opt, "a value")))
            return argv[i]

        if arg in ("-h", "-?", "--help"):
            print(USAGE, file=sys.stderr)
            return 0
        if arg == "-v":
            print(f"truehop version: truehop/{__version__} (nginx/{NGINX_COMPAT} compatible)",
                  file=sys.stderr)
            return 0
        if arg == "-V":
            print(version_long(), file=sys.stderr)
            return 0
        if arg == "-t":
            a.test = True
        elif arg == "-T":
            a.test = a.dump = True
        elif arg == "-q":
            a.quiet = True
        elif arg == "-c":
            a.conf = value()
        elif arg == "-p":
            a.prefix = value()
        elif arg == "-g":
            a.globals = value()
        elif arg == "-e":
            a.error_log = value()
        elif arg == "-s":
            a.signal = value()
            if a.signal not in ("stop", "quit", "reopen", "reload"):
                return die(f'invalid option: "-s {a.signal}"')
        elif arg == "--strict":
            a.strict = True
        elif arg == "--format":
            a.format = value()
        elif arg.startswith("--format="):
            a.format = arg.split("=", 1)[1]
        elif arg == "--to":
            a.to.append(value())
        elif arg == "--listen":
            a.listen = value()
        elif arg in QUICK_VALUES:
            key = QUICK_VALUES[arg]
            v = value()
            if key in ("static", "trust_proxy"):
                a.quick.setdefault(key, []).append(v)
            else:
                a.quick[key] = v
        elif arg in QUICK_FLAGS:
            a.quick[QUICK_FLAGS[arg]] = True
        elif arg == "--print-config":
            a.print_config = True
        elif a.command is not None:
            a.rest.append(arg)
        else:
            return die(f'invalid option: "{arg}"')
        i += 1
    return a


def version_long() -> str:
    import ssl
    return (f"truehop version: truehop/{__version__} (nginx/{NGINX_COMPAT} compatible)\n"
            f"nginx version: nginx/{NGINX_COMPAT} (truehop/{__version__})\n"
            f"build: {build_name()}\n"
            f"built with {ssl.OPENSSL_VERSION}\n"
            f"TLS SNI support enabled\n"
            f"configure arguments: --prefix={DEFAULT_PREFIX} --with-http_ssl_module "
            f"--with-http_v2_module --with-http_realip_module --with-http_auth_request_module "
            f"--with-http_gzip_static_module --with-http_gunzip_module {WITHOUT}")


# What Test::Nginx's has() must see as absent: the nginx modules truehop does not implement.
WITHOUT = " ".join(f"--without-{m}" for m in (
    "http_ssi_module", "http_userid_module", "http_mirror_module",
    "http_autoindex_module", "http_geo_module", "http_split_clients_module",
    "http_referer_module", "http_fastcgi_module", "http_uwsgi_module", "http_scgi_module",
    "http_grpc_module", "http_memcached_module", "http_empty_gif_module", "http_browser_module",
    "http_upstream_least_time_module", "http_upstream_random_module",
    "http_upstream_sticky_module", "http_tunnel_module",
    "mail_pop3_module", "mail_imap_module", "mail_smtp_module"))


def resolve_paths(a: Args) -> tuple[str, str]:
    prefix = a.prefix or (os.path.dirname(os.path.abspath(a.conf)) if a.conf else DEFAULT_PREFIX)
    prefix = os.path.abspath(prefix)
    conf = a.conf or DEFAULT_CONF
    if not os.path.isabs(conf):
        # as nginx: a relative -c is under the prefix when -p is given, else the cwd
        conf = os.path.join(prefix if a.prefix or not a.conf else os.getcwd(), conf)
    return conf, prefix


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parsed = parse_args(argv)
    if isinstance(parsed, int):
        return parsed
    a = parsed
    if a.command == "explain":
        from truehop import explain
        return explain.main(a, *resolve_paths(a))
    if a.command == "check":
        if a.rest:
            a.conf = a.rest[0]
        a.test = True
    if a.command == "status":
        return show_status(a)
    if a.command == "demo":
        from truehop import quick
        return quick.demo(a, main)
    if a.to or a.quick:
        from truehop import quick
        return quick.run(quick.QuickOptions(to=a.to, listen=a.listen,
                                            print_config=a.print_config, **a.quick), main)
    conf, prefix = resolve_paths(a)
    if a.signal:
        return signal_master(a, conf, prefix)
    if a.test:
        return test_config(a, conf, prefix)
    return run_server(a, conf, prefix)


def show_status(a: Args) -> int:
    """The live findings of the running workers (what the detectors noticed)."""
    from truehop.detect import read_status
    conf, prefix = resolve_paths(a)
    findings = read_status(os.path.join(prefix, "logs"))
    if a.format == "json":
        print(json.dumps({"findings": findings}, indent=1))
        return 0
    if not findings:
        print("no live findings", file=sys.stderr)
        return 0
    for f in findings:
        print(f"[{f['rule']}] x{f['count']} {f['message']} (location at {f['where']}); "
              f"fix: {f['fix']}")
    return 0


def load_config(a: Args, conf: str, prefix: str) -> Any:
    from truehop.conf.compile import load
    return load(conf, prefix, a.globals)


def lint(cfg: Any) -> list[Any]:
    try:
        from truehop.lint import rules
    except ImportError:  # pragma: no cover - lint ships with truehop
        return []
    return rules.run(cfg)


def error_log_targets(a: Args, cfg: Any, prefix: str) -> tuple[list[tuple[str, str]], bool]:
    """The main-level error log: the config's `error_log` lines, else `-e`, else the built-in
    `<prefix>/logs/error.log`. The flag says the built-in default is in use."""
    if cfg.main.error_logs:
        return cfg.main.error_logs, False
    if a.error_log:
        # as in nginx, -e names the log used until the config names its own
        el = a.error_log if os.path.isabs(a.error_log) or a.error_log == "stderr" \
            else os.path.join(prefix, a.error_log)
        return [(el, DEFAULT_LEVEL)], False
    # truehop's default level is `warn` (nginx's is `error`): the lint findings and the live
    # detectors speak at warn, and being heard is the point.
    return [(os.path.join(prefix, "logs/error.log"), DEFAULT_LEVEL)], True


def open_error_log(a: Args, cfg: Any, prefix: str, check_only: bool = False) -> Any:
    """Open the main-level error log; LogOpenError when a configured file cannot be opened
    (nginx creates log files, never their directories). The built-in default's directory,
    <prefix>/logs, is made here, as an nginx install would have made it. `check_only` (-t):
    open and close the configured files, leave the default alone; returns None."""
    from truehop.log import ErrorLog
    from truehop.process.master import close_log
    targets, default = error_log_targets(a, cfg, prefix)
    if check_only:
        if not default:
            close_log(ErrorLog(targets, strict=True))
        return None
    if default:
        os.makedirs(os.path.dirname(targets[0][0]), exist_ok=True)
    return ErrorLog(targets, strict=True)


def test_config(a: Args, conf: str, prefix: str) -> int:
    from truehop.log import LogOpenError
    from truehop.process.runtime import Runtime
    findings: list[Any] = []
    try:
        cfg = load_config(a, conf, prefix)
        from truehop.log import ErrorLog
        Runtime(cfg, ErrorLog([("stderr", "emerg")]))  # the real start path, minus binding
        open_error_log(a, cfg, prefix, check_only=True)
        findings = lint(cfg)
    except LogOpenError as e:
        # as nginx: the files are opened once the syntax was found ok
        print_error_finding(a, "config-error", conf, None, str(e))
        if not a.quiet:
            print(f"truehop: the configuration file {conf} syntax is ok", file=sys.stderr)
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        print(f"truehop: configuration file {conf} test failed", file=sys.stderr)
        return 1
    except ConfigError as e:
        fatal = getattr(e, "rule", None)
        rule = "map-context" if '"map" directive is not allowed here' in e.message else "config-error"
        print_error_finding(a, rule, e.file or conf, e.line, str(e))
        _ = fatal
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        print(f"truehop: configuration file {conf} test failed", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print_error_finding(a, "config-error", conf, None, str(e))
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        print(f"truehop: configuration file {conf} test failed", file=sys.stderr)
        return 1
    except Exception as e:  # ssl.SSLError from a certificate/key pair
        msg = _ssl_message(e)
        print_error_finding(a, "config-error", conf, None, msg)
        print(f"truehop: [emerg] {msg}", file=sys.stderr)
        print(f"truehop: configuration file {conf} test failed", file=sys.stderr)
        return 1
    for w in cfg.warnings:
        print(f"truehop: [warn] {w}", file=sys.stderr)
    loud = [f for f in findings if f.severity in ("warn", "error")]
    if a.format == "json":
        print(json.dumps({"findings": [f.as_dict() for f in findings]}, indent=1))
    elif a.format == "sarif":
        print(sarif(findings))
    else:
        for f in findings:
            print(f.render(), file=sys.stderr)
    failed = any(f.severity == "error" for f in findings) or (a.strict and bool(loud))
    if a.dump:
        for path, text in cfg.sources:
            sys.stdout.write(f"# configuration file {path}:\n{text}")
            if not text.endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.write("\n")
    if failed:
        print(f"truehop: configuration file {conf} test failed", file=sys.stderr)
        return 1
    if not a.quiet:
        print(f"truehop: the configuration file {conf} syntax is ok", file=sys.stderr)
        print(f"truehop: configuration file {conf} test is successful", file=sys.stderr)
    return 0


def sarif(findings: list[Any]) -> str:
    """The findings as a SARIF 2.1.0 log, every rule of the lint described in its driver."""
    from truehop.lint.rules import CLI_RULES, RULES
    rules = {rid: _first_line(fn.__doc__) for rid, fn in RULES.items()}
    rules.update({rid: "a config error nginx refuses too" for rid in (*CLI_RULES, "config-error")})
    return render_sarif(findings, rules, __version__)


def _first_line(doc: str | None) -> str:
    """A rule function's docstring, its first sentence, on one line."""
    text = " ".join((doc or "").split())
    return text.split(". ", 1)[0].rstrip(".") + "." if text else ""


def print_error_finding(a: Args, rule: str, file: str, line: int | None, message: str) -> None:
    """A config error as the one finding of --format json / sarif (on stdout)."""
    if a.format == "json":
        print(json.dumps({"findings": [{"rule": rule, "severity": "error", "file": file,
                                        "line": line, "message": message}]}))
    elif a.format == "sarif":
        print(sarif([Finding(rule, "error", file, line or 0, message)]))


def _ssl_message(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"


def signal_master(a: Args, conf: str, prefix: str) -> int:
    from truehop.process.master import send_signal
    try:
        cfg = load_config(a, conf, prefix)
    except ConfigError as e:
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        return 1
    if a.signal == "reload":
        from truehop.process.runtime import Runtime
        try:
            from truehop.log import ErrorLog
            Runtime(cfg, ErrorLog([("stderr", "emerg")]))
        except Exception as e:
            print(f"truehop: [emerg] {e}", file=sys.stderr)
            return 1
    pid = cfg.main.pid if cfg.top == "main" else os.path.join(prefix, "logs/truehop.pid")
    return send_signal(pid, a.signal or "")


def run_server(a: Args, conf: str, prefix: str) -> int:
    from truehop.log import LogOpenError
    from truehop.process import master
    from truehop.process.runtime import Runtime

    master.ensure_std_fds()
    try:
        cfg = load_config(a, conf, prefix)
    except ConfigError as e:
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        return 1
    try:
        log = open_error_log(a, cfg, prefix)
    except LogOpenError as e:
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        return 1
    try:
        rt = Runtime(cfg, log)
    except Exception as e:
        log.emerg(str(e))
        print(f"truehop: [emerg] {e}", file=sys.stderr)
        return 1
    for w in cfg.warnings:
        log.warn(w)
    for f in lint(cfg):
        if f.severity in ("warn", "error"):
            log.warn(f.render(prefix=False))
    return master.serve(cfg, conf, prefix, a.globals, log, rt)


def write_temp_config(text: str) -> str:
    d = tempfile.mkdtemp(prefix="truehop-")
    path = os.path.join(d, "truehop.conf")
    with open(path, "w") as f:
        f.write(text)
    return path
