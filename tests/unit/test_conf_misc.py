"""Issue 15's configuration bugs: quoted empty `if` operands, server names on a lone server,
nginx variables truehop lacks, and a whole nginx.conf without `events`."""

from __future__ import annotations

from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.route.servers import ServerNameIndex, names_hashed
from truehop.route.variables import UnknownVariable, VariableScope, nginx_module_of


def compile_text(tmp_path: Path, text: str, globals_: str | None = None):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path), globals_)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        compile_text(tmp_path, text)
    return str(e.value).replace(str(tmp_path), "DIR")


@pytest.mark.parametrize("cond", [
    "($https = '')", "($https != '')", '($https = "")', '( $https = "" )', "($https = '' )",
    "( $https )", "($https)", "(-f $request_uri)", "( -f $request_uri )",
])
def test_if_condition_with_quoted_empty_operand(tmp_path, cond):
    cfg = compile_text(tmp_path, "server { location / { if COND { return 301 https://$host$request_uri; } "
                       "return 200; } }".replace("COND", cond))
    assert cfg.http.servers


def test_if_condition_keeps_nginx_errors(tmp_path):
    assert 'invalid condition "$https"' in error_of(
        tmp_path, "server { location / { if ($https { return 200; } } }")
    assert 'invalid condition "$https"' in error_of(
        tmp_path, "server { location / { if ($https = a b) { return 200; } } }")
    assert 'unexpected "=~" in condition' in error_of(
        tmp_path, "server { location / { if ($https =~ a) { return 200; } } }")
    assert 'invalid condition "x"' in error_of(
        tmp_path, "server { location / { if (x) { return 200; } } }")


def test_unknown_variable_keeps_the_typo_message(tmp_path):
    assert error_of(tmp_path, "server { location / { return 200 $no_such_thing; } }") == \
        'unknown "no_such_thing" variable in DIR/site.conf:1'


@pytest.mark.parametrize("name,module", [
    ("uid_got", "ngx_http_userid_module"),
    ("geoip_country_code", "ngx_http_geoip_module"),
    ("tcpinfo_rtt", "ngx_http_core_module"),
    ("sent_trailer_grpc_status", "ngx_http_core_module"),
    ("jwt_claim_sub", "ngx_http_auth_jwt_module (NGINX Plus)"),
])
def test_nginx_variable_truehop_lacks_names_its_module(tmp_path, name, module):
    assert nginx_module_of(name) == module
    assert error_of(tmp_path, "server { location / { return 200 $VAR; } }".replace("VAR", name)) == \
        f'"{name}" variable is not supported by truehop ({module}) in DIR/site.conf:1'
    with pytest.raises(UnknownVariable) as e:
        VariableScope().getter(name)
    assert e.value.module == module


@pytest.mark.parametrize("name", ["request_filename", "document_root", "realpath_root",
                                  "ssl_early_data"])
def test_new_variables_are_known(name):
    assert VariableScope().known(name)


def test_whole_nginx_conf_needs_events(tmp_path):
    assert error_of(tmp_path, "http { server { listen 8080; } }") == \
        'no "events" section in configuration'
    assert error_of(tmp_path, "worker_processes 1;") == 'no "events" section in configuration'
    # errors inside http are found first, as nginx finds them while reading the file
    assert "unknown \"nope\" variable" in error_of(
        tmp_path, "http { server { location / { return 200 $nope; } } }")


def test_conf_d_file_needs_no_events(tmp_path):
    assert compile_text(tmp_path, "server { listen 8080; }").http.servers
    # -g wraps a conf.d file in truehop's own main context: still no events needed
    assert compile_text(tmp_path, "server { listen 8080; }", "worker_processes 1;").http.servers
    assert compile_text(tmp_path, "events {} http { server { listen 8080; } }").http.servers


def test_server_names_are_checked_only_where_nginx_hashes_them():
    assert not names_hashed(1, ["..."])
    assert not names_hashed(1, ["~^www\\.example\\.com$", "a..b"])
    assert names_hashed(2, ["example.com"])
    assert names_hashed(1, ["~^(?<sub>.+)\\.example\\.com$"])
    idx = ServerNameIndex.build([(["...", "*.a.*", "ok.test"], "s")], "s", check=False)
    assert idx.exact == {"ok.test": "s"} and idx.find("anything") == "s"
    with pytest.raises(ValueError, match=r'invalid server name or wildcard "\.\.\." on 0.0.0.0:80'):
        ServerNameIndex.build([(["..."], "s"), (["b"], "t")], "s", addr_text="0.0.0.0:80")
