"""``/admin``: the operator dashboard's pages (login, the comparison, the policy).

Server-rendered, no script. A login trades an admin key for a session cookie
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS) kept in the database, so
any replica accepts it. Every form carries a CSRF token and every POST must come
from the dashboard's own origin.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from verifyd.adminsessions import Session, forms_match
from verifyd.api.deps import address_of, runtime_of
from verifyd.dashboard import pages, views
from verifyd.dashboard.forms import MODES, FormError, policy_body, proposed_policy
from verifyd.errors import Forbidden, RateLimited, Unauthorized
from verifyd.flows.comparison import parse_pair
from verifyd.flows.stats import StatsQuery
from verifyd.policy import changes, with_changes
from verifyd.runtime import Runtime
from verifyd.slidinglimit import Bounds

router = APIRouter(prefix="/admin", include_in_schema=False)

SESSION_COOKIE = "verifyd_admin"
#: The login form's own CSRF token (double submit): there is no session yet to derive one.
LOGIN_COOKIE = "verifyd_login"
#: Form bodies past this size are refused unread (a policy form is a few hundred bytes).
MAX_FORM_BYTES = 8192


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=pages.HEADERS)


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=pages.HEADERS)


def _secure(request: Request, rt: Runtime) -> bool:
    return request.url.scheme == "https" or rt.settings.public_base_url.startswith("https://")


def _set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/admin",
        httponly=True,
        secure=_secure(request, runtime_of(request)),
        samesite="strict",
    )


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this dashboard (Fetch metadata, then Origin)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # no Origin (an old browser, or a tool): the CSRF token decides
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    base = urlsplit(runtime_of(request).settings.public_base_url)
    own.add(f"{base.scheme}://{base.netloc}")
    return origin in own


def _session(request: Request) -> Session | None:
    return runtime_of(request).sessions.verify(request.cookies.get(SESSION_COOKIE))


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields, or ``None`` for one too large to read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _refused(message: str, status: int) -> HTMLResponse:
    return _html(pages.render("refused.html", message=message, status=status), status)


@router.get("/style.css")
def stylesheet() -> Response:
    """The dashboard's only stylesheet."""
    headers = {**pages.HEADERS, "Cache-Control": "max-age=3600"}
    return Response(pages.STYLESHEET, media_type="text/css", headers=headers)


@router.get("/login")
def login_page(request: Request) -> Response:
    """The login form; a signed-in operator goes straight to the dashboard."""
    if _session(request) is not None:
        return _see("/admin")
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = _html(pages.render("login.html", csrf=token, error=error), status)
    _set_cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key, open a session, set its cookie."""
    rt = runtime_of(request)
    form = await _form(request)
    if form is None:
        return _refused("The form is too large.", 413)
    if not _same_origin(request) or not forms_match(
        request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf") or None
    ):
        return _login_form(request, "The form expired. Please sign in again.", 403)
    try:
        token, session = rt.sessions.login(form.get("key", ""), address_of(request))
    except RateLimited as exc:
        response = _login_form(
            request, f"Too many attempts from your address; try again in {exc.retry_after} s.", 429
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized:
        return _login_form(request, "That is not a valid admin key.", 401)
    except Forbidden:
        return _login_form(
            request, "That credential is scoped to the Verify API (/v2); it cannot sign in.", 403
        )
    response = _see("/admin")
    _set_cookie(response, request, SESSION_COOKIE, token, rt.settings.admin_session_seconds)
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session everywhere and forget the cookie."""
    session = _session(request)
    form = await _form(request) or {}
    if session is not None:
        if not _same_origin(request) or not forms_match(session.csrf, form.get("csrf")):
            return _refused("The form expired; reload the page and try again.", 403)
        runtime_of(request).sessions.logout(request.cookies[SESSION_COOKIE])
    response = _see("/admin/login")
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


