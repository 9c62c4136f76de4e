"""The demo upstream application and the bundled example config (``truehop demo``)."""

from __future__ import annotations

import os

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
DEMO_CONF = os.path.join(DEMO_DIR, "demo.conf")

__all__ = ["DEMO_CONF", "DEMO_DIR"]
