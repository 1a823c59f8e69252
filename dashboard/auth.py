"""The bearer-token rule of an API bound off loopback: every path but the open ones (``/healthz``
and the signed webhook) needs ``Authorization: Bearer <SELFHEAL_API_TOKEN>``. A browser opens
the page once with ``?token=...``: the token moves to an HttpOnly cookie (sent by the page's
event stream too) and the address loses it."""

import hmac
import ipaddress
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "selfheal_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerToken:
    def __init__(self, app: ASGIApp, token: str, open_paths: set[str]) -> None:
        self.app, self.token, self.open_paths = app, token.encode(), open_paths

    def _valid(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(supplied.encode(), self.token)  # type: ignore[union-attr]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        cookie = SimpleCookie(headers.get("cookie", ""))
        if (scheme.lower() == "bearer" and self._valid(credentials.strip())) or (
            COOKIE in cookie and self._valid(cookie[COOKIE].value)
        ):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        supplied = next((v for k, v in query if k == "token"), None)
        response: Response
        if scope["method"] == "GET" and self._valid(supplied):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, supplied or "", httponly=True, samesite="strict")
        else:
            response = JSONResponse(
                {"error": "unauthorized: a bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="selfheal"'},
            )
        await response(scope, receive, send)
