"""The QA record every stage after generation reads and writes (one JSONL line each)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk", "compliance"]


class TeacherOutput(BaseModel):
    """What a teacher must return; `fact_key` names the question intent it chose from the menu it was shown."""

    model_config = ConfigDict(extra="ignore")

    fact_key: str = Field(description="the key of the question intent chosen from the menu")
    question: str = Field(min_length=5)
    reasoning: str
    answer: str
    final_answer: str = Field(
        min_length=1, description="short and machine-checkable: a number with unit, an MMSI, a label"
    )


class Verification(BaseModel):
    status: Literal["correct", "incorrect", "unverifiable"]
    error_type: str | None = None
    detail: str = ""


class QAPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    context_id: str
    category: Category
    teacher: str
    question: str
    reasoning: str
    answer: str
    final_answer: str
    facts_ref: list[str]
    verification: Verification | None = None
    revised_from: str | None = None
    split: Literal["train", "val", "test"] | None = None
    phrasing: Literal["seen", "unseen"] | None = Field(
        None, description="rules teacher: 'unseen' = a held-out question wording, kept for test only"
    )
