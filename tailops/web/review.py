"""The review page (``/review``): read a plan the way an ops person reviews a change, then decide.

Why: approving is the one human check between "an agent wants this change" and
"Ansible changes the hosts" (DESIGN.md, the change lifecycle, step 3). Reading
per-host, per-task diffs in a terminal works; a page that shows them side by side
with the plan's facts (playbook version and hash, parameters, who asked, what
check mode could not simulate) makes the review the easy path. The page is a
thin door: every rule — scope ``changes:approve``, never the requester,
single-use approvals that expire — lives in :mod:`tailops.changes.approvals`,
exactly as for the ``approve_plan`` tool and ``tailops plans approve``. Which scope each
page and form needs is its row in the policy table (:data:`tailops.auth.policy.REVIEW`);
every route is named after that row (``review:plan``, ``review:approve`` …), and the
forms are audited under the same name.

Routes (all under ``/review``, served by the HTTP transport only):

- ``GET /review/login`` and ``POST /review/login``: paste a token; it is verified
  like any bearer token and kept in the session cookie (:mod:`tailops.web.session`).
- ``POST /review/logout``.
- ``GET /review``: open plans (pending, approved) and the most recent others.
- ``GET /review/plans/{id}``: one plan, whole: hosts, tasks, diffs, approvals, runs.
- ``GET /review/runs/{id}``: one run of a plan: status, planned vs actual per host,
  mismatches and the latest events; while it runs the page reloads itself every few
  seconds (a ``<meta>`` refresh: the page has no scripts), so whoever approved a
  change can watch it land.
- ``GET /review/drift``: the latest drift result per check and host (drifted first).
- ``GET /review/hosts/{host}``: one host's history — every plan that targeted it, what it
  predicted there, who asked and decided, and what the runs did there (linked from the
  hosts of plans and runs).
- ``POST /review/runs/{id}/cancel``: stop a running run; needs the playbook's scope
  (what applying it needed), like the ``cancel_run`` tool.
- ``POST /review/plans/{id}/approve`` (comment) and ``/deny`` (reason).

Authentication happens in :class:`tailops.server.middleware.BearerAuth` (the
cookie stands in for the ``Authorization`` header on these paths); without a
valid token a page redirects to the login form. Every POST needs an allowed
``Origin`` and the CSRF field unless the request carried an ``Authorization``
header (which a browser never adds on its own). Decisions are audited (fsynced)
with their true outcome. Pages are rendered by Jinja2 with autoescaping and
served with a strict Content-Security-Policy (no scripts at all) that also
forbids framing.

What it must never do: decide anything the approvals module would refuse,
show a token, or answer a POST that came from another site.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from tailops import __version__
from tailops.auth import policy
from tailops.auth.tokens import TokenVerifier
from tailops.changes import approvals, drift, history, plans
from tailops.changes.plans import Plan
from tailops.errors import (
    AuditError,
    AuthError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TailopsError,
    http_status,
    is_refusal,
)
from tailops.principal import Principal
from tailops.runtime import Runtime
from tailops.web.session import (
    ACCESS_TOKEN_KEY,
    AUTH_VIA_KEY,
    COOKIE,
    LOGIN_PATH,
    PREFIX,
    clear_cookie,
    cookie_secure,
    csrf_ok,
    csrf_token,
    session_cookie,
)

__all__ = ["build_review"]

log = logging.getLogger("tailops.web")

_MAX_FORM_BYTES = 64 * 1024
RUN_EVENTS_SHOWN = 200  # the latest events of a run on its page
RUN_REFRESH_S = 3  # a running run's page reloads itself this often
_DONE = {
    "approved": "Approved. The plan can now be applied once (apply_plan or `tailops plans apply`).",
    "denied": "Denied. This plan can never be applied.",
    "logged-out": "Signed out.",
    "cancel-requested": "Cancel requested: Ansible is stopped within about a second, and the run ends canceled.",
}
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own forms.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@functools.cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("tailops.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.cache
def _stylesheet() -> bytes:
    return resources.files("tailops.web").joinpath("static/review.css").read_bytes()


def _diff_lines(diff: str | None) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff: additions, deletions, hunk headers, context."""
    out: list[tuple[str, str]] = []
    for line in (diff or "").splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


