"""http-level values of the server-level directives (ssl_*, http2, request-head limits) reach
every server that does not set them, as nginx's merge_srv_conf: each value is inherited on its
own, and the ssl_certificate / ssl_certificate_key arrays are inherited whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.log import ErrorLog
from truehop.process.runtime import Runtime


def compile_text(tmp_path: Path, text: str):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


def servers(tmp_path: Path, text: str) -> dict[str, object]:
    return {s.names[0]: s for s in compile_text(tmp_path, text).http.servers}


HTTP = """
events {}
http {
    ssl_protocols TLSv1.3;
    ssl_ciphers ECDHE+AESGCM;
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets off;
    ssl_certificate rsa.pem;
    ssl_certificate ecdsa.pem;
    ssl_certificate_key rsa.key;
    ssl_certificate_key ecdsa.key;
    http2 on;
    http2_max_concurrent_streams 64;
    merge_slashes off;
    underscores_in_headers on;
    client_header_timeout 5s;
    large_client_header_buffers 8 16k;
    server { listen 443 ssl; server_name inherits; }
    server {
        listen 443 ssl;
        server_name overrides;
        ssl_protocols TLSv1.2;
        ssl_ciphers HIGH;
        ssl_certificate own.pem;
        ssl_certificate_key own.key;
        http2 off;
        merge_slashes on;
        client_header_timeout 7s;
    }
}
"""


def test_server_inherits_every_http_level_value(tmp_path):
    s = servers(tmp_path, HTTP)["inherits"]
    assert s.ssl.protocols == ("TLSv1.3",)
    assert s.ssl.ciphers == "ECDHE+AESGCM"
    assert s.ssl.prefer_server_ciphers is True
    assert s.ssl.session_cache == "shared:SSL:10m"
    assert s.ssl.session_timeout == 3600
    assert s.ssl.session_tickets is False
    assert [(c[len(str(tmp_path)) + 1:], k[len(str(tmp_path)) + 1:], w[1])
            for c, k, w in s.ssl.certificates] == [
        ("rsa.pem", "rsa.key", 10), ("ecdsa.pem", "ecdsa.key", 11)]
    assert s.http2 is True
    assert s.http2_max_concurrent_streams == 64
    assert s.merge_slashes is False
    assert s.underscores_in_headers is True
    assert s.client_header_timeout == 5
    assert s.large_client_header_buffers == (8, 16384)


def test_server_level_values_override_one_by_one(tmp_path):
    s = servers(tmp_path, HTTP)["overrides"]
    assert s.ssl.protocols == ("TLSv1.2",)
    assert s.ssl.ciphers == "HIGH"
    assert s.ssl.session_cache == "shared:SSL:10m"      # not set here: inherited
    assert s.ssl.session_tickets is False
    # the certificate array is replaced whole: no RSA/ECDSA pair from http
    assert [(c.rsplit("/", 1)[1], k.rsplit("/", 1)[1]) for c, k, _ in s.ssl.certificates] == [
        ("own.pem", "own.key")]
    assert s.http2 is False
    assert s.http2_max_concurrent_streams == 64
    assert s.merge_slashes is True
    assert s.underscores_in_headers is True
    assert s.client_header_timeout == 7


def test_defaults_without_any_setting(tmp_path):
    s = servers(tmp_path, "server { listen 80; server_name x; }")["x"]
    assert s.ssl.protocols == ("TLSv1.2", "TLSv1.3")
    assert s.ssl.certificates == []
    assert s.http2 is False


def test_arrays_are_inherited_separately(tmp_path):
    # nginx merges ssl_certificate and ssl_certificate_key each on its own: a server that
    # writes only a key pairs it with the http-level certificate
    s = servers(tmp_path, """
        ssl_certificate http.pem;
        server { listen 443 ssl; server_name x; ssl_certificate_key own.key; }
    """)["x"]
    assert [(c.rsplit("/", 1)[1], k.rsplit("/", 1)[1]) for c, k, _ in s.ssl.certificates] == [
        ("http.pem", "own.key")]


def test_missing_key_for_inherited_certificates_names_the_last(tmp_path):
    with pytest.raises(ConfigError) as e:
        compile_text(tmp_path, """
ssl_certificate_key k.key;
server {
    listen 443 ssl;
    ssl_certificate a.pem;
    ssl_certificate b.pem;
}
""")
    assert str(e.value) == (f'no "ssl_certificate_key" is defined for certificate "b.pem" '
                            f"in {tmp_path}/site.conf:6")


def test_http_level_certificate_without_servers_is_not_checked(tmp_path):
    # as nginx: the arrays are paired when a server merges them
    assert compile_text(tmp_path, "ssl_certificate a.pem;").http.servers == []


def test_invalid_http_level_protocol(tmp_path):
    with pytest.raises(ConfigError, match=r'invalid value "TLSv9" in "ssl_protocols" '
                                          r"directive in .*site.conf:1"):
        compile_text(tmp_path, "ssl_protocols TLSv9;\nserver { listen 80; }")


# -- the runtime: contexts and `-t` -------------------------------------------------------------


def write_pair(tmp_path: Path, name: str) -> str:
    c = trustme.CA().issue_cert(name)
    path = tmp_path / f"{name}.pem"
    c.private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


def runtime(tmp_path: Path, text: str) -> Runtime:
    return Runtime(compile_text(tmp_path, text), ErrorLog([("stderr", "emerg")]))


def test_no_certificate_for_listen_ssl_is_a_config_error_at_the_server(tmp_path):
    with pytest.raises(ConfigError) as e:
        runtime(tmp_path, "server {\n    listen 127.0.0.1:8443 ssl;\n}\n")
    assert str(e.value) == ('no "ssl_certificate" is defined for the "listen ... ssl" '
                            f"directive in {tmp_path}/site.conf:1")


def test_default_server_without_certificate_is_an_error_even_if_another_has_one(tmp_path):
    pem = write_pair(tmp_path, "b.test")
    with pytest.raises(ConfigError, match=r"listen \.\.\. ssl.* in .*site.conf:2$"):
        runtime(tmp_path, f"""
server {{ listen 127.0.0.1:8443 ssl; server_name a.test; }}
server {{ listen 127.0.0.1:8443 ssl; server_name b.test;
         ssl_certificate {pem}; ssl_certificate_key {pem}; }}
""")


def test_http_level_certificate_gives_the_listener_a_context(tmp_path):
    pem = write_pair(tmp_path, "a.test")
    rt = runtime(tmp_path, f"""
ssl_certificate {pem};
ssl_certificate_key {pem};
ssl_protocols TLSv1.3;
server {{ listen 127.0.0.1:8443 ssl; server_name a.test; }}
server {{ listen 127.0.0.1:8443 ssl; server_name b.test; }}
""")
    ctx = rt.listeners[("127.0.0.1", 8443)].ssl_context
    assert ctx is not None
    import ssl
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
