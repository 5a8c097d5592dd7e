"""The enforcement analyst's console: a Starlette app with server-rendered Jinja2 pages.

Why this stack: Starlette (the ASGI toolkit under FastAPI) and Jinja2 are already in the environment through MLflow
and Airflow, are small, well kept and typed, and render plain HTML forms that need no JavaScript, no build step and
no CDN. Jinja2 autoescapes every value; charts are inline SVG built on the server (console/charts.py).

Pages: `/` the day's queue, `/account/{id}`, `/cluster/{id}`, `/campaign/{id}`, `/model`, `/queue.csv` (the filtered queue as CSV).
Writes: `POST /decide` only, through console.decisions.record_decision (the same code path as
`distillguard review decide`).

Security:
- every page and write needs an analyst (console/auth.py); unauthenticated page requests go to /login, writes get 401;
- every POST carries the session's CSRF token, and a request whose Origin or Sec-Fetch-Site says another site sent
  it is refused (403); the session cookie is SameSite=Strict and HttpOnly;
- a Content-Security-Policy whose only script source is the console's own static files (the cluster page's graph,
  console/static/cluster_graph.js and the vendored cytoscape.js): no inline script, no other origin, no eval;
- ids are validated against the account-id contract before any read or write.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from console import charts, queries
from console.auth import AuthConfig, SessionStore
from console.decisions import LABELS, record_decision
from console.model_info import ChampionCache
from lake.config import Settings
from lake.dates import parse_date
from lake.errors import DistillguardError, InputError, MissingInputError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class ConsoleConfig:
    auth: AuthConfig
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    session_secret: str | None = None  # default: a random one per process (sessions end on restart)
    secure_cookies: bool = False  # set behind TLS


def _date_param(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return parse_date(value)
    except Exception:
        raise InputError(f"date must be YYYY-MM-DD, got {value!r}") from None


def _int_param(value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"expected a whole number, got {value!r}") from None


def create_app(settings: Settings, config: ConsoleConfig):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals.update(labels=LABELS, tiers=queries.TIERS, capabilities=queries.CAPABILITIES)
    templates.env.filters["score"] = lambda v: "-" if v is None else f"{v:.3f}"
    # tier bounds sit at 0.99 to 0.99999: three decimals would show most of them as 1.000
    templates.env.filters["bound"] = lambda v: "-" if v is None else f"{v:.6f}"
    templates.env.filters["pct"] = lambda v: "-" if v is None else f"{v:.1%}"
    templates.env.filters["count"] = lambda v: "-" if v is None else f"{v:,}"
    templates.env.filters["when"] = lambda v: "-" if v is None else v.strftime("%Y-%m-%d %H:%M UTC")

    sessions = SessionStore()  # server-side: logout and token changes end a session (console/auth.py)

    def analyst_of(request) -> str | None:
        if config.auth.mode == "trusted-header":
            value = request.headers.get(config.auth.trusted_header)
            return value if value and queries_safe_analyst(value) else None
        return sessions.analyst(request.session.get("sid"), config.auth)

    def csrf_token(request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    def cross_site(request) -> bool:
        origin = request.headers.get("origin")
        if origin and origin != "null":
            own = f"{request.url.scheme}://{request.url.netloc}"
            if origin != own:
                return True
        elif origin == "null":
            return True
        return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")

    async def checked_form(request):
        """The POSTed form, after the same-site and CSRF checks; raises PermissionError when either fails."""
        form = await request.form()
        sent = form.get("csrf_token") or ""
        if cross_site(request) or not hmac.compare_digest(str(sent), request.session.get("csrf") or "\0"):
            raise PermissionError("cross-site or CSRF-less form post refused")
        return form

    async def analyst_form(request, why: str):
        """(form, None) for a POST from a signed-in analyst that passes the same-site and CSRF checks; otherwise
        (None, the refusal: 401 without an analyst, 403 for a cross-site or CSRF-less post)."""
        if analyst_of(request) is None:
            return None, PlainTextResponse(f"sign in first: {why}", status_code=401)
        try:
            return await checked_form(request), None
        except PermissionError as exc:
            return None, PlainTextResponse(str(exc), status_code=403)

    def render(request, name: str, context: dict, status_code: int = 200):
        context = {
            "analyst": analyst_of(request),
            "csrf_token": csrf_token(request),
            "flash": request.session.pop("flash", None),
            **context,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        return response

    def error_page(request, exc: Exception):
        status = 404 if isinstance(exc, (MissingInputError, FileNotFoundError)) else 400
        return render(request, "error.html", {"message": str(exc)}, status_code=status)

    def page(handler):
        async def wrapped(request):
            if analyst_of(request) is None:
                if config.auth.mode == "trusted-header":
                    return PlainTextResponse("no authenticated user in the trusted header", status_code=401)
                return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
            try:
                return await handler(request)
            except (DistillguardError, FileNotFoundError) as exc:
                return error_page(request, exc)

        return wrapped

    async def login(request):
        if request.method == "GET":
            return render(request, "login.html", {"next": request.query_params.get("next", "/"), "error": None})
        try:
            form = await checked_form(request)
        except PermissionError as exc:
            return PlainTextResponse(str(exc), status_code=403)
        signed_in = config.auth.sign_in(str(form.get("token") or "")) if config.auth.mode == "token" else None
        next_path = _local_path(str(form.get("next") or "/"))
        if signed_in is None:
            return render(request, "login.html", {"next": next_path, "error": "unknown token"}, status_code=401)
        sessions.close(request.session.get("sid"))
        request.session.clear()
        request.session.update({"sid": sessions.open(*signed_in), "csrf": secrets.token_urlsafe(32)})
        return RedirectResponse(next_path, status_code=303)

    async def logout(request):
        try:
            await checked_form(request)
        except PermissionError as exc:
            return PlainTextResponse(str(exc), status_code=403)
        sessions.close(request.session.get("sid"))
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def _queue_args(request) -> dict:
        q = request.query_params
        return {
            "day": _date_param(q.get("date")),
            "tier": q.get("tier") or None,
            "capability": q.get("capability") or None,
            "new_only": q.get("new") == "1",
            "undecided_only": q.get("undecided") == "1",
            "page": _int_param(q.get("page"), 1),
        }

    @page
    async def queue_page(request):
        args = _queue_args(request)
        data = queries.queue(settings, **args)
        filters = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return render(
            request,
            "queue.html",
            {
                "q": data,
                "filters": filters,
                "dates": queries.score_dates(settings)[:30],
                "page_url": lambda n: "/?" + urlencode({**filters, "page": n}),
                "csv_url": "/queue.csv?" + urlencode({**filters, "date": data.status.day.isoformat()}),
            },
        )

    @page
    async def explore_page(request):
        status, rows = queries.exploration(settings, _date_param(request.query_params.get("date")))
        return render(request, "explore.html", {"status": status, "rows": rows})

    @page
    async def audit_page(request):
        status, rows = queries.tier_audit(settings, _date_param(request.query_params.get("date")))
        return render(request, "audit.html", {"status": status, "rows": rows})

    async def draw_audit(request):
        """Draw the tier audit of the form's day (models/tier_audit.py; once per day), then show it."""
        form, refused = await analyst_form(request, "drawing an audit needs an authenticated analyst")
        if refused is not None:
            return refused
        from models.tier_audit import draw_for_day

        try:
            day = _date_param(str(form.get("date") or "")) or queries.resolve_day(settings, None)
            drawn = draw_for_day(settings, day)
        except DistillguardError as exc:
            return error_page(request, exc)
        request.session["flash"] = f"The tier audit of {day} holds {len(drawn)} account(s): decide every one."
        return RedirectResponse(f"/audit?date={day.isoformat()}", status_code=303)

    @page
    async def queue_csv(request):
        import io

        from jobs.query_output import write_records

        args = _queue_args(request)
        data = queries.queue(settings, **{**args, "page": 1}, page_size=queries.MAX_EXPORT_ROWS, with_reasons=False)
        records = [
            {
                "rank": r["rank"],
                "score_date": data.status.day,
                "account_id": r["account_id"],
                "score": r["score"],
                "tier": r["tier"],
                "cluster_id": r["cluster_id"],
                "capability": r["capability"],
                "decision": (r["decision"] or {}).get("label"),
                "model_version": r["model_version"],
            }
            for r in data.rows
        ]
        out = io.StringIO()
        write_records(records, "csv", out=out)
        filename = f"distillguard-queue-{data.status.day.isoformat()}.csv"
        return Response(
            out.getvalue(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    @page
    async def account_page(request):
        data = queries.account_page(
            settings, request.path_params["account_id"], _date_param(request.query_params.get("date"))
        )
        return render(
            request,
            "account.html",
            {
                "a": data,
                "score_chart": charts.score_over_time(data["history"]),
                "capability_chart": charts.capability_bars(data["capability_mix"]),
            },
        )

    @page
    async def cluster_page(request):
        data = queries.cluster_page(
            settings, request.path_params["cluster_id"], _date_param(request.query_params.get("date"))
        )
        return render(
            request, "cluster.html", {"c": data, "capability_chart": charts.capability_bars(data["timeline"])}
        )

    champion = ChampionCache(settings, config.mlflow_ui_url)  # MLflow never blocks a page (console/model_info.py)

    @page
    async def campaign_page(request):
        from console.campaign_page import campaign_page as campaign_data

        data = campaign_data(
            settings, request.path_params["campaign_id"], _date_param(request.query_params.get("date"))
        )
        return render(request, "campaign.html", {"p": data, "volume_chart": charts.capability_bars(data["timeline"])})

    @page
    async def model_page(request):
        from starlette.concurrency import run_in_threadpool

        from console.airflow_events import status_line

        status = await run_in_threadpool(champion.status)
        context = {
            "m": status.summary,
            "read_at": status.read_at,
            "mlflow_down": status.unreachable_since,
            "airflow_status": status_line(settings),
        }
        return render(request, "model.html", context)

    async def decide(request):
        form, refused = await analyst_form(request, "decisions need an authenticated analyst")
        if refused is not None:
            return refused
        analyst = analyst_of(request)
        kind, target = form.get("target_kind"), str(form.get("target_id") or "")
        back = _local_path(str(form.get("next") or "/"))
        try:
            receipt = record_decision(
                settings,
                analyst=analyst,
                label=str(form.get("label") or ""),
                note=str(form.get("note") or ""),
                account_id=target if kind == "account" else None,
                cluster_id=target if kind == "cluster" else None,
                campaign=target if kind == "campaign" else None,
                campaign_id=str(form.get("campaign_id") or "") or None,
                score_date=_date_param(str(form.get("score_date") or "")),
            )
        except DistillguardError as exc:
            return error_page(request, exc)
        request.session["flash"] = (
            f"Recorded {receipt.label} for {len(receipt.account_ids)} account(s) (decision {receipt.decision_id}). "
            + receipt.scheduler
        )
        return RedirectResponse(back, status_code=303)

    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    from starlette.middleware.base import BaseHTTPMiddleware

    return Starlette(
        routes=[
            Route("/", queue_page),
            Route("/queue.csv", queue_csv),
            Route("/explore", explore_page),
            Route("/audit", audit_page),
            Route("/audit/draw", draw_audit, methods=["POST"]),
            Route("/account/{account_id}", account_page),
            Route("/cluster/{cluster_id}", cluster_page),
            Route("/campaign/{campaign_id}", campaign_page),
            Route("/model", model_page),
            Route("/decide", decide, methods=["POST"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=[
            Middleware(BaseHTTPMiddleware, dispatch=security_headers),
            Middleware(
                SessionMiddleware,
                secret_key=config.session_secret or secrets.token_urlsafe(32),
                session_cookie="dg_console",
                same_site="strict",
                https_only=config.secure_cookies,
                max_age=12 * 3600,
            ),
        ],
    )


def queries_safe_analyst(value: str) -> bool:
    from console.decisions import ANALYST_PATTERN

    return bool(ANALYST_PATTERN.fullmatch(value))


def _local_path(value: str) -> str:
    """Only same-site paths as redirect targets (no open redirect)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value
