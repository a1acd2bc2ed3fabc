"""Claude, through the official ``anthropic`` SDK, for the three factory agents.

One call shape for all of them: a system prompt, one user message, and a structured-output
JSON schema (``output_config.format``) built from the factory's real ids as enums, so the model
cannot even spell an id that does not exist. Every reply still goes through the same
validators as the offline agents; this module only turns transport and model failures into
:class:`LLMError` with a one-line reason the orchestrator logs before falling back.

Replies are cached on disk under ``var/llm-cache/``, keyed by a hash of the complete
request (model, prompts, schema, limits): the same planner text, factory and date give the
same briefing on every run, and a re-run costs nothing.

Settings: ``ANTHROPIC_API_KEY``, ``CONTROLROOM_CLAUDE_MODEL`` (default :data:`DEFAULT_MODEL`),
``CONTROLROOM_LLM_TIMEOUT`` seconds per request (default 30), and the SDK's own retries (2, with
backoff, on 408/409/429/5xx including 529 overloaded). They are read from the environment the
entry (``controlroom brief``, the TUI) resolved once and passes to :func:`resolve_llm`; this
module never reads the process environment, so a key in ``.env`` reaches the SDK too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine import paths

if TYPE_CHECKING:
    import httpx2

DEFAULT_MODEL = "claude-sonnet-5"
MODEL_ENV = "CONTROLROOM_CLAUDE_MODEL"
TIMEOUT_ENV = "CONTROLROOM_LLM_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 2
CACHE_VERSION = 1

LLMMode = Literal["auto", "off", "on"]
LLM_MODES: tuple[str, ...] = ("auto", "off", "on")

FailureKind = Literal[
    "refusal",
    "invalid_json",
    "truncated",
    "timeout",
    "overloaded",
    "rate_limited",
    "api",
    "connection",
    "empty",
    "server",
    "skipped",
]
UNREACHABLE = frozenset({"timeout", "overloaded", "rate_limited", "connection", "server"})


class LLMError(Exception):
    """The model gave no usable reply; ``kind`` classifies, ``str()`` is the logged reason."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class LLMUnavailable(RuntimeError):
    """``--llm on`` without an API key: a usage error, reported before anything runs."""


