"""The console's web application: Flask with server-rendered Jinja pages, and its safeguards.

Why Flask: a small, well-kept framework whose Jinja templates, signed session
cookie and test client cover what the console needs, with no front-end build
step and nothing vendored; waitress (pure Python, production-grade, no C build)
serves it. The pages are plain HTML and one small stylesheet, with no script.

Safeguards, on every request:

- a session is a signed cookie (HttpOnly, SameSite=Lax, Secure behind a TLS
  proxy) holding the person's name and role, and a CSRF token;
- every state-changing request (anything but GET and HEAD) must carry that
  token, and a browser's ``Origin`` header, when sent, must be this site;
- pages need a logged-in person; actions need the role (see :mod:`.auth`);
- responses forbid framing, sniffing and scripts (Content-Security-Policy) and
  are not cached.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import i18n
from .auth import User
from .services import Console

F = TypeVar("F", bound=Callable[..., Any])

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_PUBLIC = {"console.login", "console.language", "static"}
_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def console() -> Console:
    """The console's services, from the app handling this request."""
    found: Console = g.console
    return found


def current_user() -> User | None:
    data = session.get("user")
    if not isinstance(data, dict):
        return None
    return User(data["name"], data["role"], data["via"])


def language() -> str:
    chosen = session.get("lang")
    return chosen if chosen in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


def _(text: str, **values: Any) -> str:
    """``text`` in the person's language, with ``%(name)s`` values filled in."""
    translated = i18n.translations(language()).gettext(text)
    return translated % values if values else translated


def requires(role: str, action: str) -> Callable[[F], F]:
    """Refuse the view (403, saying who may) unless the person's role includes ``role``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None or not user.may(role):
                return refuse(
                    403,
                    _(
                        "Your role (%(role)s) may not %(action)s. Hint: ask an administrator "
                        "for the %(needed)s role.",
                        role=_(user.role) if user else "-",
                        action=_(action),
                        needed=_(role),
                    ),
                )
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def refuse(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def safe_next(target: str | None) -> str:
    """A redirect target on this site only (a path), never another host."""
    if not target:
        return url_for("console.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("console.overview")
    return target


_COUNT_ORDER = ("create", "update", "disable", "unchanged", "rejected", "applied", "failed")


def ordered(counts: dict[str, int]) -> list[tuple[str, int]]:
    """A run's counts in the order a plan reads (creates, updates, disables, ...)."""
    rank = {name: i for i, name in enumerate(_COUNT_ORDER)}
    return sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def dead_letters_url(**args: Any) -> str:
    """The dead letters page with a filter (``endpoint`` is a filter here, not url_for's)."""
    query = urlencode({k: v for k, v in args.items() if v not in (None, "")})
    return url_for("console.dead_letters") + (f"?{query}" if query else "")


def create_app(services: Console) -> Flask:
    """The Flask application serving ``services``."""
    from .views import pages

    app = Flask(__name__)
    settings = services.settings
    app.config.update(
        SECRET_KEY=services.secret_key,
        SESSION_COOKIE_NAME="lienthong_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.behind_proxy,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=86400,
    )
    if settings.behind_proxy:
        # TLS ends at the reverse proxy: trust its X-Forwarded-For/-Proto/-Host (one hop).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda text: i18n.translations(language()).gettext(text),
        lambda one, many, n: i18n.translations(language()).ngettext(one, many, n),
        newstyle=True,
    )
    app.jinja_env.filters.update(
        when=i18n.when,
        duration=i18n.duration,
        number=lambda value: i18n.number(value, language()),
        ordered=ordered,
    )
    app.jinja_env.globals.update(
        csrf_token=csrf_token,
        current_user=current_user,
        language=language,
        dead_letters_url=dead_letters_url,
    )
    app.register_blueprint(pages)

    @app.before_request
    def guard() -> Any:
        g.console = services
        if request.method not in _SAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.host:
                return refuse(403, _("This form came from another site and was refused."))
            sent = request.form.get("csrf", "")
            expected = session.get("csrf")
            if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
                return refuse(
                    403,
                    _(
                        "The form has expired or did not come from the console. "
                        "Hint: reload the page and try again."
                    ),
                )
        if request.endpoint not in _PUBLIC and current_user() is None:
            if request.method not in _SAFE_METHODS:
                abort(403)
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = _POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        messages = {
            403: _("You may not do this."),
            404: _("There is no such page or record."),
            413: _("The form is too large."),
        }
        code = exc.code or 500
        return refuse(code, messages.get(code, exc.description or ""))

    return app
