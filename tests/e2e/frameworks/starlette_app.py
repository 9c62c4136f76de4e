"""A Starlette app under uvicorn with --proxy-headers --forwarded-allow-ips, as uvicorn's
deployment docs say to run it behind nginx.
Run: python starlette_app.py PORT. Answers JSON with what Starlette concluded."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({
        "framework": "starlette",
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "url": str(request.url),
        "host": request.headers.get("host"),
    })


app = Starlette(routes=[Route("/{path:path}", whoami)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", log_level="warning")
