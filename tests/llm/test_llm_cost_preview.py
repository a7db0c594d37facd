"""The cost preview (issue 16): counted from the requests a stage sends, checked against what the strict OpenAI
emulator bills for them; the o200k_base tokenizer installs from a package and downloads nothing; a stage over its
budget refuses to start in one line; budget lines hold what they have not spent."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from llm_helpers import FAST, make_endpoint
from testkit import answer_first_intent, teacher_contexts

from maritime_slm.config import GenerateParams, ParamsError, load_params
from maritime_slm.generate.run import generate_pairs, teacher_requests
from maritime_slm.llm import Budget, BudgetExceeded, Ledger, LLMRequest, read_log, run_batch
from maritime_slm.llm import preview as preview_module
from maritime_slm.llm.emulator import CHARS_PER_TOKEN, prompt_text
from maritime_slm.llm.preview import (
    CACHE_INCREMENT_TOKENS,
    CACHE_MIN_TOKENS,
    PREVIEW_FILE,
    CostOverBudget,
    CostPreview,
    PrefixCache,
    preview_role,
)
from maritime_slm.llm.tokens import (
    _SEGMENT,
    O200K_SHA256,
    o200k_encoding,
    o200k_file,
    o200k_tokenizer,
    tiktoken_bpe,
)

FAKE_KEY = "sk-test-" + "k" * 32


class EmulatorTokens:
    """The strict emulator's own billing rule as a tokenizer (4 characters a token over `prompt_text`), so the
    preview's request enumeration, cache lookups and prefix replay can be checked against its `usage` exactly."""

    name, exact = "emulator", True

    def __init__(self) -> None:
        self._vocabulary: dict[str, int] = {}

    def count(self, text: str) -> int:
        return -(-len(text) // CHARS_PER_TOKEN)

    def prompt_tokens(self, body) -> np.ndarray:
        text = prompt_text(body)
        chunks = [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]
        return np.array(
            [self._vocabulary.setdefault(c, len(self._vocabulary)) for c in chunks], dtype=np.int64
        )


def attempts(folder) -> list[dict]:
    return [e for e in read_log(folder / "calls.jsonl") if e["event"] == "attempt"]


# ------------------------------------------------------------------------------------- o200k_base, offline


def test_o200k_base_comes_from_the_package_and_downloads_nothing(monkeypatch):
    import hashlib

    import tiktoken.load

    assert hashlib.sha256(tiktoken_bpe(o200k_file().read_bytes())).hexdigest() == O200K_SHA256

    def no_download(path: str) -> bytes:
        raise AssertionError(f"tiktoken tried to read {path}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    o200k_encoding.cache_clear()
    try:
        encoding = o200k_encoding()
    finally:
        o200k_encoding.cache_clear()
    assert encoding.name == "o200k_base" and encoding.n_vocab == 200019
    assert encoding.encode_ordinary("hello world") == [24912, 2375]
    assert "TIKTOKEN_CACHE_DIR" not in __import__("os").environ


def test_segmented_counting_equals_whole_text_on_real_prompts():
    from maritime_slm.curate.revise import EditJob, editor_messages, relevant_facts
    from maritime_slm.evaluate.judge import judge_messages
    from maritime_slm.generate.records import QAPair, Verification

    ctxs, facts = teacher_contexts(1)
    requests, _ = teacher_requests(ctxs, facts, GenerateParams(pairs_per_context=6), "t")
    fact = facts["ctx-000"][0]
    pair = QAPair(id="p", context_id="ctx-000", category=fact["category"], teacher="t", question="Q?",
                  reasoning="r", answer="a", final_answer="1", facts_ref=[fact["key"]],
                  verification=Verification(status="incorrect", error_type="wrong_value"))  # fmt: skip
    job = EditJob(pair, fact, relevant_facts(fact, facts["ctx-000"]), ctxs[0]["text"])
    texts = [m["content"] for r in requests for m in r.messages]
    texts += [m["content"] for m in editor_messages(job)]
    texts += [judge_messages("Q?", "ref\n\nFinal answer: 1", "1", "x\n\n/y\n\n z\n\n\nw")[0]["content"]]
    texts += ["a):\n\nB", "12\n\n34", " \n\n\tx", "\n\n", "x\n\n", "é\n\nñ", "x.\n\n/\n\ny"]
    assert any(len(_SEGMENT.split(t)) > 2 for t in texts)
    tokenizer, encoding = o200k_tokenizer(), o200k_encoding()
    for text in texts:
        assert tokenizer.count(text) == len(encoding.encode_ordinary(text)), text[:80]


def test_chat_prompt_counts_as_openai_documents_it():
    """OpenAI's cookbook: 3 tokens per message + the role + the content, and 3 that open the reply."""
    encoding = o200k_encoding()
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello world"}]
    expected = (
        sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages) + 3
    )
    assert len(o200k_tokenizer().prompt_tokens({"messages": messages})) == expected


# ----------------------------------------------------------------------- the preview against the emulator


def test_generate_preview_counts_what_the_stage_sends(scripted, tmp_path, monkeypatch):
    """The stage's preview (printed and in cost_preview.json) equals the usage the strict emulator billed."""
    monkeypatch.setenv("FAKE_TEACHER_KEY", FAKE_KEY)
    monkeypatch.setattr(preview_module, "tokenizer_for", lambda endpoint: EmulatorTokens())
    server = scripted(strict=True, default=answer_first_intent)
    teachers = [
        make_endpoint(server, name="gpt-4o", api_key_env="FAKE_TEACHER_KEY", concurrency=1, max_tokens=300,
                      price_cached_in_per_m=1.25),
        make_endpoint(server, name="o3-mini", model="o3-mini", api_key_env="FAKE_TEACHER_KEY", concurrency=1,
                      reasoning_effort="medium", temperature=None, max_tokens=4000, price_in_per_m=1.1,
                      price_out_per_m=4.4),
    ]  # fmt: skip
    ctxs, facts = teacher_contexts(2)
    params = GenerateParams(teachers=teachers, rules_teacher=False, pairs_per_context=6, budget_usd=5.0)
    generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    assert server.rejected() == []
    shown = json.loads((tmp_path / "stage" / PREVIEW_FILE).read_text())
    sent = attempts(tmp_path / "llm" / "generate")
    for role in shown["roles"]:
        mine = [e for e in sent if e["teacher"] == role["endpoint"] and e["retry"] == 0]
        assert role["requests"] == len(mine) == 12
        assert role["input_tokens"] == sum(e["input_tokens"] for e in mine) > 0
        assert role["cached_input_tokens"] == sum(e["cached_input_tokens"] for e in mine)
        assert role["output_tokens_ceiling"] >= sum(e["output_tokens"] for e in mine)
    o3 = next(r for r in shown["roles"] if r["endpoint"] == "o3-mini")
    assert o3["output_tokens_ceiling"] == 12 * 4000 and o3["reasoning_model"]
    assert shown["ceiling_usd_batch"] == pytest.approx(shown["ceiling_usd"] / 2, abs=1e-5)

    # a re-run: every request is in the request cache, so nothing is left to pay
    generate_pairs(ctxs, facts, params, tmp_path / "stage2", tmp_path / "llm", seed=0)
    again = json.loads((tmp_path / "stage2" / PREVIEW_FILE).read_text())
    assert [(r["requests"], r["from_cache"]) for r in again["roles"]] == [(0, 12), (0, 12)]
    assert again["ceiling_usd"] == 0
    # the replies of the first run are the measured basis of the expected output figure
    assert all("mean of 12 replies" in r["expected_from"] for r in again["roles"])


def test_cached_prefix_matches_the_emulators_prompt_cache(scripted, tmp_path):
    """Requests about one snapshot share it as a prefix: the preview's cached tokens are what the emulator bills
    as `cached_tokens` (OpenAI's rule: prompts of 1024+ tokens, hits in 128-token steps)."""
    server = scripted(strict=True)
    endpoint = make_endpoint(server, concurrency=1, response_format="text", price_cached_in_per_m=1.25)
    snapshot = "\n".join(f"36712{i:04d}|VESSEL {i}|cargo|{i * 0.37:.4f}|{i * 1.91:.4f}" for i in range(400))
    requests = [
        LLMRequest.chat(f"{snapshot}\n\nQuestion {q}: which vessel is fastest?", tag="qa", output=None)
        for q in range(4)
    ] + [LLMRequest.chat("short and alone", tag="qa", output=None)]
    shown = preview_role("teacher", endpoint, requests, tokenizer=EmulatorTokens())
    with Ledger(tmp_path) as ledger:
        run_batch(endpoint, requests, ledger=ledger, backoff=FAST, progress=False)
    billed = attempts(tmp_path)
    assert shown.input_tokens == sum(e["input_tokens"] for e in billed)
    assert shown.cached_input_tokens == sum(e["cached_input_tokens"] for e in billed) > 3 * CACHE_MIN_TOKENS
    assert shown.cached_input_tokens / shown.input_tokens > 0.6
    assert shown.usd_expected < shown.usd_ceiling


def test_prefix_cache_rule():
    cache = PrefixCache()
    base = np.arange(3000)
    assert cache.cached_tokens(base) == 0  # the first prompt is only cached
    assert cache.cached_tokens(np.concatenate([base[:2000], -np.arange(1, 500)])) == 1920  # 2000 -> 15 x 128
    assert cache.cached_tokens(np.concatenate([base[:1100], -np.arange(1, 50)])) == 1024
    assert cache.cached_tokens(np.concatenate([base[:1000], -np.arange(1, 900)])) == 0  # under 1024 shared
    assert cache.cached_tokens(base[:900]) == 0  # a short prompt is never cached
    assert CACHE_INCREMENT_TOKENS == 128


# ----------------------------------------------------------------------------- refusal over budget


def test_a_stage_over_budget_refuses_before_any_request(scripted, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_TEACHER_KEY", FAKE_KEY)
    server = scripted(strict=True, default=answer_first_intent)
    teacher = make_endpoint(server, name="gpt-4o", api_key_env="FAKE_TEACHER_KEY", max_tokens=1024)
    ctxs, facts = teacher_contexts(2)
    params = GenerateParams(teachers=[teacher], rules_teacher=False, pairs_per_context=6, budget_usd=0.05)
    with pytest.raises(CostOverBudget) as refused:
        generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    message = str(refused.value)
    assert "\n" not in message and "generate.budget_usd" in message and "refuse_over_budget" in message
    assert server.count() == 0
    assert "OVER BUDGET" in capsys.readouterr().out
    assert json.loads((tmp_path / "stage" / PREVIEW_FILE).read_text())["problems"]

    # a line too small for its teacher is named; raising the budgets lets the stage start
    params.budget_usd = 5.0
    params.teachers = [teacher.model_copy(update={"budget_usd": 0.01})]
    with pytest.raises(
        CostOverBudget, match=r"teacher gpt-4o's ceiling .* generate.teachers\[gpt-4o\].budget_usd"
    ):
        generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    params.teachers = [teacher.model_copy(update={"budget_usd": 1.0})]
    result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    assert server.count() == 12 and len(result.pairs) == 12


def test_problems_name_the_line_and_the_stage_budget():
    role = preview_module.RolePreview("judge", "j", "gpt-4o", usd_ceiling=3.0, usd_ceiling_batch=1.5,
                                      line_key="evaluate.judge.budget_usd", line_usd=2.0)  # fmt: skip
    preview = CostPreview("evaluate", [role], "evaluate.budget_usd", 10.0, spent_usd=9.0)
    problems = preview.problems()
    assert len(problems) == 2 and "evaluate.judge.budget_usd" in problems[0] and "$1.00" in problems[1]
    preview.check(refuse=False, refuse_key="x")  # warned only
    role.batch = True  # at batch prices the judge fits its line, the stage still not
    assert len(preview.problems()) == 1


def test_a_batch_endpoint_is_previewed_at_batch_prices():
    """The role pays what its endpoint's switch says: the refusal must compare the batch ceiling, not sync."""
    from maritime_slm.config import ModelEndpoint

    fields = dict(name="t", model="gpt-4o", base_url="http://127.0.0.1:9/v1", response_format="text",
                  price_in_per_m=2.5, price_out_per_m=10.0, max_tokens=100)  # fmt: skip
    asked = [LLMRequest.chat("how many vessels?", max_tokens=100)]
    sync = preview_role("teacher", ModelEndpoint(**fields), asked)
    batch = preview_role("teacher", ModelEndpoint(**fields, batch=True), asked)
    assert (sync.batch, batch.batch) == (False, True)
    assert batch.usd_ceiling == sync.usd_ceiling > 0
    assert batch.checked_usd == pytest.approx(sync.checked_usd / 2)


# -------------------------------------------------------------------------------------------- budget lines


def test_a_line_holds_what_it_has_not_spent():
    async def scenario():
        stage = Budget(1.0)
        judge = stage.line(0.5)
        answers = stage.line(None)
        spent = 0
        while True:
            try:
                r = await answers.reserve(0.125)
            except BudgetExceeded:
                break
            answers.settle(r, 0.125)
            spent += 1
        assert spent == 4 and answers.exhausted and not judge.exhausted
        for _ in range(4):
            judge.settle(await judge.reserve(0.125), 0.125)
        with pytest.raises(BudgetExceeded):
            await judge.reserve(0.125)
        return stage

    stage = asyncio.run(scenario())
    assert stage.spent_usd == pytest.approx(1.0)


def test_lines_that_do_not_fit_the_stage_budget_are_a_params_error(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    inputs = f"ingest.inputs=['{tmp_path}/*.csv']"
    with pytest.raises(
        ParamsError, match=r"evaluate.judge.budget_usd \$100.*more than evaluate.budget_usd \$170"
    ):
        load_params("paper", [inputs, "evaluate.judge.budget_usd=100", "evaluate.teacher_budget_usd=40"])
    params = load_params("paper", [inputs, "evaluate.judge.budget_usd=20", "evaluate.teacher_budget_usd=10"])
    assert params.evaluate.refuse_over_budget
    with pytest.raises(ParamsError, match=r"curate.editor.budget_usd \$200.*more than curate.budget_usd"):
        load_params("paper", [inputs, "curate.budget_usd=100", "curate.editor.budget_usd=200"])


def test_a_local_endpoint_is_counted_with_its_gguf_vocabulary_and_previewed_as_local():
    from maritime_slm.config import ModelEndpoint
    from maritime_slm.llm.tokens import tokenizer_for

    local = ModelEndpoint(name="smol", model="smollm2", local=True)
    tokenizer = tokenizer_for(local)
    assert not tokenizer.exact and "GGUF" in tokenizer.name
    assert 0 < tokenizer.count("AIS snapshot 2024-06-01 00:00") < len("AIS snapshot 2024-06-01 00:00")
    shown = preview_role("teacher", local, [LLMRequest.chat("hello")] * 3)
    assert shown.local and shown.requests == 3 and shown.usd_ceiling == 0 and shown.tokenizer == "local"
