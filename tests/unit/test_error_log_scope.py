"""error_log at http/server/location level (the innermost wins), and log files whose
directory is missing (nginx creates the file, never the directory)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from truehop.cli import main as cli_main
from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.log import AccessSink, ErrorLog, LogOpenError, ScopedErrorLog
from truehop.process.runtime import Runtime


def compile_text(tmp_path: Path, text: str):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def locs(cfg):
    srv = cfg.http.servers[0]
    return srv, {loc.name: loc for loc in srv.locations}


# -- error_log scope: compile ------------------------------------------------------------------

def test_error_log_innermost_level_wins(tmp_path):
    cfg = compile_text(tmp_path, """
        error_log http.log info;
        server {
            error_log srv.log;
            error_log srv2.log debug;
            location /a { error_log loc.log warn; }
            location /b { }
        }
        server { location /c { } }
    """)
    srv, by = locs(cfg)
    d = str(tmp_path)
    assert srv.settings.error_log == ((f"{d}/srv.log", "error"), (f"{d}/srv2.log", "debug"))
    assert by["/a"].settings.error_log == ((f"{d}/loc.log", "warn"),)
    assert by["/b"].settings.error_log == srv.settings.error_log
    c = cfg.http.servers[1].locations[0]
    assert c.settings.error_log == ((f"{d}/http.log", "info"),)


def test_no_inner_error_log_is_none(tmp_path):
    cfg = compile_text(tmp_path, "server { location / { } }")
    srv, by = locs(cfg)
    assert srv.settings.error_log is None and by["/"].settings.error_log is None


def test_inner_error_log_level_checked(tmp_path):
    with pytest.raises(ConfigError) as e:
        compile_text(tmp_path, "server { location / { error_log x.log loud; } }")
    assert str(e.value) == f'invalid log level "loud" in {tmp_path}/site.conf:1'


# -- error_log scope: routing --------------------------------------------------------------------

def _request(loc_targets, srv_targets=None, with_loc=True):
    srv = SimpleNamespace(settings=SimpleNamespace(error_log=srv_targets))
    loc = SimpleNamespace(settings=SimpleNamespace(error_log=loc_targets)) if with_loc else None
    head = SimpleNamespace(method="GET", target="/x", version="1.1", host="h")
    return SimpleNamespace(loc=loc, server=srv, server_name="s", head=head, upstream_tries=[],
                           upstream_addr=[], extra={})


def test_scoped_log_routes_request_lines(tmp_path):
    main = ErrorLog([(str(tmp_path / "main.log"), "warn")])
    lt = ((str(tmp_path / "loc.log"), "info"),)
    st = ((str(tmp_path / "srv.log"), "error"),)
    log = ScopedErrorLog(main, {lt: ErrorLog(list(lt)), st: ErrorLog(list(st))})
    conn = SimpleNamespace(number=7, remote_addr="127.0.0.1", server_addr="", server_port=0)
    log.info("to the location", conn, _request(lt, st))          # below main's level
    log.error("to the server", conn, _request(None, st, with_loc=False))
    log.error("inherited from nothing", conn, _request(None, None))
    log.warn("no request")
    text = {n: (tmp_path / f"{n}.log").read_text() for n in ("main", "loc", "srv")}
    assert "[info]" in text["loc"] and "*7 to the location, client: 127.0.0.1, server: s, " \
        'request: "GET /x HTTP/1.1", host: "h"' in text["loc"]
    assert "to the server" in text["srv"] and "to the location" not in text["srv"]
    assert "inherited from nothing" in text["main"] and "no request" in text["main"]
    assert "to the" not in text["main"]
    assert log.enabled("info") and not main.enabled("info")


def test_runtime_wraps_log_only_when_an_inner_error_log_exists(tmp_path):
    (tmp_path / "logs").mkdir()
    plain = compile_text(tmp_path, "server { listen 127.0.0.1:1; }")
    base = ErrorLog([("stderr", "emerg")])
    assert Runtime(plain, base).log is base      # nothing added per line without one
    cfg = compile_text(tmp_path, "server { listen 127.0.0.1:1; location / { error_log l.log; } }")
    rt = Runtime(cfg, base)
    assert isinstance(rt.log, ScopedErrorLog) and rt.detect.log is rt.log
    assert (tmp_path / "l.log").exists()


# -- no directory is created for a configured log ----------------------------------------------

def test_log_files_never_get_a_directory(tmp_path):
    missing = tmp_path / "nope" / "x.log"
    with pytest.raises(LogOpenError) as e:
        AccessSink(str(missing))
    assert str(e.value) == f'open() "{missing}" failed (2: No such file or directory)'
    with pytest.raises(LogOpenError):
        ErrorLog([(str(missing), "error")], strict=True)
    ErrorLog([(str(missing), "error")])      # not strict: stderr takes its place
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("text, missing", [
    ("events {}\nhttp { access_log D/nope/a.log; server { listen 127.0.0.1:1; } }", "a.log"),
    ("error_log D/nope/e.log;\nevents {}\nhttp { server { listen 127.0.0.1:1; } }", "e.log"),
    ("events {}\nhttp { server { listen 127.0.0.1:1; location / { error_log D/nope/l.log; } } }",
     "l.log"),
])
def test_t_fails_like_nginx_on_a_missing_log_directory(tmp_path, capsys, text, missing):
    conf = tmp_path / "n.conf"
    conf.write_text(text.replace("D/", f"{tmp_path}/"))
    assert cli_main(["-t", "-p", f"{tmp_path}/", "-c", str(conf)]) == 1
    path = tmp_path / "nope" / missing
    assert capsys.readouterr().err.splitlines() == [
        f"truehop: the configuration file {conf} syntax is ok",
        f'truehop: [emerg] open() "{path}" failed (2: No such file or directory)',
        f"truehop: configuration file {conf} test failed"]
    assert not (tmp_path / "nope").exists()
