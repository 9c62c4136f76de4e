"""The clocks the request path reads, under Final names.

The compiled build (setup.py) looks a module attribute such as `time.monotonic` up on every
call; a Final name is read directly. Same functions, same values.
"""

from __future__ import annotations

import time
from typing import Final

monotonic: Final = time.monotonic   # deadlines, timeouts, $request_time's parts
wall: Final = time.time             # $msec, $request_time's start, the Date header
