"""Dry runs (issue 16): params/paper-dry.yaml is the paper profile's LLM settings on the strict OpenAI emulator, an
emulated model never reaches its base_url, and the emulated model gives every stage work to do."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from testkit import hand_made_context

from maritime_slm.config import FactsParams, GenerateParams, load_params
from maritime_slm.curate.revise import EditorRevision, edit_jobs
from maritime_slm.curate.verify import verify
from maritime_slm.dryrun import emulator, ensure_emulator, respond
from maritime_slm.evaluate.judge import judge_messages, parse_grade
from maritime_slm.facts.contexts import serialize
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.generate.records import QAPair, TeacherOutput, Verification
from maritime_slm.generate.run import teacher_requests
from maritime_slm.llm import serving
from maritime_slm.llm.formats import response_format
from maritime_slm.llm.server import EMULATOR_URL_ENV, NoEmulator


@pytest.fixture
def paper(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    return load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])


def test_paper_dry_is_the_paper_profiles_llm_settings_on_the_emulator(paper):
    dry = load_params("paper-dry")
    assert dry.emulator and not paper.emulator
    assert [e.name for e in dry.api_endpoints()] == ["gpt-4o", "o3-mini", "gpt-4o-editor", "gpt-4o-judge"]
    assert all(e.emulated for e in dry.api_endpoints()) and not any(e.emulated for e in paper.api_endpoints())
    as_paper = [e.model_dump(exclude={"emulated"}) for e in dry.api_endpoints()]
    assert as_paper == [e.model_dump(exclude={"emulated"}) for e in paper.api_endpoints()]
    assert dry.generate.model_dump(exclude={"teachers"}) == paper.generate.model_dump(exclude={"teachers"})
    assert dry.curate.model_dump(exclude={"editor", "split"}) == paper.curate.model_dump(
        exclude={"editor", "split"}
    )
    counts = {"judge", "max_new_tokens", "max_items", "llm_max_items"}
    assert dry.evaluate.model_dump(exclude=counts) == paper.evaluate.model_dump(exclude=counts)
    same = {"window_minutes", "reports_per_vessel", "layout", "cell_deg"}
    assert dry.contexts.model_dump(include=same) == paper.contexts.model_dump(include=same)
    assert dry.finetune.student == "tiny-random-qwen2" and dry.ingest.simulate is not None


def test_an_emulated_model_never_goes_to_its_base_url(monkeypatch):
    teacher = load_params("paper-dry").generate.teachers[0]
    assert teacher.base_url == "https://api.openai.com/v1"
    monkeypatch.delenv(EMULATOR_URL_ENV, raising=False)
    with (
        pytest.raises(NoEmulator, match="'gpt-4o' is emulated .* no emulator is running"),
        serving([teacher]),
    ):
        pass
    monkeypatch.setenv(EMULATOR_URL_ENV, "https://api.openai.com/v1")
    with pytest.raises(NoEmulator, match="must be a loopback URL"), serving([teacher]):
        pass
    monkeypatch.delenv(EMULATOR_URL_ENV)
    with emulator() as server, serving([teacher]) as ready:
        assert ready[0].base_url == server.base_url and server.base_url.startswith("http://127.0.0.1:")


def test_a_notebook_opened_by_hand_starts_its_own_emulator(monkeypatch):
    monkeypatch.delenv(EMULATOR_URL_ENV, raising=False)
    url = ensure_emulator()
    assert url.startswith("http://127.0.0.1:") and os.environ[EMULATOR_URL_ENV] == url
    assert ensure_emulator() == url  # one per process
    with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
        assert reply.status == 200


def body(messages, output=None, model="gpt-4o"):
    fmt = response_format("json_schema", output) if output else None
    return {"model": model, "messages": messages, **({"response_format": fmt} if fmt else {})}


def test_the_emulated_model_gives_every_stage_work():
    ctx = hand_made_context()
    ctx["text"] = serialize(ctx, "compact")
    sheet = compute_facts(ctx, FactsParams())
    cid = ctx["context_id"]
    requests, _ = teacher_requests([ctx], {cid: sheet}, GenerateParams(pairs_per_context=6), "gpt-4o")
    menus, picked = [], []
    for request in requests:
        reply = respond(body(request.messages, TeacherOutput))
        assert reply.model == "gpt-4o-2024-08-06"
        out = TeacherOutput.model_validate_json(reply.content)
        picked.append(out.fact_key)
        menus.append({line[2:].split(": ", 1)[0] for line in request.messages[1]["content"].splitlines()})
    assert all(key in menu for key, menu in zip(picked, menus, strict=True))

    fact = next(f for f in sheet if f["key"] == "kinematics.fastest_vessel")
    pair = QAPair(
        id="p", context_id=cid, category="kinematics", teacher="gpt-4o", question="Which vessel is fastest?",
        reasoning="I read it.", answer="It is 1.", final_answer="1", facts_ref=[fact["key"]],
        verification=Verification(status="incorrect", error_type="format_error"),
    )  # fmt: skip
    (job,) = edit_jobs([pair], {cid: sheet}, {cid: ctx})
    revision = EditorRevision.model_validate_json(respond(body(job.messages, EditorRevision)).content)
    revised = pair.model_copy(update={**revision.model_dump(exclude={"change"}), "verification": None})
    assert revision.final_answer == str(fact["value"])
    assert verify(revised, sheet, ctx).status == "correct"

    def grade(candidate: str) -> str | None:
        prompt = judge_messages("Which vessel is fastest?", "MMSI 367000001.", "367000001", candidate)
        return parse_grade(respond(body(prompt)).content)

    assert grade("It is ALPHA.\nFinal answer: 367000001") == "CORRECT"
    assert grade("Final answer: 367000002") == "INCORRECT"
    answer = respond(
        body([{"role": "user", "content": f"{ctx['text']}\n\nQuestion: How fast is 367000002?"}])
    )
    assert answer.content.endswith("Final answer: 367000002")
    assert json.loads(respond(body(job.messages, Verification)).content) == {
        "status": "correct",
        "error_type": "emulated",
        "detail": "emulated",
    }  # any other schema: a value of it
