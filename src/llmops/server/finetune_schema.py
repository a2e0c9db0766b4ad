"""Request bodies and answers of the fine-tuning routes (/api/finetune)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from llmops.server.admin_schema import NO_NUL
from llmops.server.dataset_schema import JsonNumber
from llmops.server.prompt_schema import whole_number

_Short = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
_Path = Annotated[str, Field(min_length=1, max_length=4000, pattern=NO_NUL)]
_Ref = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(@([0-9]{1,9}|latest))?$"
_Whole = Annotated[StrictInt, BeforeValidator(whole_number)]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]

# the example names the run the schemathesis test seeds (tests/e2e/test_schemathesis.py)
FinetunePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="A fine-tuning run id or name.",
        examples=["support-lora"],
    ),
]


class LoraIn(BaseModel):
    """LoRA hyper-parameters; each left out takes the default shown."""

    model_config = ConfigDict(extra="forbid")

    rank: Annotated[_Whole, Field(ge=1, le=1024)] = 8
    alpha: Annotated[JsonNumber, Field(gt=0, le=100_000)] = 16.0
    dropout: Annotated[JsonNumber, Field(ge=0, lt=1)] = 0.05
    target_modules: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,100}$")]] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1, max_length=32
    )
    epochs: Annotated[JsonNumber, Field(gt=0, le=1000)] = 1.0
    max_steps: Annotated[_Whole, Field(ge=1, le=10_000_000)] | None = None
    learning_rate: Annotated[JsonNumber, Field(gt=0, le=1)] = 2e-4
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: Annotated[JsonNumber, Field(ge=0, lt=1)] = 0.03
    batch_size: Annotated[_Whole, Field(ge=1, le=4096)] = 8
    gradient_accumulation: Annotated[_Whole, Field(ge=1, le=4096)] = 1
    max_seq_length: Annotated[_Whole, Field(ge=16, le=131_072)] = 512
    seed: Annotated[_Whole, Field(ge=0, le=2**31 - 1)] = 0
    eval_every: Annotated[_Whole, Field(ge=1, le=10_000_000)] | None = None
    checkpoint_every: Annotated[_Whole, Field(ge=1, le=10_000_000)] = 50


class FinetuneIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "base": "smollm2",
                "dataset": "support-qa@1",
                "lora": {"rank": 8, "epochs": 1, "max_steps": 2, "batch_size": 2},
                "quantize": ["q4_k_m"],
                "register_as": "support-model",
                "name": "support-lora-2",
            }
        },
    )

    base: _Path = Field(
        "smollm2", description="smollm2 (embedded) or a Hugging Face model folder on the server."
    )
    dataset: Annotated[str, Field(pattern=_Ref)] | None = Field(None, description="NAME or NAME@VERSION.")
    data_file: _Path | None = Field(None, description="A JSONL file on the server (instead of a dataset).")
    validation_file: _Path | None = Field(None, description="A JSONL validation file on the server.")
    validation_split: Annotated[JsonNumber, Field(gt=0, lt=1)] = 0.1
    system: Annotated[str, Field(max_length=20_000, pattern=NO_NUL)] | None = None
    lora: LoraIn = Field(default_factory=LoraIn)
    metrics: list[Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=20, description="Evaluation metrics scored before/after."
    )
    quantize: list[Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[a-z0-9_]+$")]] = Field(
        default=["f16", "q8_0", "q4_k_m"], max_length=10, description="GGUF levels (empty: no GGUF)."
    )
    register_as: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")] | None = Field(
        None, description="Register the tuned model as a new version of this registry model."
    )
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")] | None = None


class FinetuneOut(BaseModel):
    id: str
    name: str | None
    base_model: str
    dataset: str | None
    data_file: str | None
    validation_file: str | None
    params: dict[str, Any]
    options: dict[str, Any]
    status: Status
    job_id: str | None
    workdir: str
    progress: dict[str, Any] | None = Field(
        description="The latest report: stage, step, total_steps, train_loss, val_loss, tokens_per_second, "
        "eta_seconds, ..."
    )
    result: dict[str, Any] | None = Field(
        description="When finished: data, training, evaluation (before/after), quantization, artefacts."
    )
    model_version: str | None = Field(description="The registry version it produced (NAME@N).")
    error: str | None
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    curves: list[dict[str, Any]] | None = None


class FinetuneListOut(BaseModel):
    data: list[FinetuneOut]


class LogLineOut(BaseModel):
    seq: int
    at: str
    level: str
    message: str


class LogPageOut(BaseModel):
    data: list[LogLineOut]
