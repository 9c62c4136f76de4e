"""truehop: a reverse proxy that runs the reverse-proxy part of nginx's configuration language.

`truehop.Proxy` (truehop.testing.Proxy) runs a project's nginx config in front of its app
from Python, on free loopback ports: `with truehop.Proxy("deploy/site.conf", upstreams=...)
as proxy: ...`. It is loaded on first use (PEP 562), because every worker module imports this
package and none of them needs the test helper.
"""

from typing import Any

__version__ = "0.1.0"
NGINX_COMPAT = "1.30.0"

__all__ = ["NGINX_COMPAT", "Proxy", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Proxy":
        from truehop.testing import Proxy
        return Proxy
    raise AttributeError(f"module 'truehop' has no attribute {name!r}")
