"""GGUF export (llama.cpp's converters from the cached sdist, its quantizer through the bindings) and `serve`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from maritime_slm.finetune import gguf
from maritime_slm.finetune.export import export_gguf

RUN = "gguf-test"
PROMPT = "The vessel MMSI 123456789 was last seen"


def converters() -> Path:
    """The cached converters; a missing sdist fails the test with its reason (CI runs `make setup` first)."""
    try:
        return gguf.converters_dir()
    except gguf.GGUFToolingError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny smoke student with a non-zero LoRA adapter: adapter folder, merged folder, and the GGUF export."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from maritime_slm.models import tiny_qwen2_dir

    converters()
    root = tmp_path_factory.mktemp("gguf")
    base = tiny_qwen2_dir()
    torch.manual_seed(3)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(base)),
        LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"
        ),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 1.0)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    adapter, merged = root / "adapter", root / "merged"
    model.save_pretrained(str(adapter))
    model.merge_and_unload().save_pretrained(str(merged))
    tokenizer.save_pretrained(str(merged))
    out = root / "outputs" / RUN / "finetune" / "export" / "gguf"
    result = export_gguf(out, SimpleNamespace(gguf_quantization="q8_0"), merged, adapter, str(base))
    return SimpleNamespace(root=root, out=out, result=result)


def test_sdist_is_the_installed_version():
    import importlib.metadata

    assert (
        gguf.sdist_path().name == f"llama_cpp_python-{importlib.metadata.version('llama-cpp-python')}.tar.gz"
    )
    folder = converters()
    assert folder.name == f"llama.cpp-{gguf.llama_cpp_version()}"
    assert (folder / "gguf-py" / "gguf" / "gguf_writer.py").is_file() and (folder / "conversion").is_dir()


@pytest.mark.slow
def test_export_writes_every_gguf_with_its_size(exported):
    result = exported.result
    assert result["status"] == "done", result.get("reason")
    names = {"student", "base"}
    expected = {f"{n}.{q}.gguf" for n in names for q in ("F16", "Q8_0", "Q4_K_M")} | {"adapter.F16.gguf"}
    assert set(result["files"]) == expected
    for name, entry in result["files"].items():
        assert entry["bytes"] == (exported.out / name).stat().st_size > 0, name
        with open(exported.out / name, "rb") as f:
            assert f.read(4) == b"GGUF", name
    sizes = {name: entry["bytes"] for name, entry in result["files"].items()}
    assert sizes["student.Q8_0.gguf"] < sizes["student.F16.gguf"]
    assert sizes["adapter.F16.gguf"] < sizes["base.F16.gguf"]


def _last_logits(model_path: Path, lora_path: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(
        str(model_path),
        lora_path=str(lora_path) if lora_path else None,
        n_ctx=256,
        logits_all=True,
        verbose=False,
    )
    tokens = llm.tokenize(PROMPT.encode())
    llm.eval(tokens)
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    llm.close()
    return logits


@pytest.mark.slow
def test_quantized_student_generates(exported):
    from llama_cpp import Llama

    llm = Llama(str(exported.out / "student.Q8_0.gguf"), n_ctx=256, verbose=False)
    out = llm.create_completion(PROMPT, max_tokens=8, temperature=0.0)
    llm.close()
    assert out["usage"]["completion_tokens"] > 0
    assert out["choices"][0]["text"]


@pytest.mark.slow
def test_gguf_adapter_on_the_base_matches_the_merged_student(exported):
    """The adapter moves the base's logits to the merged student's: it was converted, loaded and applied."""
    base = _last_logits(exported.out / "base.F16.gguf")
    tuned = _last_logits(exported.out / "base.F16.gguf", exported.out / "adapter.F16.gguf")
    merged = _last_logits(exported.out / "student.F16.gguf")
    assert np.abs(merged - base).max() > 0.05
    assert np.abs(tuned - merged).max() < 0.1 * np.abs(merged - base).max()


@pytest.mark.slow
def test_a_failed_step_is_recorded_and_the_rest_still_exported(exported, tmp_path):
    from maritime_slm.models import tiny_qwen2_dir

    broken = tmp_path / "merged"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    recipe = SimpleNamespace(gguf_quantization=None)
    result = export_gguf(tmp_path / "gguf", recipe, broken, exported.root / "adapter", str(tiny_qwen2_dir()))
    assert result["status"] == "failed"
    assert result["reason"].startswith("student F16: convert_hf_to_gguf.py exited with code")
    assert "; adapter: convert_lora_to_gguf.py exited with code" in result["reason"]
    assert set(result["files"]) == {"base.F16.gguf", "base.Q4_K_M.gguf"}
    assert not list((tmp_path / "gguf").glob("student.*"))


def test_missing_converters_fail_the_export_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MARITIME_SLM_CACHE", str(tmp_path / "empty-cache"))
    result = export_gguf(tmp_path / "gguf", SimpleNamespace(gguf_quantization="q8_0"), None, tmp_path, None)
    assert result["status"] == "failed"
    assert "make setup" in result["reason"] and "sdist" in result["reason"]


def test_serve_refuses_a_run_without_export(tmp_path, cli_env):
    for args, message in [
        (["--run", "../x"], "--run '../x'"),
        (["--run", "nothing-here"], "run the finetune stage of 'nothing-here' first"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "maritime_slm", "serve", *args, "--outputs-dir", str(tmp_path)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_serve_answers_a_chat_completion_and_stops(exported, cli_env):
    from openai import OpenAI

    command = [
        sys.executable,
        "-m",
        "maritime_slm",
        "serve",
        "--run",
        RUN,
        "--quant",
        "q8_0",
        "--n-ctx",
        "512",
    ]
    process = subprocess.Popen(
        [*command, "--outputs-dir", str(exported.root / "outputs")],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(2)]
        assert lines[0].startswith("base_url: http://127.0.0.1:"), (lines, process.stderr.read())
        base_url, model = lines[0].split(": ", 1)[1], lines[1].split(": ", 1)[1]
        assert model == f"{RUN}-tuned-q8_0"
        client = OpenAI(base_url=base_url, api_key="local-server-needs-none")
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=8, temperature=0.0
        )
        assert reply.choices[0].message.content is not None and reply.usage.completion_tokens > 0
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "server stopped" in process.stderr.read()
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the llama.cpp server outlived `serve`"


def _same_tokens(gguf_file: Path, model_dir: Path) -> None:
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    text = (
        "MMSI 257123450, SOG 12.5 kn at 2026-11-30T08:15Z; 'Ve  lL\tvessel's  name: NORDIC STAR\n\nok?\n"
        "367371820|ANACOSTIA|tug_tow (52)|United States|A|30 x 9|3.2|moored\n  00:18:22|17.9750|-66.6170|0.1|"
    )
    llm = Llama(str(gguf_file), vocab_only=True, verbose=False)
    ours = llm.tokenize(text.encode(), add_bos=False, special=False)
    llm.close()
    assert ours == AutoTokenizer.from_pretrained(str(model_dir)).encode(text, add_special_tokens=False)


@pytest.mark.slow
def test_tiny_student_gguf_tokenizes_as_in_training(exported):
    from maritime_slm.models import tiny_qwen2_dir

    _same_tokens(exported.out / "student.F16.gguf", tiny_qwen2_dir())


@pytest.mark.slow
def test_default_student_converts_and_tokenizes_as_in_training(tmp_path):
    """SmolLM2's tokenizer rebuilt by transformers: byte-level BPE flagged byte_fallback, pre-tokenizer unknown."""
    from maritime_slm.models import smollm2_model_dir

    converters()
    gguf_file = gguf.convert_model(smollm2_model_dir(), tmp_path / "smollm2.F16.gguf")
    _same_tokens(gguf_file, smollm2_model_dir())
