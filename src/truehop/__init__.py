"""truehop: a reverse proxy that runs the reverse-proxy part of nginx's configuration language."""

__version__ = "0.1.0"
NGINX_COMPAT = "1.30.0"
