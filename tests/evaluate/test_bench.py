"""`bench`: any OpenAI-compatible endpoint scored on a run's test items, beside the run's own models."""

from __future__ import annotations

import pytest
from evaluate_testdata import make_run, params, right_answer, wrong_answer

from maritime_slm.__main__ import main
from maritime_slm.config import ModelEndpoint, ParamsError, dump_params
from maritime_slm.evaluate import evaluate_run
from maritime_slm.evaluate.bench import BenchError, bench
from maritime_slm.llm.testserver import Reply, ScriptedServer, prompt_of

pytestmark = pytest.mark.slow


def test_bench_scores_an_endpoint_beside_the_run_and_pays_once(tmp_path):
    root = tmp_path / "runs" / "r1"
    root.mkdir(parents=True)
    run = make_run(root, n_contexts=1)
    p = params("evaluate.evaluate_teachers=false")
    (root / "params.yaml").write_text(dump_params(p))
    evaluate_run(
        run["generate"], run["curate"], run["finetune"], p, root / "evaluate", run["llm"], progress=False
    )
    rows = run["rows"]
    # right on the first half of the items, wrong on the rest
    answers = {
        r["messages"][1]["content"]: (right_answer if i < len(rows) // 2 else wrong_answer)(run, r)
        for i, r in enumerate(rows)
    }
    with ScriptedServer(default=lambda body: Reply(answers[prompt_of(body)])) as server:
        endpoint = ModelEndpoint(name="my-model", model="m1", base_url=server.base_url, response_format="text",
                                 temperature=0.0, concurrency=2, max_retries=0, timeout_s=5)  # fmt: skip
        res = bench(root, endpoint, progress=False)
        assert server.count() == len(rows)
        acc = {r["model"]: r for r in res["accuracy"].iter_rows(named=True)}
        assert list(acc)[0] == "my-model" and {"student-base", "train-prior", "rules-oracle"} <= set(acc)
        assert acc["my-model"]["correct"] == len(rows) // 2 and acc["my-model"]["n_scored"] == len(rows)
        assert acc["rules-oracle"]["accuracy"] == 1.0
        assert set(res["mcnemar"]["model_a"]) == {"train-prior"}
        for name in ("accuracy.md", "accuracy_by_category.csv", "predictions.jsonl", "ledger.csv"):
            assert (root / "bench" / "my-model" / name).is_file(), name
        bench(root, endpoint, progress=False)  # again: every answer from the cache
        assert server.count() == len(rows)

        rc = main(["bench", "--run", "r1", "--base-url", server.base_url, "--model", "m1", "--name", "my-model",
                   "--outputs-dir", str(tmp_path / "runs")])  # fmt: skip
        assert rc == 0 and server.count() == len(rows)


def test_bench_says_what_is_missing(tmp_path, capsys):
    endpoint = ModelEndpoint(name="x", model="x", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(BenchError, match="not a run folder"):
        bench(tmp_path / "none", endpoint, progress=False)
    with pytest.raises(ParamsError, match="no resolved params"):
        bench(tmp_path, endpoint, progress=False)
    rc = main(["bench", "--run", "../up", "--base-url", "http://127.0.0.1:9/v1", "--model", "x",
               "--outputs-dir", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error:")
