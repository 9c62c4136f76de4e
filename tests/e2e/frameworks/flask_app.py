"""A Flask app behind ProxyFix, as Flask's deployment docs say to run it behind nginx:
one proxy in front, trusted for X-Forwarded-For, -Proto and -Host.
Run: python flask_app.py PORT. Answers JSON with what Flask concluded."""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import run_simple

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def whoami(path: str) -> object:
    return jsonify(framework="flask", remote_addr=request.remote_addr, scheme=request.scheme,
                   is_secure=request.is_secure, host=request.host,
                   external_url=url_for("whoami", path=path, _external=True))


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
