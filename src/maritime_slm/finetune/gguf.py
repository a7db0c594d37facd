"""GGUF through llama.cpp's own converters and quantizer, offline and version-matched with the installed bindings.

The converters (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`, their `conversion/` package and the matching
`gguf-py`) ship inside the llama-cpp-python source distribution of the exact version installed. `make setup` fetches
that sdist once into the cache (`python -m maritime_slm.finetune.gguf`); only those files are unpacked, next to it, into
`.cache/llama.cpp-<version>/`. Quantization goes through `llama_cpp.llama_model_quantize`, so no llama.cpp build is
needed. The converters run with `HF_HUB_OFFLINE=1`: nothing is fetched from a model hub.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from maritime_slm.models import cache_dir

PACKAGE = "llama-cpp-python"
CONVERTERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")
PACKAGES = ("conversion", "gguf-py")
QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


class GGUFToolingError(RuntimeError):
    """The converters are missing or a conversion failed; the message says which and what to do."""


def llama_cpp_version() -> str:
    """The installed bindings' version: the converters must come from the same release (same gguf format)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise GGUFToolingError(f"{PACKAGE} is not installed: run `make setup`") from exc


def sdist_path(version: str | None = None) -> Path:
    version = version or llama_cpp_version()
    return cache_dir() / "sdist" / f"llama_cpp_python-{version}.tar.gz"


def fetch_sdist(version: str | None = None) -> Path:
    """Download the sdist once with pip (no build: only the named package is taken from source)."""
    target = sdist_path(version)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    version = version or llama_cpp_version()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
         f"{PACKAGE}=={version}", "-d", str(target.parent)],
        check=True,
    )  # fmt: skip
    if not target.is_file():
        raise GGUFToolingError(f"pip download did not leave {target}")
    return target


def converters_dir(version: str | None = None) -> Path:
    """`.cache/llama.cpp-<version>/` with the converters, unpacked from the cached sdist on first use."""
    version = version or llama_cpp_version()
    folder = cache_dir() / f"llama.cpp-{version}"
    if all((folder / name).is_file() for name in CONVERTERS) and (folder / "gguf-py" / "gguf").is_dir():
        return folder
    sdist = sdist_path(version)
    if not sdist.is_file():
        raise GGUFToolingError(
            f"llama.cpp's converters are not cached: {sdist} is missing (run `make setup`, which fetches the "
            f"{PACKAGE}=={version} sdist once)"
        )
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    wanted = tuple(prefix + name for name in CONVERTERS)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            rel = member.name.removeprefix(prefix)
            if member.name in wanted or (
                member.isfile() and rel.split("/")[0] in PACKAGES and rel != member.name
            ):
                member.name = rel
                members.append(member)
        tar.extractall(tmp, members=members, filter="data")
    missing = [name for name in CONVERTERS if not (tmp / name).is_file()]
    if missing:
        raise GGUFToolingError(f"{sdist} has no vendor/llama.cpp/{', '.join(missing)}")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


# The student's tokenizer is rebuilt from SmolLM2's GGUF by transformers, which saves it with the pre-tokenizer
# of the model class it is loaded for (GPT-2's regex for a Llama folder, Qwen2's for the tiny Qwen2). llama.cpp
# recognises pre-tokenizers by hashing the encoding of a probe text against a list of published models, so it
# refuses these; when the hash is unknown, the launcher names the pre-tokenizer by the regex the folder's
# tokenizer.json actually splits with, if that regex is one llama.cpp implements verbatim (SmolLM2's digit split
# before GPT-2's regex is llama.cpp's `smollm`); otherwise it fails.
# transformers also marks the rebuilt byte-level BPE `byte_fallback`, which makes the Llama converter write an
# SPM-style vocab that llama.cpp cannot tokenize with (it aborts); a byte-level tokenizer is written as gpt2.
LAUNCHER = r"""
import json, runpy, sys
from pathlib import Path
script, model_dir = sys.argv[1], Path(sys.argv[2])
sys.argv = sys.argv[1:]
sys.path.insert(0, str(Path(script).parent))
REGEX = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}
def regex_name(pre):
    if pre.get("type") == "ByteLevel" and pre.get("use_regex"):
        return "gpt-2"
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if (len(parts) == 2 and parts[0] == {**parts[0], "type": "Digits", "individual_digits": True}
            and parts[1] == {**parts[1], "type": "ByteLevel", "use_regex": True}):
        return "smollm"
    if len(parts) == 2 and parts[0].get("type") == "Split" and parts[1] == {**parts[1], "type": "ByteLevel", "use_regex": False}:
        return REGEX.get(parts[0].get("pattern", {}).get("Regex"))
    return None
spec = model_dir / "tokenizer.json"
byte_level = regex_name(json.loads(spec.read_text()).get("pre_tokenizer") or {}) if spec.is_file() else None
if script.endswith("convert_hf_to_gguf.py") and byte_level:
    from conversion import base
    known = base.TextModel.get_vocab_base_pre
    def get_vocab_base_pre(self, tokenizer):
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            print(f"pre-tokenizer not in llama.cpp's list; its regex is {byte_level!r}'s", file=sys.stderr)
            return byte_level
    def no_llama_hf_vocab(self):
        raise TypeError("a byte-level BPE tokenizer is converted as gpt2, whatever its byte_fallback flag says")
    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    base.TextModel._set_vocab_llama_hf = no_llama_hf_vocab
runpy.run_path(script, run_name="__main__")
"""


def _run_converter(script: str, args: list[str], out_file: Path) -> Path:
    folder = converters_dir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder / "gguf-py"), env.get("PYTHONPATH")]))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(folder / script), *args, "--outfile", str(out_file)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not out_file.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise GGUFToolingError(f"{script} exited with code {done.returncode}: {' | '.join(tail)}")
    return out_file


def convert_model(model_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """A transformers folder (config.json, safetensors, tokenizer) -> one GGUF file."""
    return _run_converter("convert_hf_to_gguf.py", [str(model_dir), "--outtype", outtype], out_file)


def convert_adapter(adapter_dir: Path, base_dir: Path, out_file: Path, outtype: str = "f16") -> Path:
    """A PEFT LoRA folder -> a GGUF adapter; `base_dir` gives the base config and tokenizer (no weights needed)."""
    args = [str(adapter_dir), "--base", str(base_dir), "--outtype", outtype]
    return _run_converter("convert_lora_to_gguf.py", args, out_file)


def quantize(src: Path, dst: Path, qtype: str = "q8_0", n_threads: int = 0) -> Path:
    """Quantize a GGUF with llama.cpp's own quantizer, through the Python bindings."""
    import ctypes

    import llama_cpp

    if qtype not in QUANT_TYPES:
        raise GGUFToolingError(f"quantization {qtype!r} not supported: use one of {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = n_threads
    dst.parent.mkdir(parents=True, exist_ok=True)
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if code != 0 or not dst.is_file():
        raise GGUFToolingError(f"llama_model_quantize {src.name} -> {qtype} returned {code}")
    return dst


def main() -> int:
    """`make setup`: fetch the sdist once and unpack the converters."""
    try:
        fetch_sdist()
        print(f"llama.cpp converters: {converters_dir()}")
    except (GGUFToolingError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
