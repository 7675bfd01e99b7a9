"""Any OpenAI-compatible endpoint (OpenAI, DeepSeek, vLLM, ollama, llama.cpp servers) through the `openai` SDK.

Retries are ours, not the SDK's, so they are bounded and visible: a 429, a 5xx, a time-out or a refused
connection is retried up to `max_retries` times with exponential backoff (0.5 s, 1 s, 2 s, ... capped at
`MAX_BACKOFF_S`), honouring a `Retry-After` header up to that cap. Other 4xx answers fail at once. Every
failure ends in `InfrastructureError` (exit code 3) with one line naming the endpoint and the cause, so
the worst case is bounded by (max_retries + 1) * timeout + the backoff sum.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from tfcaf.errors import InfrastructureError, MissingDependencyError, UsageError
from tfcaf.generator.backends import BackendSettings, Completion, Message, schema_response_format, token_logprobs

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 8.0
BASE_BACKOFF_S = 0.5


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a `Retry-After` (or `retry-after-ms`) header asks for, when it is a number."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is not None:
            return max(0.0, float(value))
    except (TypeError, ValueError):
        return None
    return None


def backoff_s(attempt: int, retry_after: float | None) -> float:
    """Delay before retry `attempt` (0-based): exponential, or what the server asked, capped."""
    delay = BASE_BACKOFF_S * (2 ** attempt)
    if retry_after is not None:
        delay = retry_after
    return min(MAX_BACKOFF_S, delay)


class OpenAIBackend:
    """Chat completions over HTTP. The API key comes from the environment variable the settings name;
    endpoints on 127.0.0.1 / localhost need none."""

    name = "openai"

    def __init__(self, settings: BackendSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            import openai
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise MissingDependencyError("openai", "the openai backend") from err
        self._openai = openai
        self._sleep = sleep
        self.base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = os.environ.get(settings.api_key_env)
        default_pair = self.base_url.rstrip("/") == DEFAULT_BASE_URL and settings.api_key_env == "OPENAI_API_KEY"
        if key and not settings.send_api_key and not default_pair:
            # a repository's ./tfcaf.toml chose this endpoint: the user's key does not go there
            import sys

            from tfcaf.display import inert
            from tfcaf.generator.config import user_config_path

            print(inert(f"tfcaf: note: not sending ${settings.api_key_env} to {self.base_url}: it was set by a tfcaf.toml "
                        f"found in the working directory. Pass --base-url (or OPENAI_BASE_URL) to send it, or list the URL "
                        f"under [secrets] trusted_base_urls in {user_config_path()}."), file=sys.stderr)
            key = None
        if not key:
            if self.base_url.rstrip("/") == DEFAULT_BASE_URL:
                raise UsageError(f"--backend openai against {DEFAULT_BASE_URL} needs an API key in ${settings.api_key_env}; "
                                 "set it, or point --base-url at a local server, or use --backend local.")
            key = "none"  # local servers accept any key
        if not settings.model:
            raise UsageError("--backend openai needs --model (the endpoint's model name).")
        self.model = settings.model
        self.timeout_s = settings.timeout_s
        self.max_retries = max(0, settings.max_retries)
        self.schema_supported = True
        """False once the endpoint refused a JSON-schema response_format (400): later requests go without."""
        self.logprobs_supported = True
        """False once the endpoint refused `logprobs` (400)."""
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=settings.timeout_s, max_retries=0)

    def complete(self, messages: list[Message], **sampling: Any) -> Completion:
        openai = self._openai
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        for key in ("temperature", "top_p", "max_tokens", "seed"):
            if sampling.get(key) is not None:
                kwargs[key] = sampling[key]
        if sampling.get("json_schema") is not None and self.schema_supported:
            kwargs["response_format"] = schema_response_format(sampling["json_schema"])
        if self.logprobs_supported:
            kwargs["logprobs"] = True  # token log-probs for datasets; dropped if the server refuses them
        start = time.perf_counter()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                answer = self._client.chat.completions.create(**kwargs)
                return self._completion(answer, time.perf_counter() - start, attempt)
            except openai.APITimeoutError:
                last = f"no answer within {self.timeout_s:g} s"
            except openai.APIConnectionError as err:
                last = f"cannot connect ({_cause(err)})"
            except openai.RateLimitError as err:
                last = "rate limited (429)"
                retry_after = retry_after_seconds(getattr(err.response, "headers", None))
            except openai.InternalServerError as err:
                last = f"server error ({err.status_code})"
                retry_after = retry_after_seconds(getattr(err.response, "headers", None))
            except openai.BadRequestError as err:
                if "logprobs" in kwargs and "logprob" in str(err.message).lower():
                    self.logprobs_supported = False
                    kwargs.pop("logprobs")
                    continue
                if "response_format" in kwargs:
                    # the server does not take this JSON schema (or none at all): ask without it from now
                    # on; the callers' parsers validate (and clamp) every answer anyway
                    self.schema_supported = False
                    kwargs.pop("response_format")
                    try:
                        answer = self._client.chat.completions.create(**kwargs)
                    except openai.APIError as again:
                        raise InfrastructureError(f"LLM endpoint {self.base_url} refused the request: {_short(str(again))}") from again
                    done = self._completion(answer, time.perf_counter() - start, attempt)
                    return dataclasses.replace(done, raw={**done.raw, "schema_refused": _short(err.message)})
                raise InfrastructureError(f"LLM endpoint {self.base_url} refused the request "
                                          f"({err.status_code}: {_short(err.message)})") from err
            except openai.APIStatusError as err:
                raise InfrastructureError(f"LLM endpoint {self.base_url} refused the request "
                                          f"({err.status_code}: {_short(err.message)})") from err
            except ValueError as err:  # a malformed body the SDK could not parse
                last = f"malformed answer ({_short(str(err))})"
            if attempt < self.max_retries:
                self._sleep(backoff_s(attempt, retry_after))
        raise InfrastructureError(f"LLM endpoint {self.base_url} failed after {self.max_retries + 1} attempts: {last}. "
                                  "Check that the server runs and --base-url/--model are right.")

    def _completion(self, answer: Any, latency: float, attempt: int) -> Completion:
        if not getattr(answer, "choices", None):
            raise InfrastructureError(f"LLM endpoint {self.base_url} answered with no choices")
        choice = answer.choices[0]
        usage = getattr(answer, "usage", None)
        return Completion(
            text=(choice.message.content if choice.message is not None else None) or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=latency,
            model=str(getattr(answer, "model", None) or self.model),
            raw={"finish_reason": choice.finish_reason, "retries": attempt},
            logprobs=token_logprobs(choice),
        )

    def identity(self) -> dict[str, Any]:
        """A remote model: its name and endpoint (no weights hash is available)."""
        return {"backend": self.name, "model": self.model, "model_sha256": None, "base_url": self.base_url,
                "effective_defaults": {}}

    def close(self) -> None:
        self._client.close()


def _cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return _short(str(err) or type(err).__name__)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
