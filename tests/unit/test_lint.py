"""Lint rules: for every rule a config that shows it (with the line it must point at) and one
that does not. Configs are small conf.d-style texts compiled with the real `load()`."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import textwrap
from pathlib import Path

import pytest

from truehop.conf.compile import load
from truehop.lint import Finding, run
from truehop.lint.rules import RULES, for_location

SHARED = Path("/work/shared/configs")
UP = "upstream app { server 127.0.0.1:3000; }\n"
UP_KA = "upstream app { server 127.0.0.1:3000; keepalive 16; }\n"
CACHE = UP + "proxy_cache_path cache keys_zone=one:1m;\n"
MAP = "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }\n"
GOOD = """
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;"""


TLS2 = ("server {{\n listen 127.0.0.1:8443 ssl{d1};{m1}\n server_name {n1};\n"
        " ssl_certificate a.pem;\n ssl_certificate_key a.key;\n}}\n"
        "server {{\n listen 127.0.0.1:8443 ssl{d2};\n server_name b.example.test;\n"
        " ssl_certificate b.pem;\n ssl_certificate_key b.key;\n}}\n")


def lint(tmp_path: Path, text: str) -> list[Finding]:
    os.makedirs(tmp_path / "public" / "static", exist_ok=True)
    conf = tmp_path / "site.conf"
    conf.write_text(textwrap.dedent(text).replace("HOSTNAME", socket.gethostname()))
    return run(load(str(conf), str(tmp_path)))


def loc(body: str, head: str = UP, listen: str = "listen 127.0.0.1:8080;") -> str:
    return f"{head}server {{\n    {listen}\n    location / {{\n{body}\n    }}\n}}\n"


# (case id, config text, rule, severity, fires?). A firing case marks the line the finding
# must point at with "#!".
CASES: list[tuple[str, str, str, str, bool]] = [
    # missing-forwarded-proto
    ("proto-tls", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
                      "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", True),
    ("proto-tls-ok", loc("proxy_pass http://app;" + GOOD, listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", False),
    ("proto-forwarded-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                               "proxy_set_header Forwarded \"for=$remote_addr;proto=$scheme\";",
                               listen="listen 127.0.0.1:8443 ssl;"),
     "missing-forwarded-proto", "warn", False),
    ("proto-balancer", "set_real_ip_from 10.0.0.0/8;\n" + loc(
        "proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
        "proxy_set_header X-Real-IP $remote_addr;"),
     "missing-forwarded-proto", "warn", True),
    ("proto-plain-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                           "proxy_set_header X-Real-IP $remote_addr;"),
     "missing-forwarded-proto", "warn", False),
    # missing-client-ip
    ("client-ip", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;"),
     "missing-client-ip", "warn", True),
    ("client-ip-xff-ok", loc("proxy_pass http://app;\nproxy_set_header Host $host;\n"
                             "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"),
     "missing-client-ip", "warn", False),
    ("client-ip-empty", loc("proxy_pass http://app; #!\nproxy_set_header Host $host;\n"
                            "proxy_set_header X-Real-IP \"\";"),
     "missing-client-ip", "warn", True),
    # missing-host
    ("host-upstream", loc("proxy_pass http://app; #!\nproxy_set_header X-Real-IP $remote_addr;"),
     "missing-host", "warn", True),
    ("host-set-ok", loc("proxy_pass http://app;" + GOOD), "missing-host", "warn", False),
    ("host-address-ok", loc("proxy_pass http://127.0.0.1:3000;\n"
                            "proxy_set_header X-Real-IP $remote_addr;", head=""),
     "missing-host", "warn", False),
    # http-host
    ("http-host", loc("proxy_pass http://app;\nproxy_set_header Host $http_host; #!\n"
                      "proxy_set_header X-Real-IP $remote_addr;"),
     "http-host", "warn", True),
    ("http-host-ok", loc("proxy_pass http://app;" + GOOD), "http-host", "warn", False),
    # the shape projects use on purpose: a WebSocket location whose app checks Origin
    ("http-host-websocket", MAP + loc("proxy_pass http://app;\n"
                                      "proxy_set_header Host $http_host; #!\n"
                                      "proxy_set_header X-Real-IP $remote_addr;\n"
                                      "proxy_set_header Upgrade $http_upgrade;\n"
                                      "proxy_set_header Connection $connection_upgrade;"),
     "http-host", "note", True),
    ("http-host-websocket-not-warn", MAP + loc("proxy_pass http://app;\n"
                                               "proxy_set_header Host $http_host;\n"
                                               "proxy_set_header X-Real-IP $remote_addr;\n"
                                               "proxy_set_header Upgrade $http_upgrade;\n"
                                               "proxy_set_header Connection "
                                               "$connection_upgrade;"),
     "http-host", "warn", False),
    # duplicate-header
    ("dup", loc("proxy_pass http://app;" + GOOD + "\nproxy_set_header x-real-ip $remote_addr; #!"),
     "duplicate-header", "warn", True),
    ("dup-levels-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " proxy_set_header Host $host;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header Host $host;\n  proxy_set_header X-Real-IP $remote_addr;\n }\n}\n",
     "duplicate-header", "warn", False),
    # header-inheritance
    ("inherit", UP + "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host;\n"
     " proxy_set_header X-Real-IP $remote_addr;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header X-Request-Start t=$msec; #!\n }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-http-level", UP + "proxy_set_header X-Real-IP $remote_addr;\n"
     "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host; #!\n"
     " location / { proxy_pass http://app; }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-ok", UP + "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host $host;\n"
     " proxy_set_header X-Real-IP $remote_addr;\n location / { proxy_pass http://app; }\n}\n",
     "header-inheritance", "warn", False),
    ("inherit-repeated-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " proxy_set_header Host $host;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_set_header Host $host;\n  proxy_set_header X-Real-IP $remote_addr;\n }\n}\n",
     "header-inheritance", "warn", False),
    ("inherit-add-header", "server {\n listen 127.0.0.1:8080;\n"
     " add_header X-Content-Type-Options nosniff always;\n"
     " location /a/ {\n  add_header Cache-Control no-store; #!\n }\n}\n",
     "header-inheritance", "warn", True),
    ("inherit-add-header-ok", "server {\n listen 127.0.0.1:8080;\n"
     " add_header X-Content-Type-Options nosniff always;\n"
     " location /a/ {\n  add_header X-Content-Type-Options nosniff always;\n"
     "  add_header Cache-Control no-store;\n }\n}\n",
     "header-inheritance", "warn", False),
    # keepalive-defeated
    ("ka-map-close", "map $http_upgrade $c { default upgrade; \n '' close; #!\n}\n" + loc(
        "proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;\n"
        "proxy_set_header Connection $c;", head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-literal-close", loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Connection close; #!", head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-http10", loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" + GOOD, head=UP_KA),
     "keepalive-defeated", "warn", True),
    ("ka-http10-default-keepalive", loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" +
                                        GOOD),
     "keepalive-defeated", "note", True),
    # one WebSocket location closes its plain requests; "/" keeps reusing connections
    ("ka-websocket-location-ok", "map $http_upgrade $c { default upgrade; '' close; }\n" + UP_KA
     + "server {\n listen 127.0.0.1:8080;\n location / { proxy_pass http://app;" + GOOD
     + " }\n location /ws/ {\n  proxy_pass http://app;" + GOOD
     + "\n  proxy_set_header Upgrade $http_upgrade;\n  proxy_set_header Connection $c;\n }\n}\n",
     "keepalive-defeated", "warn", False),
    ("ka-websocket-location-note", "map $http_upgrade $c { default upgrade;\n '' close; #!\n}\n"
     + UP_KA + "server {\n listen 127.0.0.1:8080;\n location / { proxy_pass http://app;" + GOOD
     + " }\n location /ws/ {\n  proxy_pass http://app;" + GOOD
     + "\n  proxy_set_header Upgrade $http_upgrade;\n  proxy_set_header Connection $c;\n }\n}\n",
     "keepalive-defeated", "note", True),
    ("ka-map-empty-ok", MAP + loc(
        "proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;\n"
        "proxy_set_header Connection $connection_upgrade;", head=UP_KA),
     "keepalive-defeated", "warn", False),
    # upgrade-needs-http11
    ("ws-http10", MAP + loc("proxy_pass http://app;\nproxy_http_version 1.0; #!" + GOOD +
                            "\nproxy_set_header Upgrade $http_upgrade;\n"
                            "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-needs-http11", "warn", True),
    ("ws-http11-ok", MAP + loc("proxy_pass http://app;\nproxy_http_version 1.1;" + GOOD +
                               "\nproxy_set_header Upgrade $http_upgrade;\n"
                               "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-needs-http11", "warn", False),
    # upgrade-without-connection
    ("ws-no-connection", loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Upgrade $http_upgrade; #!"),
     "upgrade-without-connection", "warn", True),
    ("ws-connection-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                                   "\nproxy_set_header Upgrade $http_upgrade;\n"
                                   "proxy_set_header Connection $connection_upgrade;"),
     "upgrade-without-connection", "warn", False),
    # connection-upgrade-hardcoded
    ("conn-hardcoded", loc("proxy_pass http://app;" + GOOD +
                           "\nproxy_set_header Upgrade $http_upgrade;\n"
                           "proxy_set_header Connection \"upgrade\"; #!"),
     "connection-upgrade-hardcoded", "note", True),
    ("conn-map-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                              "\nproxy_set_header Upgrade $http_upgrade;\n"
                              "proxy_set_header Connection $connection_upgrade;"),
     "connection-upgrade-hardcoded", "note", False),
    # websocket-read-timeout
    ("ws-timeout", MAP + loc("proxy_pass http://app;" + GOOD +
                             "\nproxy_set_header Upgrade $http_upgrade;\n"
                             "proxy_set_header Connection $connection_upgrade;\n"
                             "proxy_read_timeout 30s; #!"),
     "websocket-read-timeout", "note", True),
    ("ws-timeout-ok", MAP + loc("proxy_pass http://app;" + GOOD +
                                "\nproxy_set_header Upgrade $http_upgrade;\n"
                                "proxy_set_header Connection $connection_upgrade;\n"
                                "proxy_read_timeout 1h;"),
     "websocket-read-timeout", "note", False),
    # sse-buffering
    ("sse", UP + "server {\n listen 127.0.0.1:8080;\n location /events/ {\n"
     "  proxy_pass http://app; #!" + GOOD + "\n }\n}\n", "sse-buffering", "note", True),
    ("sse-ok", UP + "server {\n listen 127.0.0.1:8080;\n location /events/ {\n"
     "  proxy_pass http://app;\n  proxy_buffering off;" + GOOD + "\n }\n}\n",
     "sse-buffering", "note", False),
    # implicit-upstream-no-keepalive
    ("implicit", loc("proxy_pass http://127.0.0.1:3000; #!" + GOOD, head=""),
     "implicit-upstream-no-keepalive", "note", True),
    ("implicit-block-ok", loc("proxy_pass http://app;" + GOOD),
     "implicit-upstream-no-keepalive", "note", False),
    # static-shadowed
    ("shadowed", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; } #!\n"
     " location ~* \\.(css|js)$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", True),
    ("shadowed-caret-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location ^~ /static/ { alias public/static/; }\n"
     " location ~* \\.(css|js)$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", False),
    ("shadowed-same-root-ok", "server {\n listen 127.0.0.1:8080;\n root public;\n"
     " location /static/ { root public; }\n"
     " location ~* \\.(css|js)$ { expires 7d; }\n}\n",
     "static-shadowed", "warn", False),
    ("shadowed-anchored-ok", UP + "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; }\n"
     " location ~ ^/api/.*\\.json$ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "static-shadowed", "warn", False),
    # alias-traversal
    ("alias", "server {\n listen 127.0.0.1:8080;\n"
     " location /static { alias public/static/; } #!\n}\n",
     "alias-traversal", "warn", True),
    ("alias-ok", "server {\n listen 127.0.0.1:8080;\n"
     " location /static/ { alias public/static/; }\n}\n", "alias-traversal", "warn", False),
    # realip-trust-all
    ("realip-all", "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 0.0.0.0/0; #!\n" + loc(
        "proxy_pass http://app;" + GOOD), "realip-trust-all", "warn", True),
    ("realip-v6", "set_real_ip_from ::/0; #!\n" + loc("proxy_pass http://app;" + GOOD),
     "realip-trust-all", "warn", True),
    ("realip-lb-ok", "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 127.0.0.3;\n" + loc(
        "proxy_pass http://app;" + GOOD), "realip-trust-all", "warn", False),
    # dynamic-proxy-no-resolver
    ("dyn-literal-name", loc("proxy_pass http://backend.internal:8080$request_uri; #!" + GOOD),
     "dynamic-proxy-no-resolver", "warn", True),
    ("dyn-var-host", loc("proxy_pass http://$arg_h:3000; #!" + GOOD),
     "dynamic-proxy-no-resolver", "warn", True),
    ("dyn-map-to-upstreams-ok", "map $http_x_env $be { default app; beta 10.0.0.5:3000; }\n"
     + loc("proxy_pass http://$be;" + GOOD), "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-address-ok", loc("proxy_pass http://127.0.0.1:3000$request_uri;" + GOOD),
     "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-set-name", "server {\n listen 127.0.0.1:8080;\n set $be backend.internal:8080;\n"
     " location / {\n  proxy_pass http://$be; #!" + GOOD + "\n }\n}\n",
     "dynamic-proxy-no-resolver", "warn", True),
    ("dyn-set-address-ok", "server {\n listen 127.0.0.1:8080;\n location / {\n"
     "  set $app 127.0.0.1;\n  proxy_pass http://$app:3000$request_uri;" + GOOD + "\n }\n}\n",
     "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-set-upstreams-ok", UP + "upstream beta { server 127.0.0.1:3001; }\n"
     "server {\n listen 127.0.0.1:8080;\n set $be app;\n"
     " if ($http_x_env = beta) { set $be beta; }\n"
     " location / {\n  proxy_pass http://$be;" + GOOD + "\n }\n}\n",
     "dynamic-proxy-no-resolver", "warn", False),
    ("dyn-resolver-ok", loc("resolver 127.0.0.11;\nproxy_pass http://$arg_h:3000;" + GOOD),
     "dynamic-proxy-no-resolver", "warn", False),
    # upstream-resolved-once (HOSTNAME: this machine's name, which resolves at load time)
    ("resolved-once", "resolver 127.0.0.11;\nupstream app {\n server HOSTNAME:3000; #!\n}\n"
     + loc("proxy_pass http://app;" + GOOD, head=""), "upstream-resolved-once", "warn", True),
    ("resolved-once-in-block", "upstream app {\n zone app 64k;\n resolver 127.0.0.11;\n"
     " server HOSTNAME:3000; #!\n}\n" + loc("proxy_pass http://app;" + GOOD, head=""),
     "upstream-resolved-once", "warn", True),
    ("resolved-once-resolve-ok", "resolver 127.0.0.11;\nupstream app {\n zone app 64k;\n"
     " server HOSTNAME:3000 resolve;\n}\n" + loc("proxy_pass http://app;" + GOOD, head=""),
     "upstream-resolved-once", "warn", False),
    ("resolved-once-no-resolver-ok", "upstream app {\n server HOSTNAME:3000;\n}\n"
     + loc("proxy_pass http://app;" + GOOD, head=""), "upstream-resolved-once", "warn", False),
    ("resolved-once-address-ok", "resolver 127.0.0.11;\n" + loc("proxy_pass http://app;" + GOOD),
     "upstream-resolved-once", "warn", False),
    # host-header-empty
    ("host-empty", loc("proxy_pass http://app;" + GOOD + "\nproxy_set_header Host \"\"; #!"),
     "host-header-empty", "warn", True),
    ("host-empty-server", UP + "server {\n listen 127.0.0.1:8080;\n proxy_set_header Host ''; #!\n"
     " location / { proxy_pass http://app; }\n}\n", "host-header-empty", "warn", True),
    ("host-set-ok", loc("proxy_pass http://app;" + GOOD), "host-header-empty", "warn", False),
    # keepalive-local-shared
    ("ka-local-shared", "upstream app { #!\n server 127.0.0.1:3000;\n}\n"
     "server {\n listen 127.0.0.1:8080;\n location /a/ { proxy_pass http://app;" + GOOD + " }\n"
     " location /b/ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "keepalive-local-shared", "note", True),
    ("ka-local-explicit", "upstream app { #!\n server 127.0.0.1:3000; keepalive 8 local;\n}\n"
     "server {\n listen 127.0.0.1:8080;\n location /a/ { proxy_pass http://app;" + GOOD + " }\n"
     " location /b/ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "keepalive-local-shared", "note", True),
    ("ka-shared-ok", "upstream app {\n server 127.0.0.1:3000; keepalive 8;\n}\n"
     "server {\n listen 127.0.0.1:8080;\n location /a/ { proxy_pass http://app;" + GOOD + " }\n"
     " location /b/ { proxy_pass http://app;" + GOOD + " }\n}\n",
     "keepalive-local-shared", "note", False),
    ("ka-one-location-ok", loc("proxy_pass http://app;" + GOOD),
     "keepalive-local-shared", "note", False),
    # proxy-pass-uri-variables
    ("pp-capture", UP + "server {\n listen 127.0.0.1:8080;\n location ~ ^/api/(.*)$ {\n"
     "  proxy_pass http://app/v1/$1; #!" + GOOD + "\n }\n}\n",
     "proxy-pass-uri-variables", "warn", True),
    ("pp-var-host-uri", "server {\n listen 127.0.0.1:8080;\n location /a/ {\n"
     "  set $b 127.0.0.1:3000;\n  proxy_pass http://$b/v1/; #!" + GOOD + "\n }\n}\n",
     "proxy-pass-uri-variables", "warn", True),
    ("pp-capture-args-ok", UP + "server {\n listen 127.0.0.1:8080;\n location ~ ^/api/(.*)$ {\n"
     "  proxy_pass http://app/v1/$1$is_args$args;" + GOOD + "\n }\n}\n",
     "proxy-pass-uri-variables", "warn", False),
    ("pp-request-uri-ok", "server {\n listen 127.0.0.1:8080;\n location /a/ {\n"
     "  set $b 127.0.0.1:3000;\n  proxy_pass http://$b$request_uri;" + GOOD + "\n }\n}\n",
     "proxy-pass-uri-variables", "warn", False),
    ("pp-literal-ok", loc("proxy_pass http://app/v1/;" + GOOD),
     "proxy-pass-uri-variables", "warn", False),
    # tls-implicit-default
    ("tls-default", TLS2.format(d1="", d2="", m1=" #!", n1="a.example.test"),
     "tls-implicit-default", "note", True),
    ("tls-default-explicit-ok", TLS2.format(d1="", d2=" default_server", m1="",
                                            n1="a.example.test"),
     "tls-implicit-default", "note", False),
    ("tls-default-catchall-ok", TLS2.format(d1="", d2="", m1="", n1="_"),
     "tls-implicit-default", "note", False),
    ("tls-one-server-ok", "server {\n listen 127.0.0.1:8443 ssl;\n server_name a.example.test;\n"
     " ssl_certificate a.pem;\n ssl_certificate_key a.key;\n}\n",
     "tls-implicit-default", "note", False),
    # cache-set-cookie
    ("cache-cookie", CACHE + loc("proxy_pass http://app; proxy_cache one;\n"
                                 "proxy_ignore_headers Set-Cookie; #!" + GOOD, head=""),
     "cache-set-cookie", "warn", True),
    ("cache-cookie-hidden-ok", CACHE + loc("proxy_pass http://app; proxy_cache one;\n"
                                           "proxy_ignore_headers Set-Cookie;\n"
                                           "proxy_hide_header Set-Cookie;" + GOOD, head=""),
     "cache-set-cookie", "warn", False),
    # cache-key-without-host
    ("cache-key", CACHE + "server {\n listen 127.0.0.1:8080;\n server_name a.test b.test;\n"
     " location / {\n  proxy_pass http://app;\n  proxy_cache one; #!" + GOOD + "\n }\n}\n",
     "cache-key-without-host", "warn", True),
    ("cache-key-host-ok", CACHE + "server {\n listen 127.0.0.1:8080;\n"
     " server_name a.test b.test;\n location / {\n  proxy_pass http://app;\n"
     "  proxy_cache one;\n  proxy_cache_key $scheme$host$request_uri;" + GOOD + "\n }\n}\n",
     "cache-key-without-host", "warn", False),
    # issue 15, misc: TLS settings Python's ssl cannot (fully) apply
    ("early-data", UP + "server {\n listen 127.0.0.1:8443 ssl;\n ssl_early_data on; #!\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-early-data-ignored", "warn", True),
    ("early-data-off-ok", UP + "server {\n listen 127.0.0.1:8443 ssl;\n ssl_early_data off;\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-early-data-ignored", "warn", False),
    ("ecdh-list", UP + "server {\n listen 127.0.0.1:8443 ssl;\n"
     " ssl_ecdh_curve X25519:prime256v1:secp384r1; #!\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-ecdh-curve-list", "warn", True),
    ("ecdh-one-ok", UP + "server {\n listen 127.0.0.1:8443 ssl;\n ssl_ecdh_curve secp384r1;\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-ecdh-curve-list", "warn", False),
    ("conf-command", UP + "server {\n listen 127.0.0.1:8443 ssl;\n"
     " ssl_conf_command Options PrioritizeChaCha;\n"
     " ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256; #!\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-conf-command-ignored", "warn", True),
    ("conf-command-ok", UP + "server {\n listen 127.0.0.1:8443 ssl;\n"
     " ssl_conf_command Options -SessionTicket,ServerPreference;\n"
     " location / { proxy_pass http://app;" + GOOD + " }\n}\n",
     "ssl-conf-command-ignored", "warn", False),
]


def marked_line(text: str) -> int:
    lines = [i for i, ln in enumerate(textwrap.dedent(text).splitlines(), 1) if "#!" in ln]
    assert len(lines) == 1, "a firing case marks exactly one line"
    return lines[0]


@pytest.mark.parametrize("case,text,rule,severity,fires", CASES, ids=[c[0] for c in CASES])
def test_rule(tmp_path: Path, case: str, text: str, rule: str, severity: str,
              fires: bool) -> None:
    found = [f for f in lint(tmp_path, text) if f.rule == rule]
    if not fires:
        assert [f for f in found if f.severity == severity] == [], \
            "\n".join(f.render() for f in found)
        return
    assert found, f"{rule} not reported; got: {[f.rule for f in lint(tmp_path, text)]}"
    line = marked_line(text)
    assert [(f.severity, f.line) for f in found] == [(severity, line)], \
        "\n".join(f.render() for f in found)
    f = found[0]
    assert f.file == str(tmp_path / "site.conf")
    assert f.message and f.fix


def test_every_rule_has_cases() -> None:
    covered = {c[2] for c in CASES}
    assert set(RULES) <= covered
    for rule in RULES:
        assert any(c[2] == rule and c[4] for c in CASES), rule
        assert any(c[2] == rule and not c[4] for c in CASES), rule


def test_header_inheritance_folds_missing_headers(tmp_path: Path) -> None:
    text = (UP + "server {\n listen 127.0.0.1:8443 ssl;\n ssl_certificate c.pem;\n"
            " ssl_certificate_key k.pem;\n" + GOOD + "\n"
            " location /api/ {\n  proxy_pass http://app;\n  proxy_set_header X-Id 1;\n }\n}\n")
    rules = sorted(f.rule for f in lint(tmp_path, text) if f.loud)
    assert rules == ["header-inheritance"]


def test_upgrade_http10_folds_keepalive(tmp_path: Path) -> None:
    text = MAP + loc("proxy_pass http://app;\nproxy_http_version 1.0;" + GOOD +
                     "\nproxy_set_header Upgrade $http_upgrade;\n"
                     "proxy_set_header Connection $connection_upgrade;", head=UP_KA)
    rules = sorted(f.rule for f in lint(tmp_path, text) if f.loud)
    assert rules == ["upgrade-needs-http11"]


def test_finding_shape() -> None:
    f = Finding("missing-forwarded-proto", "warn", "/x.conf", 12,
                "TLS ends here but the app is never told the scheme",
                "proxy_set_header X-Forwarded-Proto $scheme;")
    assert f.render() == ("truehop: [warn] [missing-forwarded-proto] TLS ends here but the app "
                          "is never told the scheme in /x.conf:12; fix: proxy_set_header "
                          "X-Forwarded-Proto $scheme;")
    assert f.render(prefix=False).startswith("[missing-forwarded-proto] TLS")
    d = f.as_dict()
    assert list(d) == ["rule", "severity", "file", "line", "message", "fix"]
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(ValueError):
        Finding("x", "fatal", "f", 1, "m")


def test_for_location(tmp_path: Path) -> None:
    text = (UP + "server {\n listen 127.0.0.1:8080;\n"
            " location /a/ { proxy_pass http://app; }\n"
            " location /b/ { proxy_pass http://app;" + GOOD + " }\n}\n")
    conf = tmp_path / "site.conf"
    conf.write_text(text)
    cfg = load(str(conf), str(tmp_path))
    srv = cfg.http.servers[0]
    a, b = srv.locations
    assert {f.rule for f in for_location(cfg, srv, a)} >= {"missing-host", "missing-client-ip"}
    assert [f for f in for_location(cfg, srv, b) if f.loud] == []


# --- the shared pitfall configs: exactly the expected loud findings ----------------------

def _expectations(path: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    must: set[tuple[str, str]] = set()
    may: set[tuple[str, str]] = set()
    for line in open(path):
        if line.startswith("# expect:") and "nothing" not in line:
            rule, sev = line.split(":", 1)[1].split()[:2]
            must.add((rule, sev))
        elif line.startswith("# may:"):
            rule, sev = line.split(":", 1)[1].split()[:2]
            may.add((rule, sev))
    return must, may


PITFALLS = sorted(glob.glob(str(SHARED / "pitfalls" / "*.conf")))
REFERENCE = [str(SHARED / n) for n in ("reference.conf", "full-nginx.conf",
                                        "behind-load-balancer.conf")]


@pytest.mark.skipif(not PITFALLS, reason="shared pitfall configs not present")
@pytest.mark.parametrize("path", PITFALLS + REFERENCE, ids=os.path.basename)
def test_shared_configs(tmp_path: Path, path: str) -> None:
    if not os.path.exists(path):
        pytest.skip("missing")
    must, may = _expectations(path)
    if must == {("map-context", "error")}:
        pytest.skip("a config error, reported by the CLI")
    target = tmp_path / os.path.basename(path)
    shutil.copy(path, target)
    os.makedirs(tmp_path / "public" / "static", exist_ok=True)
    got = {(f.rule, f.severity) for f in run(load(str(target), str(tmp_path))) if f.loud}
    assert must <= got
    assert got - must - may == set()


NO_HOST = "\n".join(GOOD.splitlines()[2:])


def test_http_host_fix_keeps_the_port(tmp_path: Path) -> None:
    text = loc("proxy_pass http://app;\nproxy_set_header Host $http_host;" + NO_HOST)
    found = [f for f in lint(tmp_path, text) if f.rule == "http-host"]
    assert [f.severity for f in found] == ["warn"]
    assert "$host:$server_port" in found[0].fix
    text80 = loc("proxy_pass http://app;\nproxy_set_header Host $http_host;" + NO_HOST,
                 listen="listen 127.0.0.1:80;")
    found = [f for f in lint(tmp_path, text80) if f.rule == "http-host"]
    assert found[0].fix.startswith("proxy_set_header Host $host;")


def test_upgrade_wording_is_not_websocket_only(tmp_path: Path) -> None:
    text = loc("proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;")
    f = next(f for f in lint(tmp_path, text) if f.rule == "upgrade-without-connection")
    assert "WebSocket handshakes fail" not in f.message and "protocol" in f.message
    text = loc("proxy_pass http://app;" + GOOD + "\nproxy_set_header Upgrade $http_upgrade;\n"
               "proxy_set_header Connection upgrade;")
    f = next(f for f in lint(tmp_path, text) if f.rule == "connection-upgrade-hardcoded")
    assert "cannot be kept alive" not in f.message and "still kept alive" in f.message
