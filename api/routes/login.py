"""The browser's way past the admin token: GET/POST /login sets an HttpOnly, SameSite=Strict cookie and goes back."""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fares.api.deps import CLOSED_MESSAGE, COOKIE_NAME, SettingsDep, session_value, token_matches

router = APIRouter(tags=["login"], include_in_schema=False)

DEFAULT_NEXT = "/runs"
MAX_FORM_BYTES = 8192


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (never `//host` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    return target


def login_page(target: str, message: str, status_code: int, form: bool = True) -> HTMLResponse:
    """The login form (or, with no token configured, only the sentence saying how to set one)."""
    body = (
        f'<form method="post" action="/login"><input type="hidden" name="next" value="{escape(target)}">'
        '<label for="token">Admin token</label> <input id="token" name="token" type="password" '
        'autocomplete="current-password" required autofocus> <button type="submit">Log in</button></form>'
        if form
        else ""
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>fares: log in</title>'
        '<link rel="stylesheet" href="/static/runs.css"></head><body><main><h1>Operators only</h1>'
        f'<p id="login-message">{escape(message)}</p>{body}</main></body></html>'
    )
    return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/login")
def get_login(settings: SettingsDep, back: Annotated[str | None, Query(alias="next")] = None) -> HTMLResponse:
    """The form; it posts the token and the page to go back to."""
    if not settings.admin_token:
        return login_page(safe_next(back), CLOSED_MESSAGE, 403, form=False)
    return login_page(safe_next(back), "The runs, logs and docs need the admin token (FARES_ADMIN_TOKEN).", 200)


@router.post("/login")
async def post_login(request: Request, settings: SettingsDep) -> Response:
    """Right token: the session cookie, then 303 back to `next`; wrong: 401 and the form again."""
    raw = await request.body()
    fields = parse_qs(raw[:MAX_FORM_BYTES].decode("utf-8", errors="replace"))
    target = safe_next((fields.get("next") or [""])[0])
    token = settings.admin_token
    if not token:
        return login_page(target, CLOSED_MESSAGE, 403, form=False)
    if not token_matches((fields.get("token") or [""])[0], token):
        return login_page(target, "That is not the admin token.", 401)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        COOKIE_NAME,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.get("/logout")
def get_logout() -> Response:
    """Forget the session cookie; back to the quote page."""
    answer = RedirectResponse("/", status_code=303)
    answer.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return answer
