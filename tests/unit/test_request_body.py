"""proxy.request_body: where a buffered request body is kept (memory or a temp file), the
file's name and life, and how it is sent; plus the two directives that steer it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from truehop.conf.ast import ConfigError
from truehop.conf.compile import load
from truehop.http.events import ProtocolError
from truehop.http.exchange import BodyStream
from truehop.proxy.request_body import CHUNK, BodyFile, read_body, temp_name


def stream(*chunks: bytes, error: BaseException | None = None) -> BodyStream:
    s = BodyStream(lambda n: None, lambda: None, False, None)
    for c in chunks:
        s.feed(c)
    if error is not None:
        s.fail(error)
    else:
        s.finish()
    return s


def read(s: BodyStream, tmp: Path, buffer_size: int = 16, file_only: str = "off",
         limit: int = 1 << 30, levels: tuple[int, ...] = ()) -> bytes | BodyFile:
    return asyncio.run(read_body(s, limit, 5.0, buffer_size, file_only, (str(tmp), levels)))


class Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self, timeout: float) -> None:
        pass


@pytest.mark.parametrize(("levels", "expected"), [
    ((), "/t/0000012345"),
    ((1,), "/t/5/0000012345"),
    ((1, 2), "/t/5/34/0000012345"),
    ((2, 2, 2), "/t/45/23/01/0000012345"),
])
def test_temp_names_are_nginx_hashed_names(levels: tuple[int, ...], expected: str) -> None:
    assert temp_name("/t", levels, 12345) == expected


def test_a_body_that_fits_stays_in_memory(tmp_path: Path) -> None:
    assert read(stream(b"0123456789", b"abcdef"), tmp_path) == b"0123456789abcdef"
    assert read(stream(b"one"), tmp_path) == b"one"
    assert read(stream(), tmp_path) == b""
    assert os.listdir(tmp_path) == []


def test_a_larger_body_goes_whole_to_an_unlinked_file(tmp_path: Path) -> None:
    got = read(stream(b"0123456789", b"abcdefghij", b"KLMNOPQRSTUVWXYZ"), tmp_path)
    assert isinstance(got, BodyFile)
    try:
        assert got.read() == b"0123456789abcdefghijKLMNOPQRSTUVWXYZ"
        assert got.length == 36
        assert got.name.startswith(f"{tmp_path}/") and len(os.path.basename(got.name)) == 10
        assert os.listdir(tmp_path) == []      # no name on disk: nothing can be left behind
    finally:
        got.close()
    got.close()                                # twice is harmless
    assert got.fd == -1


def test_file_only_on_keeps_the_file_clean_removes_it(tmp_path: Path) -> None:
    on = read(stream(b"tiny"), tmp_path, file_only="on")
    assert isinstance(on, BodyFile)
    on.close()
    assert Path(on.name).read_bytes() == b"tiny"
    clean = read(stream(b"tidy"), tmp_path, file_only="clean")
    assert isinstance(clean, BodyFile)
    assert Path(clean.name).read_bytes() == b"tidy"   # named while the request runs
    clean.close()
    assert not Path(clean.name).exists()
    empty = read(stream(), tmp_path, file_only="on")
    assert isinstance(empty, BodyFile) and empty.length == 0
    empty.close()
    assert Path(empty.name).read_bytes() == b""


def test_levels_directories_are_made_on_first_use(tmp_path: Path) -> None:
    got = read(stream(b"x" * 40), tmp_path, file_only="clean", levels=(1, 2))
    assert isinstance(got, BodyFile)
    rel = Path(got.name).relative_to(tmp_path).parts
    assert len(rel) == 3 and len(rel[0]) == 1 and len(rel[1]) == 2 and rel[2].endswith(rel[0])
    got.close()


def test_too_large_and_broken_bodies_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as e:
        read(stream(b"a" * 20, b"b" * 20), tmp_path, limit=30, file_only="on")
    assert e.value.status == 413
    with pytest.raises(ProtocolError) as e:
        read(stream(b"a" * 40, error=ProtocolError(400, "bad chunk")), tmp_path, file_only="clean")
    assert e.value.status == 400
    assert os.listdir(tmp_path) == []


def test_send_rereads_the_file_from_the_start_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 123)
    got = read(stream(*(data[i:i + 10000] for i in range(0, len(data), 10000))), tmp_path)
    assert isinstance(got, BodyFile)
    try:
        for _ in range(2):                     # a retry sends it whole again
            sink = Sink()
            asyncio.run(got.send(sink, 5.0))
            assert max(len(w) for w in sink.writes) <= CHUNK
            assert hashlib.sha256(b"".join(sink.writes)).digest() == hashlib.sha256(data).digest()
    finally:
        got.close()
    sink = Sink()
    asyncio.run(got.send(sink, 5.0))           # closed under a sender: it stops quietly
    assert sink.writes == []


def test_an_unwritable_temp_dir_is_nginx_open_failure(tmp_path: Path) -> None:
    from truehop.proxy.request_body import BodyFileError
    with pytest.raises(BodyFileError) as e:
        read(stream(b"z" * 40), tmp_path / "missing")
    assert e.value.message.startswith(f'open() "{tmp_path}/missing/')
    assert e.value.message.endswith('failed (2: No such file or directory)')


# -- the directives ---------------------------------------------------------------------

def compile_http(tmp_path: Path, body: str) -> object:
    conf = tmp_path / "t.conf"
    conf.write_text("events {}\nhttp {\n" + body + "\n}\n")
    return load(str(conf), str(tmp_path))


def test_temp_path_default_is_under_the_prefix_and_levels_are_kept(tmp_path: Path) -> None:
    cfg = compile_http(tmp_path, "server { listen 127.0.0.1:1; location / { "
                                 "client_body_temp_path body 1 2; "
                                 "client_body_in_file_only clean; } }")
    http = cfg.http                            # type: ignore[attr-defined]
    assert http.settings.client_body_temp_path == (f"{tmp_path}/client_body_temp", ())
    assert http.settings.client_body_in_file_only == "off"
    loc = http.servers[0].locations[0].settings
    assert loc.client_body_temp_path == (f"{tmp_path}/body", (1, 2))
    assert loc.client_body_in_file_only == "clean"


@pytest.mark.parametrize(("line", "message"), [
    ("client_body_temp_path /x 6 5;", '"client_body_temp_path" directive invalid value'),
    ("client_body_temp_path /x 0;", '"client_body_temp_path" directive invalid value'),
    ("client_body_temp_path /x 2 2 2 2;", "invalid number of arguments"),
    ("client_body_temp_path /x; client_body_temp_path /y;",
     '"client_body_temp_path" directive is duplicate'),
    ("client_body_in_file_only yes;", 'invalid value "yes"'),
])
def test_bad_values_are_refused_in_nginx_words(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        compile_http(tmp_path, line)
    assert message in str(e.value)
