"""A one-file Django site as a deployment guide configures it behind a TLS proxy:
SECURE_SSL_REDIRECT (plain HTTP is redirected to HTTPS) and SECURE_PROXY_SSL_HEADER (the
proxy's X-Forwarded-Proto says whether the request was HTTPS), USE_X_FORWARDED_HOST.
Run: python django_site.py PORT. Answers JSON with what Django concluded."""

from __future__ import annotations

import sys

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="truehop-test-" + "x" * 40,
    ALLOWED_HOSTS=["localhost", "127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                "django.middleware.common.CommonMiddleware"],
    SECURE_SSL_REDIRECT=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    USE_X_FORWARDED_HOST=True,
)

from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import re_path  # noqa: E402


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "framework": "django",
        "is_secure": request.is_secure(),
        "scheme": request.scheme,
        "host": request.get_host(),
        "absolute_uri": request.build_absolute_uri(),
        # Django has no setting that trusts X-Forwarded-For: REMOTE_ADDR is the proxy, and
        # the client is the X-Real-IP the proxy sends
        "remote_addr": request.META.get("REMOTE_ADDR"),
        "real_ip": request.META.get("HTTP_X_REAL_IP"),
    })


urlpatterns = [re_path(r"^.*$", whoami)]

if __name__ == "__main__":
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import run_simple
    run_simple("127.0.0.1", int(sys.argv[1]), get_wsgi_application(), threaded=True)
