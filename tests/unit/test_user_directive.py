"""The `user` directive, compile side (the workers' switch: tests/e2e/test_worker_user.py)."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load


def compile_text(tmp_path: Path, text: str):
    p = tmp_path / "site.conf"
    p.write_text(text)
    return load(str(p), str(tmp_path))


# -- user --------------------------------------------------------------------------------------

def _main_conf(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "n.conf"
    p.write_text(f"{line}\nevents {{}}\nhttp {{ access_log off; }}\n")
    return p


def test_user_ignored_with_nginx_warning_when_not_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cfg = load(str(_main_conf(tmp_path, "user nosuchuser-xyz;")), str(tmp_path))
    assert cfg.main.uid is None
    assert cfg.warnings == ['the "user" directive makes sense only if the master process runs '
                            f'with super-user privileges, ignored in {tmp_path}/n.conf:1']


@pytest.mark.parametrize("line, message", [
    ("user nosuchuser-xyz;", 'getpwnam("nosuchuser-xyz") failed'),
    ("user nobody nosuchgroup-xyz;", 'getgrnam("nosuchgroup-xyz") failed'),
])
def test_unknown_user_or_group_is_emerg_as_root(tmp_path, monkeypatch, line, message):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError) as e:
        load(str(_main_conf(tmp_path, line)), str(tmp_path))
    assert str(e.value) == f"{message} in {tmp_path}/n.conf:1"


def test_user_ids_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cfg = load(str(_main_conf(tmp_path, "user nobody nogroup;")), str(tmp_path))
    assert (cfg.main.uid, cfg.main.gid) == (pwd.getpwnam("nobody").pw_uid,
                                            grp.getgrnam("nogroup").gr_gid)
    # no directive: nginx's default, also for a conf.d-style file
    cfg = compile_text(tmp_path, "server { }")
    assert (cfg.main.user, cfg.main.group) == ("nobody", "nogroup")
    assert cfg.main.uid == pwd.getpwnam("nobody").pw_uid


def test_no_user_switch_when_not_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cfg = compile_text(tmp_path, "server { }")
    assert cfg.main.uid is None and cfg.warnings == []
