"""Quick mode and the demo: configuration text with the right defaults, run by the same engine.

`truehop --to 127.0.0.1:3000` writes the config an experienced operator would write for one
app (keepalive upstream, the forwarding headers, the WebSocket map, timeouts) and runs it;
`--print-config` shows that text instead. `truehop demo` starts the bundled demo app on two
ports and truehop in front of it with `demo/demo.conf`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

# the command line's entry (cli.main), handed in by cli: quick mode sits below the CLI
Main = Callable[[list[str]], int]

QUICK_TEMPLATE = """\
# Written by `truehop --to {to}`: a reverse proxy with the defaults done right.
# Run `truehop --to {to} --print-config > site.conf` to start from this file.
pid {pid};
error_log stderr notice;

events {{}}

http {{
    access_log {access_log};

    # WebSockets: forward Upgrade, and ask for "Connection: upgrade" only when the client did.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}

    upstream app {{
        server {to};
        keepalive 32;
    }}

    server {{
        listen {listen};

        client_max_body_size 10m;

        location / {{
            proxy_pass http://app;

            proxy_set_header Host              $host;
            proxy_set_header X-Real-IP         $remote_addr;
            proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host  $host;

            proxy_set_header Upgrade           $http_upgrade;
            proxy_set_header Connection        $connection_upgrade;

            proxy_connect_timeout 5s;
            proxy_read_timeout    300s;
            proxy_send_timeout    300s;
        }}
    }}
}}
"""


def quick_config(to: str, listen: str | None, workdir: str) -> str:
    return QUICK_TEMPLATE.format(to=to, listen=listen or "127.0.0.1:8080",
                                 pid=os.path.join(workdir, "truehop.pid"),
                                 access_log="/dev/stdout" if False else
                                 os.path.join(workdir, "access.log"))


def run(a: Any, main: Main) -> int:
    workdir = tempfile.mkdtemp(prefix="truehop-quick-")
    text = quick_config(a.to, a.listen, workdir)
    if a.print_config:
        sys.stdout.write(text)
        return 0
    path = os.path.join(workdir, "truehop.conf")
    with open(path, "w") as f:
        f.write(text)
    print(f"truehop: proxying http://{a.listen or '127.0.0.1:8080'}/ -> http://{a.to}/ "
          f"(config: {path})", file=sys.stderr)
    return main(["-p", workdir + "/", "-c", path])


def demo(a: Any, main: Main) -> int:
    """The demo app on 127.0.0.1:3000 and :3001, truehop on :8080 in front of it."""
    here = os.path.dirname(os.path.abspath(__file__))
    demo_dir = os.path.join(here, "demo")
    # a private prefix: logs and the pid file never land inside the installed package
    work = tempfile.mkdtemp(prefix="truehop-demo-")
    os.chmod(work, 0o755)  # started as root, the workers run as nobody and serve static/
    shutil.copytree(os.path.join(demo_dir, "static"), os.path.join(work, "static"))
    conf = os.path.join(work, "demo.conf")
    shutil.copy(os.path.join(demo_dir, "demo.conf"), conf)
    apps = [subprocess.Popen([sys.executable, "-m", "truehop.demo.app", "--host", "127.0.0.1",
                              "--port", str(port), "--name", name])
            for port, name in ((3000, "app-a"), (3001, "app-b"))]
    try:
        for port in (3000, 3001):
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        print(f"truehop demo: the demo app did not start on port {port}",
                              file=sys.stderr)
                        return 1
                    time.sleep(0.05)
        print("truehop demo: open http://127.0.0.1:8080/  (also /static/style.css, /__sse, "
              "/__ws); the demo app runs on 127.0.0.1:3000 and :3001. Ctrl-C stops.",
              file=sys.stderr)
        return main(["-p", work + "/", "-c", conf, "-e", "stderr"])
    finally:
        for p in apps:
            p.terminate()
        for p in apps:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