class _Page:
    """Everything one request needs: runtime, who is asking, and how to answer."""

    def __init__(self, rt: Runtime, verifier: TokenVerifier | None, request: Request) -> None:
        self.rt = rt
        self.verifier = verifier
        self.request = request
        access = request.scope.get(ACCESS_TOKEN_KEY)
        self.peer = rt.principals.peer(request.scope)
        self.signed_in = access is not None or verifier is None
        # The bearer header itself authenticated this request (not the session cookie).
        self.header_auth = access is not None and request.scope.get(AUTH_VIA_KEY) == "header"
        self.principal: Principal = rt.principals.for_http(self.peer, request.headers, access)
        self.session_token: str | None = request.cookies.get(COOKIE) if access is not None else None
        self.secure = cookie_secure(request.url.scheme, rt.config.server.public_url)

    def allows(self, action: str) -> bool:
        """The caller holds the scope the policy table asks for ``action`` (a ``review:`` row)."""
        return policy.allows(self.principal, "review", action)

    async def refuse_view(self, action: str, reading: str) -> HTMLResponse | None:
        """A 403 page when the caller may not see ``action``'s page, else None.

        The refusal is audited as denied like every other refusal (a tool call, a form, a
        failed authentication): a token probing pages it may not read leaves a trace."""
        if self.allows(action):
            return None
        scope = policy.rule("review", action).scope
        message = f"Reading {reading} needs the {scope} scope."
        # Path parameters come from the URL as typed: capped, like every other audited argument.
        args = {k: str(v)[:200] for k, v in self.request.path_params.items()}
        await self.refused(action, args, message, path=self.request.url.path[:300])
        return self.render("message.html", status=403, error=message)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = (
            _templates()
            .get_template(template)
            .render(
                version=__version__,
                prefix=PREFIX,
                who=self.principal if self.signed_in else None,
                csrf=csrf_token(self.session_token) if self.session_token else "",
                **context,
            )
        )
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def redirect(self, url: str, *, cookie: str | None = None) -> Response:
        response = RedirectResponse(url, status_code=303, headers=_SECURITY_HEADERS)
        if cookie is not None:
            response.headers.append("set-cookie", cookie)
        return response

    def own_origins(self) -> set[str]:
        """The origins of this server's own pages: the origin of this very request (its Host,
        already checked against the allow-list) and the configured public URL's, plus
        ``server.allowed_origins``. Not "any loopback port": another local web app is another
        origin, and its forms must not sign anyone in or decide anything here."""
        host = self.request.headers.get("host", "")
        origins = {f"{self.request.url.scheme}://{host}"}
        if self.peer.via_proxy:
            origins.add(f"https://{host}")  # tailscale serve terminated TLS in front of the socket
        public = self.rt.config.server.public_url
        if public:
            parts = urlsplit(public)
            origins.add(f"{parts.scheme}://{parts.netloc}")
        origins.update(self.rt.config.server.allowed_origins)
        return origins

    def cross_site(self, form: FormData) -> str | None:
        """Why this POST must be refused as possibly cross-site, or None when it is fine.

        Skipped only when the bearer header itself authenticated the request (a browser
        never sends a bearer header with a cross-site form); a cookie-authenticated request
        that also carries some ``Authorization`` header (e.g. Basic credentials from a
        ``user:pass@`` URL) is checked like any other."""
        if self.header_auth:
            return None
        origin = self.request.headers.get("origin")
        if not origin or origin not in self.own_origins():
            return "the form was not sent from this server's own page (Origin missing or not allowed)"
        if self.session_token is not None and not csrf_ok(self.session_token, _field(form, "csrf")):
            return "the form's CSRF field is missing or stale (reload the page and try again)"
        return None

    async def audit(self, event: str, args: dict[str, Any], exc: TailopsError | None, **facts: Any) -> None:
        p = self.principal
        entry: dict[str, Any] = {
            "kind": "web",
            "event": event,
            "principal": p.audit_view(page="review"),
            "args": args,
            # Refused by a rule (scope, own plan, state, cross-site form) vs allowed and then done (or failed).
            "decision": "denied" if is_refusal(exc) else "allowed",
            "outcome": "denied" if is_refusal(exc) else "error" if exc else "ok",
            "error": exc.public_message() if exc else None,
            **facts,
        }
        await self.rt.run_blocking(self.rt.audit.record, entry, sync=True)

    async def refused(self, event: str, args: dict[str, Any], reason: str, **facts: Any) -> None:
        """Audit a request refused before anything was done (cross-site form: Origin or CSRF;
        a page the caller's scopes do not cover), as denied."""
        try:
            await self.audit(event, args, PermissionDenied(f"refused: {reason}"), **facts)
        except AuditError as exc:
            log.error("audit write failed for a refused %s: %s", event, exc.message)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _form(request: Request) -> FormData:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > _MAX_FORM_BYTES:
        raise InvalidInput(f"the form is missing or larger than {_MAX_FORM_BYTES // 1024} KiB.")
    return await request.form(max_files=0, max_fields=16)


