"""Bearer-token access to the HTTP server (``EDGEFACE_API_TOKEN``).

With a token set, every endpoint but ``/healthz`` wants ``Authorization: Bearer <token>``
(compared in constant time) or the page's session cookie; without one, 401. A server that
would listen beyond loopback refuses to start without a token (:func:`check_bind`): the
stream shows a camera and ``POST /detect`` spends the device's CPU, neither for anyone on
the network. A token set on a loopback server is required all the same.

The page (``GET /``) cannot send a header from ``<img src="/stream.mjpg">``, so opening
``/?token=<token>`` once sets a cookie (HttpOnly, SameSite=Strict) and redirects to ``/``,
which drops the token from the address bar. The cookie holds an HMAC of the token, not the
token: it opens this server's pages, and changing the token invalidates it. Tokens are never
logged (the server logs paths without their query).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Mapping, Optional
from urllib.parse import parse_qs

from edgeface.errors import ConfigError
from edgeface.http.router import Handler, HttpError, Request, Response

TOKEN_ENV = "EDGEFACE_API_TOKEN"
#: A token is a secret in the service's environment file; 16 characters of a generator
#: (`openssl rand -hex 16` gives 32) keep guessing out of reach of any rate of requests.
MIN_TOKEN_CHARS = 16
COOKIE = "edgeface_session"
#: A refused request's body up to this size is read and dropped, so that the client reads
#: the 401 rather than a connection reset; a larger one closes the connection.
_DISCARD_MAX = 1 << 20
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="edgeface"'}


class TokenAuth:
    """The server's token (None: no token, every request is let in)."""

    def __init__(self, token: Optional[str] = None):
        if token is not None:
            _check_token(token)
        self._token = token.encode("ascii") if token else None
        self._cookie = _session_cookie(self._token) if self._token else b""

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> TokenAuth:
        value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
        return cls(value or None)

    @property
    def required(self) -> bool:
        return self._token is not None

    def authorized(self, req: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(value.strip()):
            return True
        cookie = _cookie(req.headers.get("cookie", ""), COOKIE)
        return cookie is not None and _equal(cookie.encode("latin-1"), self._cookie)

    def matches(self, token: str) -> bool:
        """Whether ``token`` is the token, in time independent of where they differ."""
        if self._token is None:
            return False
        return _equal(token.encode("latin-1", "replace"), self._token)

    def session_cookie(self) -> str:
        """The Set-Cookie value for the page (a browser session's life)."""
        return f"{COOKIE}={self._cookie.decode()}; Path=/; HttpOnly; SameSite=Strict"

    def guard(self, handler: Handler) -> Handler:
        """``handler`` behind the token: 401 (JSON, ``WWW-Authenticate: Bearer``) without."""
        if self._token is None:
            return handler

        async def wrapper(req: Request):
            if not self.authorized(req):
                await req.discard_body(_DISCARD_MAX)  # so the client reads the 401
                raise HttpError(401, "unauthorized", dict(_UNAUTHORIZED),
                                detail=f"send Authorization: Bearer <{TOKEN_ENV}>")
            return await handler(req)

        return wrapper

    def page(self, handler: Handler, login: bytes) -> Handler:
        """The page's handler: ``?token=`` right sets the cookie and redirects to the path
        (303); a wrong one or none without the cookie gets ``login`` (HTML) with 401."""
        if self._token is None:
            return handler

        async def wrapper(req: Request):
            given = parse_qs(req.query, max_num_fields=8).get("token") if req.query else None
            if given:
                if self.matches(given[0]):
                    return Response(303, b"", "text/plain; charset=utf-8",
                                    {"Location": req.path, "Set-Cookie": self.session_cookie(),
                                     "Cache-Control": "no-store",
                                     "Referrer-Policy": "no-referrer"})
            elif self.authorized(req):
                return await handler(req)
            return Response(401, login, "text/html; charset=utf-8",
                            {**_UNAUTHORIZED, "Cache-Control": "no-store"})

        return wrapper


# hmac and hashlib only with a token: they map OpenSSL's libcrypto (see sha256_file).
def _session_cookie(token: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(token, b"edgeface page session v1", hashlib.sha256).hexdigest().encode()


def _equal(a: bytes, b: bytes) -> bool:
    """``a == b`` in time independent of where they differ."""
    import hmac

    return hmac.compare_digest(a, b)


def _check_token(token: str) -> None:
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() \
            or any(c.isspace() for c in token):
        raise ConfigError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} printable ASCII "
                          "characters without spaces (e.g. the output of `openssl rand -hex "
                          "16`)")


def _cookie(header: str, name: str) -> Optional[str]:
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is only ever reached from this machine."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        pass
    if not host:
        return False  # every interface
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, auth: TokenAuth) -> None:
    """Refuse (ConfigError, exit 2) to serve beyond loopback without a token."""
    if not auth.required and not is_loopback(host):
        raise ConfigError(f"the HTTP server would listen on {host or '*'} beyond loopback "
                          f"without a token: set {TOKEN_ENV} (at least {MIN_TOKEN_CHARS} "
                          "characters) in the service's environment file, or listen on "
                          "127.0.0.1")
