"""The ``openai`` teacher: any OpenAI-compatible ``/chat/completions`` endpoint writes the
questions (a hosted model, a local vLLM or llama.cpp server).

What leaves the machine is the request's topic, sentence and answer, each scrubbed of personal
data first by :func:`ragtune.ingest.pii.scrub` (e-mails, phones, cards, IBANs, SSNs, IPs become
placeholders); a candidate whose *answer* holds personal data is not sent at all. A config may
forbid endpoints on other machines (``synth.allow_external: false``, see :func:`check_endpoint`).

Requests go one at a time through the standard library's HTTP client (no extra dependency);
a timeout, a 429 or a 5xx is retried ``retries`` times with a doubling pause. Every other
failure raises :class:`~ragtune.errors.TeacherError` naming the endpoint and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from ragtune.errors import SynthError, TeacherError
from ragtune.ingest.pii import scrub
from ragtune.synth.settings import EndpointSettings
from ragtune.synth.teacher import QuestionRequest, question_messages

__all__ = ["EndpointTeacher", "check_endpoint", "is_local_url"]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BODY_SHOWN = 300


def is_local_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address).

    >>> is_local_url("http://127.0.0.1:8000/v1"), is_local_url("https://api.openai.com/v1")
    (True, False)
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(settings: EndpointSettings, *, allow_external: bool) -> str:
    """The endpoint's base URL, checked: set, http(s), and on this machine unless
    ``allow_external``. Raises :class:`~ragtune.errors.SynthError` naming the setting."""
    url = settings.base_url
    if url is None:
        raise SynthError(
            "the openai teacher needs synth.endpoint.base_url (e.g. https://api.openai.com/v1 "
            "or http://localhost:8000/v1 for a local vLLM or llama.cpp server)"
        )
    if (
        urllib.parse.urlsplit(url).scheme not in ("http", "https")
        or not urllib.parse.urlsplit(url).hostname
    ):
        raise SynthError(f"synth.endpoint.base_url {url!r} is not an http(s) URL")
    if not allow_external and not is_local_url(url):
        raise SynthError(
            f"synth.allow_external is false, and the teacher endpoint {url} is on another "
            "machine: use --teacher local, or a server on this machine (localhost)"
        )
    return url.rstrip("/")


Post = Callable[[urllib.request.Request, float], bytes]
"""Send a request with a timeout in seconds and return the response body (raises urllib's
errors); a test can hand its own."""


def _post(request: urllib.request.Request, timeout: float) -> bytes:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
        return body


class EndpointTeacher:
    """Questions from an OpenAI-compatible chat endpoint (see the module doc).

    ``key`` is the API key the caller read from the environment (None: none is sent);
    ``max_tokens`` caps each reply.
    """

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        allow_external: bool,
        key: str | None,
        max_tokens: int,
        post: Post = _post,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = check_endpoint(settings, allow_external=allow_external) + "/chat/completions"
        self._settings = settings
        self._key = key
        self._max_tokens = max_tokens
        self._post = post
        self._sleep = sleep

    @property
    def name(self) -> str:
        return f"openai:{self._settings.model}"

    def write(self, requests: Sequence[QuestionRequest]) -> list[str]:
        replies = []
        for request in requests:
            clean = _scrubbed(request)
            replies.append("" if clean is None else self._complete(question_messages(clean)))
        return replies

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps(
            {
                "model": self._settings.model,
                "messages": messages,
                "temperature": self._settings.temperature,
                "max_tokens": self._max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        pause = 1.0
        tries = self._settings.retries + 1
        for attempt in range(1, tries + 1):
            request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
            try:
                return _reply_text(self._post(request, self._settings.timeout_seconds), self._url)
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS or attempt == tries:
                    raise TeacherError(_http_problem(exc, self._url, self._settings)) from None
            except (TimeoutError, urllib.error.URLError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if not isinstance(reason, TimeoutError):
                    raise TeacherError(
                        f"the teacher endpoint {self._url} cannot be reached ({reason}); check "
                        "synth.endpoint.base_url and that the server is running"
                    ) from None
                if attempt == tries:
                    raise TeacherError(
                        f"the teacher endpoint {self._url} did not answer within "
                        f"{self._settings.timeout_seconds:g} s ({tries} tries); raise "
                        "synth.endpoint.timeout_seconds or check the server"
                    ) from None
            self._sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")  # every try returns or raises


def _scrubbed(request: QuestionRequest) -> QuestionRequest | None:
    """The request with personal data replaced; None when the answer itself is personal data."""
    answer = scrub(request.answer).text
    if answer != request.answer:
        return None
    return QuestionRequest(scrub(request.title).text, scrub(request.sentence).text, answer)


def _reply_text(body: bytes, url: str) -> str:
    try:
        data: Any = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        shown = body[:_BODY_SHOWN].decode("utf-8", "replace")
        raise TeacherError(
            f"the teacher endpoint {url} answered with something that is not a chat completion "
            f"({shown!r}); is synth.endpoint.base_url an OpenAI-compatible API root (…/v1)?"
        ) from None
    return content if isinstance(content, str) else ""


def _http_problem(exc: urllib.error.HTTPError, url: str, settings: EndpointSettings) -> str:
    try:
        shown = exc.read()[:_BODY_SHOWN].decode("utf-8", "replace")
    except OSError:
        shown = ""
    fix = {
        401: f"set a valid key in ${settings.api_key_env}",
        403: f"the key in ${settings.api_key_env} may not use model {settings.model!r}",
        404: f"check synth.endpoint.base_url (the API root, …/v1) and the model {settings.model!r}",
    }.get(exc.code, "check the server and try again; the same command continues")
    return f"the teacher endpoint {url} answered HTTP {exc.code} ({shown.strip()!r}): {fix}"
