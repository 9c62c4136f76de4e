"""The two authentication handlers of the access phase (proxy.access drives them):

* auth_basic (ngx_http_auth_basic_module): the realm is rendered per request (`off` there
  declines); the credentials come from `Authorization: Basic` (ngx_http_auth_basic_user);
  the password file is read when it changed (nginx opens it on every request: a file
  edited while truehop runs is used from the next request on) and checked with `htpasswd`.
  A missing file is 403 (logged at [error]), an unreadable one 500 ([crit]); no
  credentials, an unknown user or a wrong password is 401 with
  `WWW-Authenticate: Basic realm="..."`, each logged with nginx's words.
* auth_request (ngx_http_auth_request_module): a subrequest to the URI (proxy.subrequest);
  once it is done, each auth_request_set is evaluated in the subrequest (its
  $upstream_http_*, $upstream_status...) and stored in the main request's variables,
  whatever the status; then 2xx allows, 401 refuses with the subrequest's WWW-Authenticate
  (its response's, else its upstream's), 403 refuses, anything else is 500 with
  "auth request unexpected status: N".

Each handler returns None (declined), 0 (allowed) or the status to refuse with, and adds
the challenges it makes to the list it is given.
"""

from __future__ import annotations

import os
from typing import Final

from truehop import htpasswd
from truehop.conf.model import AuthRequestSet, UserFile
from truehop.log import ErrorLog
from truehop.proxy.subrequest import SubrequestRunner, run_subrequest
from truehop.route.state import RequestState
from truehop.route.template import Template
from truehop.route.variables import basic_credentials

_FILES_MAX: Final = 64
# path -> ((mtime_ns, size, inode), contents): a password file is read again when it changes
_files: dict[str, tuple[tuple[int, int, int], bytes]] = {}




def read_user_file(path: str) -> bytes:
    """The password file's contents, read again only when it changed. Raises OSError."""
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _files.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    with open(path, "rb") as f:
        data = f.read()
    if len(_files) >= _FILES_MAX:
        _files.clear()
    _files[path] = (key, data)
    return data


def auth_basic(log: ErrorLog, r: RequestState, realm_tpl: Template, user_file: UserFile,
               challenges: list[tuple[str, str]]) -> int | None:
    """ngx_http_auth_basic_handler."""
    realm = realm_tpl.render(r)
    if realm == "off":
        return None
    challenge = ("WWW-Authenticate", f'Basic realm="{realm}"')
    creds = basic_credentials(r)
    if creds is None:
        log.info("no user/password was provided for basic authentication", r.conn, r)
        challenges.append(challenge)
        return 401
    user, password = creds
    path = user_file.path.render(r)
    if not os.path.isabs(path):
        path = os.path.join(user_file.base, path)
    try:
        data = read_user_file(path)
    except OSError as e:
        msg = f'open() "{path}" failed ({e.errno}: {e.strerror})'
        if isinstance(e, FileNotFoundError):
            log.error(msg, r.conn, r)
            return 403
        log.crit(msg, r.conn, r)
        return 500
    shown = user.decode("latin-1")
    stored = htpasswd.find_hash(data, user)
    if stored is None:
        log.error(f'user "{shown}" was not found in "{path}"', r.conn, r)
        challenges.append(challenge)
        return 401
    ok = htpasswd.verify(password, stored)
    if ok is None:
        log.crit("crypt() failed", r.conn, r)
        return 500
    if not ok:
        log.error(f'user "{shown}": password mismatch', r.conn, r)
        challenges.append(challenge)
        return 401
    return 0


async def auth_request(runner: SubrequestRunner, log: ErrorLog, r: RequestState, uri: str,
                       sets: tuple[AuthRequestSet, ...],
                       challenges: list[tuple[str, str]]) -> int | None:
    """ngx_http_auth_request_handler: the subrequest, then auth_request_set, then the
    status's verdict."""
    sr, sub = await run_subrequest(runner, r, uri)
    status = sub.status
    for a in sets:
        # the subrequest shares the main request's variables: a later value sees an
        # earlier one, as in nginx
        r.vars[a.name] = a.value.render(sr)
    if status == 403:
        return 403
    if status == 401:
        www = sub.get("www-authenticate")
        if not www:
            www = [v for k, v in sr.upstream_headers if k.lower() == "www-authenticate"]
        challenges.extend(("WWW-Authenticate", v) for v in www)
        return 401
    if 200 <= status < 300:
        return 0
    log.error(f"auth request unexpected status: {status}", r.conn, r)
    return 500
