"""Typed dependencies of the routes: the settings, and the admin token that guards the ops and admin routes.

The token comes as `Authorization: Bearer <FARES_ADMIN_TOKEN>` (scripts, Prometheus) or, for a browser, in the
cookie the /login form sets. Routers take the guards as dependencies (`dependencies=[Depends(require_ops)]`), so no
route checks for itself, and the OpenAPI document shows both security schemes on the routes they guard.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from fares.api.schemas import Problem
from fares.config.settings import Settings

COOKIE_NAME = "fares_admin"
CLOSED_MESSAGE = (
    "the ops pages and admin endpoints are closed: set FARES_ADMIN_TOKEN to open them with that token "
    "(or FARES_OPS_PUBLIC=true to open the ops pages, never the admin endpoints, on a private network)"
)
UNAUTHORISED_MESSAGE = "a valid admin token is required: Authorization: Bearer <FARES_ADMIN_TOKEN>, or log in at /login"
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong admin token"},
    403: {"model": Problem, "description": "No admin token is configured (FARES_ADMIN_TOKEN)"},
}

_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="FARES_ADMIN_TOKEN, as `Authorization: Bearer <token>`"
)
_cookie = APIKeyCookie(
    name=COOKIE_NAME, auto_error=False, scheme_name="AdminCookie", description="Set by the /login form, for browsers"
)


def get_settings(request: Request) -> Settings:
    """The app's Settings (create_app keeps them on app.state)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
CookieDep = Annotated[str | None, Depends(_cookie)]


class AdminRequired(HTTPException):
    """401 (no or a wrong token) or 403 (no token configured); app.py answers a browser's GET with the login form."""


def session_value(token: str) -> str:
    """What the login cookie holds: a keyed hash of the admin token, never the token itself (a new token ends it)."""
    return hmac.new(token.encode(), b"fares ops session v1", hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the admin token."""
    return secrets.compare_digest(given.encode(), token.encode())


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None, session: str | None) -> None:
    token = settings.admin_token
    if not token:
        raise AdminRequired(403, CLOSED_MESSAGE)
    if credentials is not None and token_matches(credentials.credentials, token):
        return
    if session is not None and token_matches(session, session_value(token)):
        return
    raise AdminRequired(401, UNAUTHORISED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def require_admin(settings: SettingsDep, credentials: BearerDep, session: CookieDep) -> None:
    """The admin routes (reload, promote, start a run): the admin token, always."""
    _check(settings, credentials, session)


def require_ops(settings: SettingsDep, credentials: BearerDep, session: CookieDep) -> None:
    """The ops pages (runs, logs, reports, docs sites, metrics): the admin token, unless FARES_OPS_PUBLIC is set."""
    if not settings.ops_public:
        _check(settings, credentials, session)
