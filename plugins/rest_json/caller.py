"""A call to the system and its answer: the request built from an operation, sent, sorted.

What the answer says decides what the bus does next: done, a rejection (dead
letter) with the system's own error text, a retry no sooner than its
``Retry-After``, or a stop (fatal). Our credentials refused: log in again once.
A ``resend_with`` code: call once more with the fields it names. Secrets are
scrubbed from every error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import jsonschema.exceptions

from lienthong import jsonxml
from lienthong.errors import FatalError, RejectedError, TransientError

from .client import Answer, AnswerRefused, CallFailed, HttpClient, Request
from .config import Config
from .operations import Operation
from .paths import JsonPath, Missing, scalar_text

# The adapter's logger: an endpoint's lines keep one name, whichever module writes them.
log = logging.getLogger("lienthong.plugins.rest_json.adapter")


class _AuthRefused(Exception):
    """401/403 or an ``error_auth`` code: the caller may log in again once."""


class _Resend(Exception):
    """A code listed in the operation's ``resend_with``: call once more with these fields."""

    def __init__(self, code: str, fields: Mapping[str, Any], text: str) -> None:
        super().__init__(code)
        self.code = code
        self.fields = fields
        self.text = text


class Caller:
    """Makes an endpoint's calls: URL and headers from the operation, the call, its answer."""

    def __init__(self, config: Config, client: HttpClient) -> None:
        self.where = config.where
        self.settings = config.settings
        self.base_url = config.base_url
        self.paths = config.paths
        self.auth = config.auth
        self.limits = config.limits
        self.error_ok = config.error_ok
        self.error_done = config.error_done
        self.error_transient = config.error_transient
        self.error_auth = config.error_auth
        self.client = client

    def scrub(self, text: str) -> str:
        """``text`` without our secrets: errors and logs may travel further than the config."""
        for secret in self.auth.secrets():
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def transport(self, request: Request, what: str) -> Answer:
        """One call; network trouble becomes the bus's errors (transient or fatal), scrubbed."""
        try:
            return self.client.send(request)
        except CallFailed as exc:
            text = self.scrub(f"{self.where} {what}: {exc}")
            if exc.kind == "tls":
                raise FatalError(
                    f"{text}. Hint: if the certificate cannot be verified, set ca_file to the PEM "
                    "of the CA that signed it; if the system wants a client certificate, set "
                    "client_cert (and client_key)"
                ) from exc
            hint = (
                "raise timeout if the system is slow"
                if exc.kind == "timeout"
                else "check the system is up and base_url"
            )
            raise TransientError(f"{text}. Hint: {hint}") from exc
        except AnswerRefused as exc:
            raise FatalError(self.scrub(f"{self.where} {what}: {exc}")) from exc

    def _error_text(self, answer: Answer, parsed: Any = None) -> str:
        """What the system said went wrong: its message field, or the start of its body."""
        path = self.paths.get("error_message_path")
        if parsed is None:
            try:
                parsed = jsonxml.parse(answer.body, limits=self.limits)
            except jsonxml.JsonRejected:
                parsed = None
        if parsed is not None and path is not None:
            found = path.get(parsed)
            if found is not None and not isinstance(found, (list, dict)):
                return self.scrub(scalar_text(found))[:500]
        text = answer.body[:300].decode("utf-8", "replace")
        return self.scrub(" ".join(text.split())) or "(empty body)"

    def _check(
        self, answer: Answer, op: Operation, what: str, *, need_json: bool, resend: bool = False
    ) -> Any:
        """Sort the answer: return the parsed body if done, raise by what the bus should do."""
        where = f"{self.where} {op.name} ({what})"
        status = answer.status
        if status in op.done_statuses:
            log.info("%s: HTTP %d, already there: done", where, status)
            return None
        if status in (401, 403):
            raise _AuthRefused(f"HTTP {status}: {self._error_text(answer)}")
        if status in (408, 429) or status >= 500:
            raise TransientError(
                f"{where}: HTTP {status}: {self._error_text(answer)}",
                retry_after=answer.retry_after(self.settings["max_retry_after"]),
            )
        if not 200 <= status < 300:
            if 400 <= status < 500:
                raise RejectedError(
                    f"{where}: refused with HTTP {status}: {self._error_text(answer)}"
                )
            raise FatalError(f"{where}: unexpected HTTP {status}: {self._error_text(answer)}")
        error_path = self.paths.get("error_path")
        if not (need_json or error_path is not None or op.response_schema is not None):
            return None
        try:
            parsed = jsonxml.parse(answer.body, limits=self.limits, what="the answer")
        except jsonxml.JsonRejected as exc:
            raise FatalError(f"{where}: HTTP {status} but {self.scrub(str(exc))}") from exc
        if error_path is not None:
            self._check_code(parsed, error_path, where, answer, op.resend_with if resend else {})
        if op.response_schema is not None:
            problem = self.invalid(op.response_schema, parsed)
            if problem:
                raise FatalError(f"{where}: the answer does not match response_schema: {problem}")
        return parsed

    def _check_code(
        self,
        parsed: Any,
        error_path: JsonPath,
        where: str,
        answer: Answer,
        resend_with: Mapping[str, Mapping[str, Any]],
    ) -> None:
        try:
            code = scalar_text(error_path.find(parsed))
        except Missing:
            return  # an answer without the field: nothing to say against it
        if code in self.error_ok:
            return
        text = self._error_text(answer, parsed)
        if code in self.error_done:
            log.info("%s: %s %s (%s): already there, done", where, error_path.text, code, text)
            return
        if code in resend_with:
            raise _Resend(code, resend_with[code], text)
        if code in self.error_auth:
            raise _AuthRefused(f"{error_path.text} {code}: {text}")
        if code in self.error_transient:
            # The system answered: only this message waits, the endpoint is not failing.
            raise TransientError(f"{where}: {error_path.text} {code}: {text}", endpoint_up=True)
        raise RejectedError(f"{where}: the system answered {error_path.text} {code}: {text}")

    def invalid(self, validator: Any, value: Any) -> str | None:
        """What in ``value`` breaks the JSON Schema (its path and why), or None."""
        plain = jsonxml.to_python(value, limits=self.limits, duplicates="use-first")
        error = jsonschema.exceptions.best_match(validator.iter_errors(plain))
        if error is None:
            return None
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        return f"{where}: {error.message}"

    def exchange(
        self,
        build: Callable[[Mapping[str, Any]], tuple[Request, int]],
        op: Operation,
        what: str,
        *,
        need_json: bool,
    ) -> Any:
        """Call; after a refusal of our credentials, log in again and call once more; after a
        ``resend_with`` code, call once more with those fields."""
        renewed = resent = False
        changes: Mapping[str, Any] = {}
        while True:
            request, generation = build(changes)
            answer = self.transport(request, f"{op.name} ({what})")
            try:
                return self._check(answer, op, what, need_json=need_json, resend=not resent)
            except _AuthRefused as refused:
                if not renewed and self.auth.renewable:
                    log.info("%s: credentials refused (%s); logging in again", self.where, refused)
                    self.auth.renew(generation)
                    renewed = True
                    continue
                again = " even after logging in again" if renewed else ""
                raise FatalError(
                    f"{self.where} {op.name} ({what}): our credentials were refused{again}: "
                    f"{refused}. "
                    "Hint: check the endpoint's auth settings and that the account may call this"
                ) from None
            except _Resend as resend:
                log.info(
                    "%s %s (%s): code %s (%s); calling again with %s",
                    self.where,
                    op.name,
                    what,
                    resend.code,
                    resend.text,
                    dict(resend.fields),
                )
                changes, resent = resend.fields, True

    def url(
        self, op: Operation, lookup: Callable[[str], str], extra: Mapping[str, str] = {}
    ) -> str:
        """The operation's URL, its placeholders filled (path parts quoted), ``extra`` added."""
        path = op.path.render(lambda name: quote(lookup(name), safe=""))
        url = self.base_url + path
        query = [(k, t.render(lookup)) for k, t in op.query.items()]
        query += [(k, v) for k, v in extra.items() if v != ""]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    def headers(self, op: Operation, lookup: Callable[[str], str], *, body: bool) -> dict[str, str]:
        """The operation's headers, filled; a value with a line break is refused, not sent."""
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        for name, template in op.headers.items():
            value = template.render(lookup)
            if "\r" in value or "\n" in value:
                raise RejectedError(
                    f"{self.where} {op.name}: header {name} would carry a line break"
                )
            headers[name] = value
        return headers
