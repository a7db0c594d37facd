"""A teacher that is down, out of quota or mostly failing fails the stage, naming the endpoint and never the key."""

import pytest
from test_generate_stage import FAKE_KEY, api_teacher
from testkit import answer_first_intent, teacher_contexts

from maritime_slm.config import GenerateParams
from maritime_slm.generate.run import generate_pairs
from maritime_slm.llm import LLMResult
from maritime_slm.llm.failures import FailureWatch, ModelCallsFailed, endpoint_label
from maritime_slm.llm.server import free_port
from maritime_slm.llm.testserver import Fail, ScriptedServer


@pytest.fixture(autouse=True)
def fake_key(monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", FAKE_KEY)


class Unreachable:
    base_url = f"http://127.0.0.1:{free_port('127.0.0.1')}/v1"


def test_unreachable_teacher_fails_the_stage_naming_the_endpoint(tmp_path):
    ctxs, facts = teacher_contexts(1)
    params = GenerateParams(
        teachers=[api_teacher(Unreachable(), max_retries=0)], pairs_per_context=6, budget_usd=1.0
    )
    with pytest.raises(ModelCallsFailed) as err:
        generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    message = str(err.value)
    assert message.startswith(
        f"teacher 'api-teacher' (model gpt-4o at {Unreachable.base_url}): the server was"
    )
    assert (
        "never reached: APIConnectionError: Connection error. The 0 replies" in message
        and FAKE_KEY not in message
    )
    context = err.value.__context__
    while context is not None:  # an exception group in the context chain makes IPython hide the message
        assert not isinstance(context, BaseExceptionGroup)
        context = context.__context__


def test_insufficient_quota_stops_the_batch_at_once(tmp_path):
    ctxs, facts = teacher_contexts(3)
    quota = Fail(429, "You exceeded your current quota (insufficient_quota)", echo_authorization=True)
    with ScriptedServer(default=lambda body: quota) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, max_retries=0, concurrency=1)], pairs_per_context=6, budget_usd=1.0
        )
        with pytest.raises(ModelCallsFailed) as err:
            generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
        assert server.count() == 1
    assert "a fatal error (no retry can fix it): RateLimitError: Error code: 429" in str(err.value)
    assert "insufficient_quota" in str(err.value) and FAKE_KEY not in str(err.value)


def test_out_of_quota_fails_after_one_request_although_retries_are_on(tmp_path):
    ctxs, facts = teacher_contexts(3)
    quota = Fail(429, "You exceeded your current quota, please check your plan and billing details.",
                 code="insufficient_quota")  # fmt: skip
    with ScriptedServer(default=lambda body: quota) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, max_retries=3, concurrency=1)], pairs_per_context=6, budget_usd=1.0
        )
        with pytest.raises(ModelCallsFailed) as err:
            generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
        assert server.count() == 1
    message = str(err.value)
    assert (
        "a fatal error (no retry can fix it): insufficient_quota: the API account is out of quota" in message
    )
    assert "\n" not in message


def test_too_many_failures_fail_after_caching_what_succeeded(tmp_path):
    ctxs, facts = teacher_contexts(3)
    calls = {"n": 0}

    def every_third_fails(body):
        calls["n"] += 1
        return Fail(500) if calls["n"] % 3 == 0 else answer_first_intent(body)

    with ScriptedServer(default=every_third_fails) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, max_retries=0, concurrency=1)], pairs_per_context=6, budget_usd=1.0
        )
        with pytest.raises(ModelCallsFailed) as err:
            generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
        assert "4 of 18 requests got no reply, more than its max_failed_share of 20% allows" in str(err.value)
        assert "first error: http_error: InternalServerError" in str(err.value)
        assert "The 8 replies that succeeded are cached" in str(err.value)
        sent = server.count()
        server.default = answer_first_intent
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage2", tmp_path / "llm", seed=0)
    assert not result.failures and server.count() - sent == 18 - 8


def _result(ok: bool, failure=None, detail=""):
    return LLMResult(ok=ok, failure=failure, detail=detail)


def test_unusable_replies_count_only_against_their_own_threshold(tmp_path):
    teacher = api_teacher(Unreachable())
    watch = FailureWatch(teacher, "teacher", 4)
    for i in range(4):
        watch(i, _result(False, "invalid_json", "not JSON"))
    strict = FailureWatch(teacher.model_copy(update={"max_invalid_share": 0.5}), "teacher", 4)
    strict(0, _result(False, "invalid_json", "not JSON"))
    strict(1, _result(False, "schema_error", "off-schema"))
    with pytest.raises(
        ModelCallsFailed, match=r"3 of 4 requests stayed unusable, more than its max_invalid_share"
    ):
        strict(2, _result(False, "truncated", "cut off"))
    assert endpoint_label("https://user:secret@api.example.com:8443/v1") == "https://api.example.com:8443/v1"
