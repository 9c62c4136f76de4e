"""nginx's proxy cache (ngx_http_file_cache.c and the cache parts of ngx_http_upstream.c).

Three layers, each importing only the ones before it:

    policy   pure decisions, no I/O: the key's md5 and the entry's path (`levels`), how long
             an upstream response stays fresh (X-Accel-Expires, Cache-Control, Expires,
             proxy_cache_valid), whether it may be stored (Set-Cookie, Vary: *), the Vary
             variant, which failures a stale entry answers, a cached response's conditional
             and range answer
    store    the entries on disk (one file each: a fixed header, the key, the variant, the
             upstream's status line and fields, then the body), written to a temp file and
             renamed; the lock files of proxy_cache_lock and of an entry being updated; each
             worker's bounded in-memory index; the manager and loader the master runs
    handler  one request: lookup, HIT served like a static file (sendfile from the body's
             offset), MISS/EXPIRED/BYPASS sent upstream with the body teed into a new entry,
             STALE/UPDATING/REVALIDATED; $upstream_cache_status

The filesystem is the one index all workers share: an entry exists when its file does.
"""