def _plan_context(plan: Plan, store_approvals: list[plans.Approval], runs: list[plans.Run]) -> dict[str, Any]:
    hosts = []
    for h in plan.hosts:
        tasks = [{"task": t, "diff": _diff_lines(t.diff)} for t in h.tasks]
        hosts.append({"host": h, "tasks": tasks, "changing": bool(h.changed_tasks)})
    return {
        "plan": plan,
        "params": json.dumps(plan.params, indent=2, sort_keys=True),
        "hosts": hosts,
        "hosts_changing": sum(1 for h in hosts if h["changing"]),
        "not_simulated": sum(1 for h in plan.hosts for t in h.tasks if t.not_simulated),
        "approvals": store_approvals,
        "runs": runs,
    }


def build_review(rt: Runtime, verifier: TokenVerifier | None) -> list[Route | Mount]:
    """The ``/review`` routes for ``rt`` (``verifier`` is None only with ``auth.unsafe_no_auth``)."""

    async def login_form(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        done = _DONE.get(request.query_params.get("done", ""))
        expired = request.query_params.get("expired") == "1"
        return page.render("login.html", done=done, expired=expired, auth=verifier is not None)

    async def login(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        try:
            form = await _form(request)
        except InvalidInput as exc:
            return page.render("login.html", status=400, error=exc.public_message(), auth=verifier is not None)
        if reason := page.cross_site(form):
            await page.refused("review:login", {}, reason)
            return page.render("login.html", status=403, error=f"Refused: {reason}.", auth=verifier is not None)
        if verifier is None:
            return page.redirect(f"{PREFIX}/")
        token = (_field(form, "token") or "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            access = verifier.authenticate(token) if token else None
        except AuthError as exc:
            await page.audit("review:login", {}, exc)
            return page.render("login.html", status=401, error=exc.message, auth=True)
        if access is None:
            return page.render("login.html", status=401, error="Paste a token to sign in.", auth=True)
        return page.redirect(f"{PREFIX}/", cookie=session_cookie(token, access.expires_at, secure=page.secure))

    async def logout(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        try:
            form = await _form(request)
        except InvalidInput as exc:
            return page.render("message.html", status=400, error=exc.public_message())
        if reason := page.cross_site(form):
            await page.refused("review:logout", {}, reason)
            return page.render("message.html", status=403, error=f"Refused: {reason}.")
        return page.redirect(f"{LOGIN_PATH}?done=logged-out", cookie=clear_cookie(secure=page.secure))

    async def stylesheet(request: Request) -> Response:
        return Response(_stylesheet(), media_type="text/css", headers=_SECURITY_HEADERS)

    async def plan_list(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        if refused := await page.refuse_view("review:plans", "plans"):
            return refused

        def load() -> tuple[list[Plan], list[Plan], int]:
            open_plans = [p for status in ("pending", "approved") for p in plans.list_plans(rt.store, status=status)[0]]
            recent, total = plans.list_plans(rt.store, limit=50)
            return open_plans, [p for p in recent if p.status not in ("pending", "approved")], total

        open_plans, others, total = await rt.run_blocking(load)
        return page.render("plans.html", open_plans=open_plans, others=others, total=total)

    async def plan_detail(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        page = _Page(rt, verifier, request)
        if refused := await page.refuse_view("review:plan", "plans"):
            return refused
        plan_id = request.path_params["plan_id"]

        def load() -> dict[str, Any]:
            plan = plans.get_plan(rt.store, plan_id)
            runs = plans.list_runs(rt.store, plan_id=plan.id, limit=20)[0]
            context = _plan_context(plan, plans.approvals_for(rt.store, plan.id), runs)
            needed, given = approvals.standing(rt.store, rt.config.changes, plan, rt.engine.inventory_file)
            context["approvals_given"] = given
            context["approvals_required"] = needed.approvals_needed
            context["approval_rule"] = needed.summary()
            return context

        try:
            context = await rt.run_blocking(load)
        except TailopsError as exc:
            return page.render("message.html", status=http_status(exc), error=exc.public_message())
        plan: Plan = context["plan"]
        mine = bool(page.principal.same_person_as(plan.requester_ids))
        may_approve = page.allows("review:approve") and not mine
        return page.render(
            "plan.html",
            status=status,
            error=error,
            done=_DONE.get(request.query_params.get("done", "")),
            mine=mine,
            may_approve=may_approve and plan.status == "pending" and not rt.config.server.read_only,
            may_deny=(may_approve or mine) and plan.status in ("pending", "approved"),
            read_only=rt.config.server.read_only,
            **context,
        )

    async def form_action(
        request: Request,
        detail: Callable[..., Awaitable[Response]],
        event: str,
        facts: dict[str, Any],
        args_of: Callable[[FormData], dict[str, Any]],
        act: Callable[[_Page, dict[str, Any]], Awaitable[dict[str, Any]]],
        done: str,
    ) -> Response:
        """One POST from the page: the form checks (size, Origin, CSRF), the action, its
        audit record with the true outcome (fsynced); on failure ``detail`` again with the
        reason, else a redirect to ``done``."""
        page = _Page(rt, verifier, request)
        try:
            form = await _form(request)
        except InvalidInput as bad_form:
            return await detail(request, error=bad_form.public_message(), status=400)
        if reason := page.cross_site(form):
            await page.refused(event, {**facts, **args_of(form)}, reason, **facts)
            return await detail(request, error=f"Refused: {reason}.", status=403)
        args = args_of(form)
        failure: TailopsError | None = None
        try:
            facts = {**facts, **await act(page, args)}
        except TailopsError as caught:
            failure = caught
        try:
            await page.audit(event, args, failure, **facts)
        except AuditError as audit_exc:
            log.error("audit write failed for %s: %s", event, audit_exc.message)
            failure = failure or audit_exc
        if failure is not None:
            return await detail(request, error=failure.public_message(), status=http_status(failure))
        return page.redirect(done)

    async def decide(request: Request) -> Response:
        plan_id = request.path_params["plan_id"]
        decision = request.path_params["decision"]
        if decision not in ("approve", "deny"):
            return await not_found(request)
        key = "comment" if decision == "approve" else "reason"

        async def act(page: _Page, args: dict[str, Any]) -> dict[str, Any]:
            if decision == "approve":
                if rt.config.server.read_only:
                    raise InvalidInput("this server is read-only (server.read_only): it approves nothing.")
                approval = await rt.run_blocking(rt.engine.approve, page.principal, plan_id, args[key])
            else:
                approval = await rt.run_blocking(rt.engine.deny, page.principal, plan_id, args[key] or "")
            return {"approval_id": approval.id}

        return await form_action(
            request,
            plan_detail,
            f"review:{decision}",
            {"plan_id": plan_id},
            lambda form: {"plan_id": plan_id, key: _field(form, key)},
            act,
            f"{PREFIX}/plans/{plan_id}?done={'approved' if decision == 'approve' else 'denied'}",
        )

    async def run_detail(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        page = _Page(rt, verifier, request)
        if refused := await page.refuse_view("review:run", "runs"):
            return refused
        run_id = request.path_params["run_id"]

        def load() -> dict[str, Any]:
            run = plans.get_run(rt.store, run_id)
            events = plans.run_events(rt.store, run.id, limit=RUN_EVENTS_SHOWN, latest=True)
            return {"run": run, "plan": plans.find_plan(rt.store, run.plan_id), "events": events}

        try:
            context = await rt.run_blocking(load)
        except TailopsError as exc:
            return page.render("message.html", status=http_status(exc), error=exc.public_message())
        run: plans.Run = context["run"]
        plan: Plan | None = context["plan"]
        running = run.status == "running"
        return page.render(
            "run.html",
            status=status,
            error=error,
            done=_DONE.get(request.query_params.get("done", "")),
            refresh=RUN_REFRESH_S if running and error is None else None,
            # Stopping a run needs what applying it needed: the playbook's scope.
            may_cancel=running and plan is not None and page.principal.has_scope(plan.scope),
            **context,
        )

    async def host_detail(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        if refused := await page.refuse_view("review:host", "host history"):
            return refused
        host = request.path_params["host"]
        try:
            found = await rt.run_blocking(history.host_history, rt.store, host, limit=100)
        except TailopsError as exc:
            return page.render("message.html", status=http_status(exc), error=exc.public_message())
        return page.render("host.html", history=found)

    async def drift_view(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        if refused := await page.refuse_view("review:drift", "drift"):
            return refused
        report = await rt.run_blocking(drift.latest_drift, rt.store)
        return page.render("drift.html", report=report)

    async def cancel(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        async def act(page: _Page, args: dict[str, Any]) -> dict[str, Any]:
            # Stopping a run needs what applying it needed: the engine checks the playbook's scope.
            run = await rt.engine.cancel(page.principal, run_id, via="review page")
            return {"plan_id": run.plan_id}

        return await form_action(
            request,
            run_detail,
            "review:cancel",
            {"run_id": run_id},
            lambda form: {"run_id": run_id},
            act,
            f"{PREFIX}/runs/{run_id}?done=cancel-requested",
        )

    async def not_found(request: Request) -> Response:
        page = _Page(rt, verifier, request)
        return page.render("message.html", status=404, error=NotFound("no such page.").public_message())

    async def to_index(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=303, headers=_SECURITY_HEADERS)

    # Each route is named after its row in the policy table (tests/unit/auth/test_policy.py
    # fails on a route without one). approve and deny share a route: both rows apply there.
    return [
        Route(PREFIX, to_index, methods=["GET"], name="review:index"),
        Mount(
            PREFIX,
            routes=[
                Route("/", plan_list, methods=["GET"], name="review:plans"),
                Route("/login", login_form, methods=["GET"], name="review:login-form"),
                Route("/login", login, methods=["POST"], name="review:login"),
                Route("/logout", logout, methods=["POST"], name="review:logout"),
                Route("/static/review.css", stylesheet, methods=["GET"], name="review:stylesheet"),
                Route("/plans/{plan_id:str}", plan_detail, methods=["GET"], name="review:plan"),
                Route("/plans/{plan_id:str}/{decision:str}", decide, methods=["POST"], name="review:decide"),
                Route("/runs/{run_id:str}", run_detail, methods=["GET"], name="review:run"),
                Route("/hosts/{host:str}", host_detail, methods=["GET"], name="review:host"),
                Route("/drift", drift_view, methods=["GET"], name="review:drift"),
                Route("/runs/{run_id:str}/cancel", cancel, methods=["POST"], name="review:cancel"),
                Route("/{rest:path}", not_found, name="review:not-found"),
            ],
        ),
    ]
