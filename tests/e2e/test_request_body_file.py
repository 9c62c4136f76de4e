"""Buffered request bodies beyond client_body_buffer_size go to a temp file under
client_body_temp_path, as nginx's do, and reach the upstream intact from there (HTTP/1.1 with
a length or chunked, HTTP/2, again on a retry); the file never outlives the request unless
`client_body_in_file_only on` asks; and the worker's memory does not grow by the body's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_ports, worker_pid

pytestmark = pytest.mark.timeout(120)


class HashingUpstream:
    """Reads each request's body (it must carry a Content-Length: a buffered body does) a
    piece at a time and answers JSON: its length and sha256, the X-File header, and the
    length and sha256 of the file that header names. `drop=True`: read the body, then close
    without a word (a failed try)."""

    def __init__(self, drop: bool = False) -> None:
        self.drop = drop
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        with c:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    got = c.recv(65536)
                    if not got:
                        return
                    buf += got
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {k.strip().lower(): v.strip()
                        for k, _, v in (ln.partition(":") for ln in lines[1:])}
                assert "transfer-encoding" not in hdrs, "a buffered body has a length"
                left = int(hdrs.get("content-length", "0"))
                h = hashlib.sha256()
                n = 0
                while left:
                    if not buf:
                        buf = c.recv(1 << 20)
                        if not buf:
                            return
                    piece, buf = buf[:left], buf[left:]
                    h.update(piece)
                    n += len(piece)
                    left -= len(piece)
                info: dict[str, Any] = {"line": lines[0], "length": n, "sha256": h.hexdigest(),
                                        "x_file": hdrs.get("x-file"),
                                        "content_length": hdrs.get("content-length")}
                if info["x_file"]:
                    data = Path(info["x_file"]).read_bytes()
                    info["file_length"] = len(data)
                    info["file_sha256"] = hashlib.sha256(data).hexdigest()
                self.seen.append(info)
                if self.drop:
                    return
                out = json.dumps(info).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%b" % (len(out), out))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def app() -> Iterator[HashingUpstream]:
    up = HashingUpstream()
    yield up
    up.close()


@pytest.fixture
def dropper() -> Iterator[HashingUpstream]:
    up = HashingUpstream(drop=True)
    yield up
    up.close()


CONF = """
worker_processes 1;
error_log @@DIR@@/error.log info;
events { }
http {
    access_log off;
    client_max_body_size 100m;
    client_body_buffer_size 16k;
    client_body_temp_path @@DIR@@/body_temp;
    proxy_http_version 1.1;
    upstream retry { server 127.0.0.1:@@DROP@@; server 127.0.0.1:@@APP@@; }
    server {
        listen 127.0.0.1:@@PORT@@;
        http2 on;
        location / { proxy_pass http://127.0.0.1:@@APP@@; }
        location /retry/ { proxy_pass http://retry/; }
        location /only/ {
            client_body_in_file_only on;
            proxy_pass_request_body off;
            proxy_set_header X-File $request_body_file;
            proxy_pass http://127.0.0.1:@@APP@@/;
        }
        location /clean/ {
            client_body_in_file_only clean;
            client_body_temp_path @@DIR@@/clean_temp 1 2;
            proxy_pass http://127.0.0.1:@@APP@@/;
        }
        location /vars/ {
            add_header X-Body-File $request_body_file;
            add_header X-Body-Length "$request_body";
            proxy_pass http://127.0.0.1:@@APP@@/;
        }
    }
}
"""


def start(truehop: Any, app: HashingUpstream, tmp_path: Path,
          drop: HashingUpstream | None = None) -> tuple[Any, int]:
    port, spare = free_ports(2)
    tp = truehop(CONF, PORT=port, APP=app.port, DROP=drop.port if drop else spare,
                 DIR=tmp_path)
    return tp, port


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_files_under(pid: int, d: Path) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(d)):
            out.append(target)
    return out


def wait_until(cond: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# -- the body arrives intact ------------------------------------------------------------

def test_a_body_beyond_the_buffer_reaches_the_upstream_intact(truehop: Any,
                                                              app: HashingUpstream,
                                                              tmp_path: Path) -> None:
    tp, port = start(truehop, app, tmp_path)
    temp = tmp_path / "body_temp"
    assert temp.is_dir()                       # made at start, as nginx's ngx_create_paths
    body = os.urandom(3 * 1024 * 1024 + 17)
    with httpx.Client(timeout=30) as c:
        r = c.post(f"http://127.0.0.1:{port}/up", content=body)
        assert r.status_code == 200
        assert r.json()["sha256"] == sha(body) and r.json()["content_length"] == str(len(body))
        # chunked from the client: buffered, sent with a Content-Length
        r = c.post(f"http://127.0.0.1:{port}/up",
                   content=(body[i:i + 100_000] for i in range(0, len(body), 100_000)))
        assert r.status_code == 200
        assert r.json()["sha256"] == sha(body) and r.json()["content_length"] == str(len(body))
        # a small body stays in memory, and is still what arrives
        r = c.post(f"http://127.0.0.1:{port}/up", content=b"small")
        assert r.json()["sha256"] == sha(b"small")
    assert list(temp.iterdir()) == []
    pid = worker_pid(tp)
    assert wait_until(lambda: open_files_under(pid, temp) == [])
    tp.wait_for_log("a client request body is buffered to a temporary file "
                    f"{temp}/")


def test_an_http2_upload_takes_the_same_path(truehop: Any, app: HashingUpstream,
                                             tmp_path: Path) -> None:
    _, port = start(truehop, app, tmp_path)
    body = os.urandom(2 * 1024 * 1024 + 5)
    with httpx.Client(http1=False, http2=True, timeout=30) as c:
        r = c.post(f"http://127.0.0.1:{port}/h2", content=body)
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json()["sha256"] == sha(body)
        # no content-length from the client: the length is known once buffered
        r = c.post(f"http://127.0.0.1:{port}/h2",
                   content=(body[i:i + 70_000] for i in range(0, len(body), 70_000)))
        assert r.status_code == 200 and r.json()["sha256"] == sha(body)
        assert r.json()["content_length"] == str(len(body))
    assert list((tmp_path / "body_temp").iterdir()) == []


def test_a_retry_sends_the_whole_body_again(truehop: Any, app: HashingUpstream,
                                            dropper: HashingUpstream, tmp_path: Path) -> None:
    _, port = start(truehop, app, tmp_path, drop=dropper)
    body = os.urandom(1024 * 1024 + 3)
    # PUT: idempotent, so a try that took the body may be repeated (proxy_next_upstream error)
    r = httpx.put(f"http://127.0.0.1:{port}/retry/x", content=body, timeout=30)
    assert r.status_code == 200 and r.json()["sha256"] == sha(body)
    assert [s["sha256"] for s in dropper.seen] == [sha(body)]    # the first try had it all
    assert list((tmp_path / "body_temp").iterdir()) == []


def test_variables_name_the_file_and_request_body_is_empty(truehop: Any, app: HashingUpstream,
                                                           tmp_path: Path) -> None:
    _, port = start(truehop, app, tmp_path)
    r = httpx.post(f"http://127.0.0.1:{port}/vars/", content=b"x" * 20000, timeout=10)
    assert r.headers["x-body-file"].startswith(f"{tmp_path}/body_temp/")
    assert "x-body-length" not in r.headers        # $request_body: not found in a file
    r = httpx.post(f"http://127.0.0.1:{port}/vars/", content=b"tiny", timeout=10)
    assert "x-body-file" not in r.headers and r.headers["x-body-length"] == "tiny"


# -- client_body_in_file_only -----------------------------------------------------------

def test_file_only_on_hands_the_upstream_a_file_name(truehop: Any, app: HashingUpstream,
                                                     tmp_path: Path) -> None:
    _, port = start(truehop, app, tmp_path)
    for body in (b"0123456789", os.urandom(300_000)):
        r = httpx.post(f"http://127.0.0.1:{port}/only/", content=body, timeout=10)
        got = r.json()
        assert got["length"] == 0                          # proxy_pass_request_body off
        assert got["x_file"].startswith(f"{tmp_path}/body_temp/")
        assert got["file_sha256"] == sha(body) and got["file_length"] == len(body)
        kept = Path(got["x_file"])
        assert kept.read_bytes() == body                   # `on`: kept after the request
        kept.unlink()


def test_file_only_clean_removes_the_file_even_on_a_client_abort(truehop: Any,
                                                                 app: HashingUpstream,
                                                                 tmp_path: Path) -> None:
    tp, port = start(truehop, app, tmp_path)
    temp = tmp_path / "clean_temp"

    def named() -> list[Path]:
        return [p for p in temp.rglob("*") if p.is_file()]

    r = httpx.post(f"http://127.0.0.1:{port}/clean/", content=b"z" * 50_000, timeout=10)
    assert r.json()["sha256"] == sha(b"z" * 50_000)
    # removed when the exchange ends (just after the response's last byte is written)
    assert wait_until(lambda: not named())

    # the client goes away mid-upload: the named file is there meanwhile, then gone
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /clean/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
              + b"a" * 400_000)
    assert wait_until(lambda: bool(named()))
    depth = named()[0].relative_to(temp).parts          # levels 1 2 were applied
    assert len(depth) == 3 and len(depth[0]) == 1 and len(depth[1]) == 2
    s.close()
    assert wait_until(lambda: not named())
    pid = worker_pid(tp)
    assert wait_until(lambda: open_files_under(pid, temp) == [])


def test_an_abort_mid_upload_closes_the_unlinked_file(truehop: Any, app: HashingUpstream,
                                                      tmp_path: Path) -> None:
    tp, port = start(truehop, app, tmp_path)
    temp = tmp_path / "body_temp"
    pid = worker_pid(tp)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
              + b"a" * 400_000)
    # the file has no name (unlinked at once), only the worker's descriptor
    assert wait_until(lambda: bool(open_files_under(pid, temp)))
    assert list(temp.iterdir()) == []
    s.close()
    assert wait_until(lambda: open_files_under(pid, temp) == [])


# -- memory ----------------------------------------------------------------------------

def test_a_50mb_upload_does_not_grow_the_worker_by_its_size(truehop: Any, app: HashingUpstream,
                                                            tmp_path: Path) -> None:
    tp, port = start(truehop, app, tmp_path)
    pid = worker_pid(tp)
    size = 50 * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    h = hashlib.sha256()
    for _ in range(size // len(piece)):
        h.update(piece)
    with httpx.Client(timeout=60) as c:
        c.post(f"http://127.0.0.1:{port}/warm", content=piece)  # warm the paths first
        before = vm_hwm_kb(pid)
        r = c.post(f"http://127.0.0.1:{port}/big",
                   content=(piece for _ in range(size // len(piece))),
                   headers={"Content-Length": str(size)})
    assert r.status_code == 200 and r.json()["sha256"] == h.hexdigest()
    after = vm_hwm_kb(pid)
    print(f"worker VmHWM before {before} kB, after {after} kB, grew {after - before} kB "
          f"for a {size // 1024} kB body")
    # held in memory, the body alone would add 51200 kB; a generous margin for the rest
    assert after - before < 16 * 1024