@router.get("")
def overview(request: Request) -> Response:
    """The comparison: a policy version's arms (the current one by default) or two sides."""
    session = _session(request)
    if session is None:
        return _see("/admin/login")
    rt = runtime_of(request)
    current = rt.policies.current()
    raw_version = request.query_params.get("version", "")
    raw_compare = request.query_params.get("compare", "").strip()
    error = None
    version = current.version
    if raw_version:
        if raw_version.isdigit() and raw_version.isascii() and 0 < int(raw_version) < 2**31:
            version = int(raw_version)
        else:
            error = f"{raw_version[:40]!r} is not a policy version."
    pair = None
    if raw_compare:
        try:
            pair = parse_pair(raw_compare)
        except ValueError as exc:
            error = f"compare: {exc}"
    report = rt.stats.report(StatsQuery(None, None, None if pair else version, pair))
    currency = report["currency"]
    known = [d["version"] for d in _documents(rt)]
    shown = next((v for v in report["versions"] if v["policy_version"] == version), None)
    values: dict[str, Any] = {
        "session": session,
        "current": current.document(Bounds.of(rt.settings)),
        "versions": known,
        "version": version,
        "section": views.version_view(shown, currency) if shown and not pair else None,
        "compared": views.compare_view(report["compare"], currency) if pair else None,
        "compare_raw": raw_compare,
        "services": report["verify_services"],
        "currency": currency,
        "generated_at": report["generated_at"],
        "error": error,
    }
    return _html(pages.render("overview.html", **values), 422 if error else 200)


def _documents(rt: Runtime, limit: int = 200) -> list[dict[str, Any]]:
    rt.policies.current()  # a fresh database gets its first version
    bounds = Bounds.of(rt.settings)
    return [p.document(bounds) for p in rt.policies.history(limit=limit)]


@router.get("/policy")
def policy_page(request: Request) -> Response:
    """The current policy, the form that changes it, and its history."""
    session = _session(request)
    if session is None:
        return _see("/admin/login")
    rt = runtime_of(request)
    changed = request.query_params.get("changed", "")
    return _policy_form(rt, session, changed=changed if changed.isdigit() else None)


def _policy_form(
    rt: Runtime,
    session: Session,
    *,
    form: dict[str, str] | None = None,
    error: FormError | None = None,
    changed: str | None = None,
) -> Response:
    documents = _documents(rt)
    current = documents[0]
    weights = current["weights"] or {"phone": 50, "email": 50}
    values = {
        "mode": current["mode"],
        "weight_phone": str(weights["phone"]),
        "weight_email": str(weights["email"]),
        "prefer": current["prefer"],
        "experiment": current["experiment"] or "",
        **(form or {}),
    }
    page = pages.render(
        "policy.html",
        session=session,
        current=current,
        history=with_changes(documents),
        modes=MODES,
        form=values,
        error=error,
        changed=changed,
    )
    return _html(page, 422 if error else 200)


@router.post("/policy")
async def change_policy(request: Request) -> Response:
    """Preview a policy change (what it changes), then, confirmed, make it."""
    session = _session(request)
    if session is None:
        return _see("/admin/login")
    rt = runtime_of(request)
    form = await _form(request)
    if form is None:
        return _refused("The form is too large.", 413)
    if not _same_origin(request) or not forms_match(session.csrf, form.get("csrf")):
        return _refused("The form expired; reload the page and try again.", 403)
    current = rt.policies.current().document(Bounds.of(rt.settings))
    try:
        body = policy_body(form, current)
        proposed = proposed_policy(rt.settings, body)
    except FormError as exc:
        return _policy_form(rt, session, form=form, error=exc)
    if form.get("confirm") != "yes":
        preview = proposed.document(Bounds.of(rt.settings))
        page = pages.render(
            "confirm.html",
            session=session,
            current=current,
            diff=changes(current, preview),
            form=form,
        )
        return _html(page)
    policy, created = rt.policies.change(proposed, session.actor)
    return _see(f"/admin/policy?changed={policy.version}" if created else "/admin/policy")
