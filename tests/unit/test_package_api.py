"""The package's public API: `truehop.Proxy` is the test helper, loaded only when asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import truehop
import truehop.testing


def test_proxy_is_the_test_helper() -> None:
    assert truehop.Proxy is truehop.testing.Proxy
    assert "Proxy" in truehop.__all__


def test_other_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Proxi'"):
        truehop.Proxi  # noqa: B018


def test_a_worker_never_loads_the_test_helper() -> None:
    code = ("import sys, truehop, truehop.process.worker, truehop.cli; "
            "print('truehop.testing' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"
