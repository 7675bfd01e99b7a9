"""The openai backend against a misbehaving local server: retries, Retry-After, time-outs, exit code 3."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_server import FakeServer, closed_port, completion_body  # noqa: E402

from tfcaf.errors import InfrastructureError, UsageError  # noqa: E402
from tfcaf.generator.backend_openai import OpenAIBackend, backoff_s, retry_after_seconds  # noqa: E402
from tfcaf.generator.backends import BackendSettings  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]


def _backend(url: str, sleeps: list, **kw) -> OpenAIBackend:
    settings = BackendSettings(name="openai", model="fake-model", base_url=url, timeout_s=kw.pop("timeout_s", 5.0),
                               max_retries=kw.pop("max_retries", 2), api_key_env="TFCAF_TEST_NO_KEY")
    return OpenAIBackend(settings, sleep=sleeps.append)


def test_answer_and_token_accounting():
    with FakeServer(lambda n, body: (200, {}, completion_body("hello"))) as srv:
        done = _backend(srv.base_url, []).complete(MSG, temperature=0.5, max_tokens=9, seed=3)
    assert done.text == "hello" and done.prompt_tokens == 11 and done.completion_tokens == 7
    assert srv.requests[0]["seed"] == 3 and srv.requests[0]["max_tokens"] == 9


def test_json_schema_becomes_response_format():
    with FakeServer(lambda n, body: (200, {}, completion_body("{}"))) as srv:
        _backend(srv.base_url, []).complete(MSG, json_schema={"type": "object"})
    assert srv.requests[0]["response_format"]["type"] == "json_schema"
    assert srv.requests[0]["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_429_is_retried_honouring_retry_after():
    def behaviour(n, body):
        if n <= 2:
            return 429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}
        return 200, {}, completion_body("ok")

    sleeps: list = []
    with FakeServer(behaviour) as srv:
        done = _backend(srv.base_url, sleeps).complete(MSG)
    assert done.text == "ok" and sleeps == [3.0, 3.0] and done.raw["retries"] == 2


def test_500_fails_after_bounded_retries_with_exponential_backoff():
    sleeps: list = []
    with FakeServer(lambda n, body: (500, {}, {"error": {"message": "boom"}})) as srv:
        with pytest.raises(InfrastructureError, match=r"failed after 3 attempts: server error \(500\)"):
            _backend(srv.base_url, sleeps).complete(MSG)
        assert len(srv.requests) == 3
    assert sleeps == [backoff_s(0, None), backoff_s(1, None)] == [0.5, 1.0]


def test_other_4xx_fails_at_once():
    with FakeServer(lambda n, body: (401, {}, {"error": {"message": "bad key"}})) as srv:
        with pytest.raises(InfrastructureError, match="401"):
            _backend(srv.base_url, []).complete(MSG)
        assert len(srv.requests) == 1


def test_slower_than_the_timeout_is_bounded():
    with FakeServer(lambda n, body: (200, {}, ("sleep", 3.0, completion_body("late")))) as srv:
        start = time.monotonic()
        with pytest.raises(InfrastructureError, match="no answer within 0.5 s"):
            _backend(srv.base_url, [], timeout_s=0.5, max_retries=1).complete(MSG)
        assert time.monotonic() - start < 5.0


def test_closed_port_is_infrastructure_with_one_line():
    port = closed_port()
    start = time.monotonic()
    with pytest.raises(InfrastructureError) as info:
        _backend(f"http://127.0.0.1:{port}/v1", [], max_retries=1).complete(MSG)
    assert "cannot connect" in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - start < 10.0


def test_malformed_body_is_retried_then_infrastructure():
    with FakeServer(lambda n, body: (200, {}, b"<html>not json</html>")) as srv:
        with pytest.raises(InfrastructureError):
            _backend(srv.base_url, [], max_retries=1).complete(MSG)


def test_openai_default_endpoint_without_key_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("TFCAF_TEST_NO_KEY", raising=False)
    with pytest.raises(UsageError, match="API key"):
        OpenAIBackend(BackendSettings(name="openai", model="gpt-x", api_key_env="TFCAF_TEST_NO_KEY"))


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert backoff_s(10, None) == 8.0 and backoff_s(0, 100.0) == 8.0


def test_endpoint_refusing_the_schema_is_asked_again_without_it():
    def behaviour(n, body):
        if "response_format" in body:
            return 400, {}, {"error": {"message": "response_format json_schema is not supported"}}
        return 200, {}, completion_body('{"a": 1}')

    with FakeServer(behaviour) as srv:
        backend = _backend(srv.base_url, [])
        done = backend.complete(MSG, json_schema={"type": "object"})
        assert done.text == '{"a": 1}' and "schema_refused" in done.raw and not backend.schema_supported
        backend.complete(MSG, json_schema={"type": "object"})
        assert ["response_format" in r for r in srv.requests] == [True, False, False]
