"""The console's pages: overview, dead letters, trace, documents, syncs, mappings, config, login.

Each view reads through :class:`~.queries.Queries` and changes things only
through :class:`~.actions.Actions`; both are reached with ``console()``.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from ..adapter import Secret
from ..errors import LienthongError
from ..lease import LeaseHeld
from ..mapping import format_results, run_cases
from ..sync import GuardRefused, PlanChanged
from ..xml import parse, serialize
from .app import _, console, csrf_token, current_user, language, refuse, requires, safe_next
from .auth import LoginUnavailable, valid_name
from .i18n import LANGUAGES
from .queries import STAGES, DeadLetterFilter

log = logging.getLogger(__name__)

pages = Blueprint("console", __name__)

#: Shown at most, in characters, of a body on a page; the rest is a download away.
SHOWN_BODY = 200_000
#: Dead letters an action on a selection or a filter may touch at once.
MAX_BATCH = 10_000


def N_(text: str) -> str:  # noqa: N802 (gettext's name for "translate later")
    """Marks a word that is translated where it is shown (roles, states, actions)."""
    return text


WORDS = (
    N_("viewer"),
    N_("operator"),
    N_("admin"),
    N_("ok"),
    N_("retrying"),
    N_("lagging"),
    N_("failing"),
    N_("closed"),
    N_("open"),
    N_("half-open"),
    N_("pending"),
    N_("delivered"),
    N_("dead"),
    N_("routed"),
    N_("parked"),
    N_("create"),
    N_("update"),
    N_("disable"),
    N_("reject"),
    N_("planned"),
    N_("applied"),
    N_("failed"),
    N_("rejected"),
    N_("not-applied"),
    N_("refused"),
    N_("interrupted"),
    N_("error"),
    N_("running"),
    N_("accepted"),
    N_("dead-lettered"),
    N_("replayed"),
    N_("skipped"),
    N_("retry"),
    N_("attempt"),
    N_("unchanged"),
    N_("active"),
    N_("drift"),
    N_("not_applied"),
    N_("transient"),
    N_("accept"),
    N_("route"),
    N_("access"),
    N_("deliver"),
    N_("replay or purge dead letters"),
    N_("run syncs"),
    N_("approve sync plans"),
    N_("force past the disable guard"),
    N_("see the configuration"),
)


# --- login, logout, language -------------------------------------------------


@pages.route("/login", methods=["GET", "POST"])
def login() -> Any:
    services = console()
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(target)
        return render_template("login.html", next=target, methods=services.login_methods)
    name = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    address = request.remote_addr or "?"
    wait = services.limiter.wait(name, address)
    if wait > 0:
        seconds = math.ceil(wait)
        log.warning("console login of %r from %s refused: too many failures", name, address)
        message = _("Too many wrong passwords. Try again in %(seconds)d seconds.", seconds=seconds)
        return _login_page(message, name, target, 429, {"Retry-After": str(seconds)})
    try:
        user = services.login(name, password) if valid_name(name) else None
    except LoginUnavailable:
        return _login_page(
            _("The directory cannot be reached now. Try again in a few minutes."),
            name,
            target,
            503,
        )
    except PermissionError:
        return _login_page(
            _("Your account has no role in the console. Ask an administrator to add you."),
            name,
            target,
            403,
        )
    if user is None:
        services.limiter.failed(name, address)
        log.warning("console login of %r from %s failed", name, address)
        return _login_page(_("Wrong user name or password."), name, target, 401)
    services.limiter.succeeded(name, address)
    chosen = session.get("lang")
    session.clear()  # a new session on login: nothing from before it is trusted
    session.permanent = True
    session["user"] = {"name": user.name, "role": user.role, "via": user.via}
    if chosen:
        session["lang"] = chosen
    csrf_token()
    log.info("console login of %s (%s, %s) from %s", user.name, user.role, user.via, address)
    return redirect(target)


def _login_page(
    message: str, name: str, target: str, status: int, headers: dict[str, str] | None = None
) -> Any:
    page = render_template(
        "login.html",
        error=message,
        username=name,
        next=target,
        methods=console().login_methods,
    )
    return page, status, headers or {}


@pages.route("/logout", methods=["POST"])
def logout() -> Any:
    chosen = session.get("lang")
    session.clear()
    if chosen:
        session["lang"] = chosen
    return redirect(url_for("console.login"))


@pages.route("/language", methods=["POST"], endpoint="language")
def language_choice() -> Any:
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(safe_next(request.form.get("next")))


# --- overview ---------------------------------------------------------------


@pages.route("/")
def overview() -> Any:
    q = console().queries
    return render_template(
        "overview.html",
        counts=q.counts(),
        endpoints=q.endpoints(),
        jobs=q.jobs(),
        audit=console().audit,
    )


@pages.route("/audit/verify", methods=["POST"])
def audit_verify() -> Any:
    console().audit.check_now()
    return redirect(url_for("console.overview"))


# --- dead letters -------------------------------------------------------------


@pages.route("/dead-letters")
def dead_letters() -> Any:
    q = console().queries
    chosen = DeadLetterFilter.from_args(request.args)
    before = request.args.get("before", type=int)
    rows, more = q.dead_letters(chosen, before=before)
    count, _newest = q.count_dead_letters(chosen)
    return render_template(
        "dead_letters.html",
        rows=rows,
        more=more,
        count=count,
        chosen=chosen,
        stages=STAGES,
        endpoints=q.endpoints_with_dead_letters(),
    )


@pages.route("/dead-letters/<int:dead_id>")
def dead_letter(dead_id: int) -> Any:
    found = console().queries.dead_letter(dead_id)
    if found is None:
        return refuse(404, _("There is no dead letter #%(id)d.", id=dead_id))
    return render_template(
        "dead_letter.html",
        dead=found,
        body=shown_body(found["body"]),
        sent=shown_body(found["delivery_body"]) if found.get("delivery_body") else None,
    )


@pages.route("/dead-letters/<int:dead_id>/body")
def dead_letter_body(dead_id: int) -> Any:
    found = console().queries.dead_letter(dead_id)
    if found is None:
        return refuse(404, _("There is no dead letter #%(id)d.", id=dead_id))
    part = "delivery_body" if request.args.get("part") == "sent" else "body"
    body = found.get(part) or b""
    return Response(
        body,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename=dead-letter-{dead_id}.bin"},
    )


def _chosen_ids(form: Any, scope: str) -> tuple[list[int], DeadLetterFilter, int | None]:
    """The waiting dead letters a form means: ticked ids, or a filter up to the newest counted."""
    q = console().queries
    chosen = DeadLetterFilter.from_args(form)
    if scope == "filter":
        upto = form.get("upto", type=int)
        if upto is None:
            _count, upto = q.count_dead_letters(chosen)
        return (q.dead_letter_ids(chosen, upto) if upto else []), chosen, upto
    ids = sorted({int(i) for i in form.getlist("ids") if str(i).isdigit()})[: MAX_BATCH + 1]
    return q.waiting_among(ids), chosen, None


@pages.route("/dead-letters/confirm", methods=["POST"])
@requires("operator", "replay or purge dead letters")
def dead_letters_confirm() -> Any:
    action, _sep, scope = (request.form.get("choice") or "").partition(":")
    if action not in ("replay", "purge") or scope not in ("selected", "filter"):
        return refuse(400, _("Choose replay or purge."))
    ids, chosen, upto = _chosen_ids(request.form, scope)
    if not ids:
        return refuse(400, _("No waiting dead letter was chosen. Hint: tick some, or filter."))
    if len(ids) > MAX_BATCH:
        return refuse(
            400,
            _(
                "%(count)s dead letters match; at most %(max)s at once. Hint: narrow the filter.",
                count=len(ids),
                max=MAX_BATCH,
            ),
        )
    return render_template(
        "confirm.html",
        action=action,
        ids=ids if scope == "selected" else [],
        count=len(ids),
        chosen=chosen,
        scope=scope,
        upto=upto,
    )


@pages.route("/dead-letters/act", methods=["POST"])
@requires("operator", "replay or purge dead letters")
def dead_letters_act() -> Any:
    action = request.form.get("action")
    scope = request.form.get("scope", "selected")
    if action not in ("replay", "purge") or request.form.get("confirmed") != "yes":
        return refuse(400, _("Nothing was done: the action was not confirmed."))
    ids, _chosen, _upto = _chosen_ids(request.form, scope)
    if not ids or len(ids) > MAX_BATCH:
        return refuse(400, _("No waiting dead letter was chosen. Hint: tick some, or filter."))
    user = current_user()
    assert user is not None
    actions = console().actions
    if action == "purge":
        purged = actions.purge(ids, user)
        return render_template("done.html", action=action, purged=purged, outcomes=[])
    outcomes = actions.replay(ids, user)
    return render_template("done.html", action=action, outcomes=outcomes, purged=0)


# --- trace ------------------------------------------------------------------


@pages.route("/trace")
def trace_search() -> Any:
    wanted = (request.args.get("id") or "").strip()
    if wanted:
        return redirect(url_for("console.trace", message_id=wanted))
    return render_template("trace_search.html")


@pages.route("/trace/<message_id>")
def trace(message_id: str) -> Any:
    found = console().queries.trace(message_id[:64])
    if found is None:
        return refuse(
            404,
            _("No single message has the id %(id)s. Hint: use more of the id.", id=message_id),
        )
    timeline = [
        {
            "at": hop["at"],
            "event": hop["event"],
            "endpoint": hop["endpoint"],
            "detail": hop["detail"],
        }
        for hop in found["hops"]
    ]
    for delivery in found["deliveries"]:
        for attempt in delivery["attempt_log"]:
            timeline.append(
                {
                    "at": attempt["at"],
                    "event": "attempt",
                    "number": attempt["number"],
                    "endpoint": delivery["endpoint"],
                    "detail": f"{attempt['outcome']}"
                    + (f": {attempt['error']}" if attempt["error"] else ""),
                }
            )
    timeline.sort(key=lambda e: e["at"])
    return render_template(
        "trace.html",
        message=found,
        timeline=timeline,
        mappings=_mappings_by_route(),
    )


def _mappings_by_route() -> dict[tuple[str, str], str]:
    """(route, endpoint) → mapping, for the targets with a fixed endpoint."""
    found = {}
    for route in console().config.routes:
        for target in route.targets:
            if target.endpoint and target.mapping:
                found[(route.name, target.endpoint)] = target.mapping
    return found


# --- documents -----------------------------------------------------------------


@pages.route("/documents")
def documents() -> Any:
    q = console().queries
    wanted = (request.args.get("id") or "").strip()[:300]
    history = q.document_history(wanted) if wanted else None
    return render_template(
        "documents.html",
        wanted=wanted,
        history=history,
        recent=[] if wanted else q.recent_documents(),
    )


# --- syncs ------------------------------------------------------------------------


@pages.route("/syncs")
def syncs() -> Any:
    q = console().queries
    jobs = [j for j in q.jobs() if console().config.jobs[j.name].sync is not None]
    return render_template("syncs.html", jobs=jobs, runs=q.sync_runs())


@pages.route("/syncs/<job>/run", methods=["POST"])
@requires("operator", "run syncs")
def sync_run(job: str) -> Any:
    user = current_user()
    assert user is not None
    dry_run = request.form.get("mode") != "apply"
    force = request.form.get("force") == "yes"
    if force and not user.may("admin"):
        return refuse(403, _("Only an admin may force past the disable guard."))
    if not dry_run and request.form.get("confirmed") != "yes":
        return render_template("sync_confirm.html", job=job, force=force)
    try:
        report = console().actions.run_sync(job, user, dry_run=dry_run, force=force)
    except (LeaseHeld, GuardRefused) as exc:
        return refuse(409, str(exc))
    except LienthongError as exc:
        return refuse(400, str(exc))
    return redirect(url_for("console.sync_report", run_id=report.run_id))


@pages.route("/syncs/runs/<int:run_id>")
def sync_report(run_id: int) -> Any:
    q = console().queries
    run = q.sync_run(run_id)
    if run is None:
        return refuse(404, _("There is no sync run %(id)d.", id=run_id))
    action = request.args.get("action") or None
    offset = max(0, request.args.get("offset", 0, type=int))
    items, by_action = q.sync_items(run_id, action=action, offset=offset, limit=200)
    approvable = (
        run.dry_run
        and run.outcome in ("ok", "failed", "refused")
        and any(by_action.get(a) for a in ("create", "update", "disable"))
    )
    return render_template(
        "sync_report.html",
        run=run,
        items=items,
        by_action=by_action,
        action=action,
        offset=offset,
        approvable=approvable,
        job_known=run.job in console().config.jobs,
    )


@pages.route("/syncs/runs/<int:run_id>/approve", methods=["POST"])
@requires("operator", "approve sync plans")
def sync_approve(run_id: int) -> Any:
    user = current_user()
    assert user is not None
    force = request.form.get("force") == "yes"
    if force and not user.may("admin"):
        return refuse(403, _("Only an admin may force past the disable guard."))
    try:
        report = console().actions.approve(run_id, user, force=force)
    except PlanChanged as exc:
        page = render_template("sync_drift.html", refusal=exc, plan_run=run_id)
        return page, 409
    except (LeaseHeld, GuardRefused) as exc:
        return refuse(409, str(exc))
    except LienthongError as exc:
        return refuse(400, str(exc))
    return redirect(url_for("console.sync_report", run_id=report.run_id))


# --- mappings -----------------------------------------------------------------


@pages.route("/mappings")
def mappings() -> Any:
    library = console().mappings
    names = library.names()
    results = None
    if request.args.get("test"):
        wanted = request.args.get("test", "")
        try:
            path = None if wanted == "*" else library.get(wanted).path
            results = run_cases(library, path)
        except LienthongError as exc:
            return refuse(400, str(exc))
    return render_template(
        "mappings.html",
        names=names,
        results=results,
        summary=format_results(results).splitlines()[-1] if results is not None else "",
        tested=request.args.get("test", ""),
    )


@pages.route("/mappings/try")
def mapping_try() -> Any:
    library = console().mappings
    name = request.args.get("mapping", "")
    message_id = (request.args.get("message") or "").strip()[:64]
    params = _params(request.args.get("params", ""))
    output = error = None
    if name and message_id:
        message = console().queries.message(message_id)
        if message is None:
            error = _("There is no message %(id)s.", id=message_id)
        else:
            try:
                output = shown_body(library.get(name).apply_bytes(message.body, params))
            except LienthongError as exc:
                error = str(exc)
    return render_template(
        "mapping_try.html",
        names=library.names(),
        name=name,
        message_id=message_id,
        params=request.args.get("params", ""),
        output=output,
        error=error,
    )


def _params(text: str) -> dict[str, str]:
    """``key=value`` lines (or ``;``-separated), as ``mapping apply -p`` takes them."""
    found = {}
    for item in text.replace(";", "\n").splitlines():
        key, sep, value = item.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


# --- configuration (admin) ------------------------------------------------------------


@pages.route("/config")
@requires("admin", "see the configuration")
def configuration() -> Any:
    config = console().config
    endpoints = [
        (
            name,
            ep.adapter,
            {k: ("••••••" if isinstance(v, Secret) else v) for k, v in sorted(ep.settings.items())},
        )
        for name, ep in config.endpoints.items()
    ]
    return render_template(
        "config.html",
        endpoints=endpoints,
        routes=config.routes,
        store="SQLite" if config.bus.store.reveal().startswith("sqlite") else "PostgreSQL",
        broker="embedded" if config.bus.embedded else "RabbitMQ",
        path=str(config.path or ""),
    )


# --- helpers for the templates --------------------------------------------------------


def shown_body(body: bytes | None) -> dict[str, Any]:
    """A body as a page shows it: pretty XML or JSON when it parses, else its text; capped."""
    data = body or b""
    text: str
    kind = "text"
    stripped = data.lstrip()
    try:
        if stripped[:1] in (b"{", b"["):
            text = json.dumps(json.loads(data), ensure_ascii=False, indent=2)
            kind = "json"
        elif stripped[:1] == b"<":
            from lxml import etree

            tree = parse(data, max_bytes=SHOWN_BODY * 10)
            etree.indent(tree, space="  ")
            text = serialize(tree).decode("utf-8", "replace")
            kind = "xml"
        else:
            text = data.decode("utf-8", "replace")
    except (ValueError, LienthongError):
        text = data.decode("utf-8", "replace")
        kind = "text"
    return {
        "kind": kind,
        "text": text[:SHOWN_BODY],
        "cut": len(text) > SHOWN_BODY,
        "size": len(data),
    }


@pages.app_context_processor
def shared() -> dict[str, Any]:
    return {"lang": language(), "nav": request.endpoint or ""}