class ClaudeClient:
    """A thin, cached JSON-completion wrapper around ``anthropic.Anthropic``.

    ``http_client`` is passed to the SDK unchanged: tests hand it an
    ``httpx2.Client(transport=httpx2.MockTransport(...))`` and drive the real SDK offline.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int = DEFAULT_RETRIES,
        http_client: httpx2.Client | None = None,
        cache: bool = True,
        cache_path: Path | None = None,
    ) -> None:
        import anthropic

        self.model = model or DEFAULT_MODEL
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT_S
        self.max_retries = max_retries
        self.cache = cache and cache_path is not None
        """Replies are kept in ``cache_path`` (None: no disk cache; :func:`resolve_llm` gives
        ``var/llm-cache``)."""
        self._cache_path = cache_path
        self._sdk = anthropic.Anthropic(
            api_key=api_key,
            timeout=anthropic.Timeout(self.timeout, connect=min(5.0, self.timeout)),
            max_retries=max_retries,
            http_client=http_client,
        )
        self.calls = 0
        """Requests actually sent (cache hits excluded); tests and logs read it."""
        self.unavailable: str | None = None
        """Set by the first failure that says the API cannot be reached right now (timeout,
        connection, overload, rate limit, 5xx): later agents of the same run go straight to
        their offline fallback instead of waiting out the same timeouts again."""

    @property
    def label(self) -> str:
        return f"claude:{self.model}"

    def request(
        self, *, system: str, prompt: str, schema: dict[str, Any], max_tokens: int
    ) -> dict[str, Any]:
        """The exact Messages API request body (also the cache key's content)."""
        return {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": prompt}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }

    def complete_json(
        self,
        *,
        agent: str,
        system: str,
        prompt: str,
        schema: dict[str, Any],
        max_tokens: int = 2048,
    ) -> tuple[Any, bool]:
        """(parsed JSON reply, came_from_cache). Raises :class:`LLMError`."""
        body = self.request(system=system, prompt=prompt, schema=schema, max_tokens=max_tokens)
        key = request_key(body)
        if self.cache:
            hit = self._read_cache(key)
            if hit is not None:
                return hit, True
        if self.unavailable is not None:
            raise LLMError("skipped", f"not asked: {self.unavailable} earlier in this run")
        try:
            data = self._call(body)
        except LLMError as exc:
            if exc.kind in UNREACHABLE:
                self.unavailable = str(exc)
            raise
        if self.cache:
            self._write_cache(key, agent, data)
        return data, False

    def _call(self, body: dict[str, Any]) -> Any:
        import anthropic

        self.calls += 1
        try:
            message = self._sdk.messages.create(**body)
        except anthropic.APITimeoutError:
            raise LLMError(
                "timeout", f"no reply within {self.timeout:g}s ({self.max_retries} retries)"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise LLMError("connection", f"cannot reach the API ({str(exc).rstrip('.')})") from None
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            detail = _error_message(exc)
            if status == 529:
                raise LLMError(
                    "overloaded", f"API overloaded (529) after {self.max_retries} retries"
                ) from None
            if status == 429:
                raise LLMError("rate_limited", f"rate limited (429): {detail}") from None
            kind: FailureKind = "server" if status >= 500 else "api"
            raise LLMError(kind, f"API error {status}: {detail}") from None
        except anthropic.AnthropicError as exc:
            raise LLMError("api", f"SDK error: {exc}") from None

        if message.stop_reason == "refusal":
            details = message.stop_details
            why = ""
            if details is not None:
                why = f" ({details.category or 'uncategorised'})"
            raise LLMError("refusal", f"the model declined to answer{why}")
        if message.stop_reason == "max_tokens":
            raise LLMError("truncated", "reply cut off at max_tokens")
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        if not text.strip():
            raise LLMError("empty", f"reply has no text (stop_reason={message.stop_reason})")
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:  # [[[[… past Python's stack
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
            snippet = text[:60].replace("\n", " ")
            raise LLMError(
                "invalid_json", f"reply is not valid JSON ({why}): {snippet!r}"
            ) from None

    # -- cache ------------------------------------------------------------------------------

    def _cache_file(self, key: str) -> Path:
        assert self._cache_path is not None  # (only asked when self.cache)
        return self._cache_path / f"{key}.json"

    def _read_cache(self, key: str) -> Any | None:
        path = self._cache_file(key)
        try:
            entry = json.loads(paths.read_small_file(path))
        except (OSError, ValueError, RecursionError):
            return None  # missing, corrupt, not a file or nested past the stack: ask again
        if not isinstance(entry, dict) or entry.get("key") != key or "response" not in entry:
            return None
        return entry["response"]

    def _write_cache(self, key: str, agent: str, data: Any) -> None:
        path = self._cache_file(key)
        entry = {
            "version": CACHE_VERSION,
            "key": key,
            "agent": agent,
            "model": self.model,
            "response": data,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
            ) as tmp:
                json.dump(entry, tmp, ensure_ascii=False, sort_keys=True)
            Path(tmp.name).replace(path)
        except OSError:
            pass  # a cache that cannot be written only costs a call next time


def request_key(body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"v": CACHE_VERSION, "request": body},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:200]
    return str(exc)[:200]


def _positive(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 else None


def has_api_key(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("ANTHROPIC_API_KEY", "").strip())


def resolve_llm(
    mode: str | ClaudeClient | None, environ: Mapping[str, str] | None = None
) -> ClaudeClient | None:
    """``auto``: Claude when ``environ`` (the entry's resolved environment) has
    ``ANTHROPIC_API_KEY``, else offline; ``off``: offline; ``on``: Claude or
    :class:`LLMUnavailable`. No ``environ`` means no key: offline. A ClaudeClient passes
    through (tests, and an entry that resolved it already)."""
    if isinstance(mode, ClaudeClient):
        return mode
    mode = (mode or "auto").lower()
    if mode not in LLM_MODES:
        raise ValueError(f"llm mode must be one of {', '.join(LLM_MODES)}, not {mode!r}")
    if mode == "off":
        return None
    environ = environ or {}
    if not has_api_key(environ):
        if mode == "on":
            raise LLMUnavailable(
                "--llm on needs ANTHROPIC_API_KEY in the environment "
                "(use --llm off or auto for the offline agents)"
            )
        return None
    return ClaudeClient(
        api_key=environ["ANTHROPIC_API_KEY"].strip(),
        model=environ.get(MODEL_ENV) or None,
        timeout=_positive(environ.get(TIMEOUT_ENV)),
        cache_path=paths.var_dir(environ) / "llm-cache",
    )
