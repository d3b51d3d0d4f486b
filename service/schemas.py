"""Request/response models of the HTTP API; request limits come from Settings and show up in OpenAPI."""

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.settings import Settings

KNOWLEDGE_ID_PATTERN = r"^[0-9a-f]{64}$"
KnowledgeId = Annotated[
    str,
    Field(
        pattern=KNOWLEDGE_ID_PATTERN,
        description="Content address of a knowledge set (sha256 hex), as returned by /encode.",
        examples=["3f1c9a0e" * 8],
    ),
]

_EXAMPLE_FACTS: list[Any] = [
    "Anne is kind.",
    "Bob is big.",
    "If someone is big then they are strong.",
    "If someone is strong and kind then they are nice.",
]
_ALLOWED_CONTROL = frozenset("\t\n\r")


# ----------------------------------------------------------------------------- validators


def _text_validator(what: str, limit_name: str, limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > limit:
            raise PydanticCustomError(
                "limit_exceeded",
                "{what} has {count} characters, over the limit {limit_name}={limit}",
                {"what": what, "count": len(value), "limit_name": limit_name, "limit": limit},
            )
        if not value.strip():
            raise PydanticCustomError("blank", "{what} must not be empty or blank", {"what": what})
        for char in value:
            category = unicodedata.category(char)
            # Lone surrogates cannot be encoded to UTF-8 (they would crash the tokenizer), and
            # control characters have no business in natural-language facts.
            if category == "Cs" or (category == "Cc" and char not in _ALLOWED_CONTROL):
                raise PydanticCustomError(
                    "invalid_character",
                    "{what} contains a disallowed character {code}",
                    {"what": what, "code": f"U+{ord(char):04X}"},
                )
        return value

    return AfterValidator(check)


def _count_validator(what: str, limit_name: str, limit: int) -> BeforeValidator:
    # Before validation, so a 10,000-item list is refused without validating each item.
    def check(value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) > limit:
            raise PydanticCustomError(
                "limit_exceeded",
                "{count} {what} given, over the limit {limit_name}={limit}",
                {"what": what, "count": len(value), "limit_name": limit_name, "limit": limit},
            )
        return value

    return BeforeValidator(check)


def _text(what: str, limit_name: str, limit: int, description: str) -> Any:
    return Annotated[
        str,
        _text_validator(what, limit_name, limit),
        Field(description=description, json_schema_extra={"minLength": 1, "maxLength": limit}),
    ]


def _text_list(item: Any, what: str, limit_name: str, limit: int, description: str) -> Any:
    return Annotated[
        list[item],
        _count_validator(what, limit_name, limit),
        Field(min_length=1, description=description, json_schema_extra={"maxItems": limit}),
    ]


# ----------------------------------------------------------------------------- requests


class EncodeRequestBase(BaseModel):
    """POST /encode body (the limits are filled in from Settings by request_models)."""

    model_config = ConfigDict(extra="forbid")

    facts: list[str]
    ttl_s: int | None = None


class AskRequestBase(BaseModel):
    """POST /ask body: one `question` or a list of `questions`, never both."""

    model_config = ConfigDict(extra="forbid")

    knowledge_id: KnowledgeId
    question: str | None = None
    questions: list[str] | None = None
    choices: list[str] | None = None
    max_new_tokens: int | None = None

    @model_validator(mode="after")
    def _one_question_field(self) -> "AskRequestBase":
        if (self.question is None) == (self.questions is None):
            raise PydanticCustomError("question_xor_questions", "give exactly one of 'question' or 'questions'")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise PydanticCustomError("duplicate_choices", "'choices' must not contain duplicates")
        return self

    def question_list(self) -> list[str]:
        return [self.question] if self.question is not None else list(self.questions or [])


def request_models(settings: Settings) -> tuple[type[EncodeRequestBase], type[AskRequestBase]]:
    """Subclasses of the request models whose limits are this server's settings."""
    s = settings
    fact_t = _text("fact", "max_fact_chars", s.max_fact_chars, "One fact or rule in natural language.")
    question_t = _text("question", "max_question_chars", s.max_question_chars, "A question about the knowledge set.")
    choice_t = _text("choice", "max_choice_chars", s.max_choice_chars, "One candidate answer to score.")
    facts_t = _text_list(fact_t, "facts", "max_facts", s.max_facts, "The knowledge set; order and duplicates ignored.")
    questions_t = _text_list(
        question_t, "questions", "max_questions", s.max_questions, "Questions answered in one batched forward."
    )
    choices_t = _text_list(
        choice_t, "choices", "max_choices", s.max_choices, "Score these answers; default: the model's label set."
    )

    class EncodeRequest(EncodeRequestBase):
        model_config = ConfigDict(
            json_schema_extra={"examples": [{"facts": _EXAMPLE_FACTS, "ttl_s": 3600}]},
        )

        facts: facts_t  # type: ignore[valid-type]
        ttl_s: int | None = Field(
            None,
            strict=True,  # JSON integers only: lax mode would take true as 1 and "60" as 60
            ge=1,
            le=s.max_ttl_s,
            description=f"Seconds the encoded delta stays cached (default {s.delta_ttl_s}); facts never expire.",
        )

    class AskRequest(AskRequestBase):
        model_config = ConfigDict(
            json_schema_extra={
                "examples": [
                    {"knowledge_id": "3f1c9a0e" * 8, "question": "Bob is strong."},
                    {
                        "knowledge_id": "3f1c9a0e" * 8,
                        "questions": ["Bob is strong.", "Anne is not nice."],
                        "choices": ["True", "False", "Unknown"],
                    },
                ]
            },
        )

        question: question_t | None = None  # type: ignore[valid-type]
        questions: questions_t | None = None  # type: ignore[valid-type]
        choices: choices_t | None = None  # type: ignore[valid-type]
        max_new_tokens: int | None = Field(
            None,
            strict=True,
            ge=1,
            le=s.max_new_tokens,
            description=f"Generation bound when answers are generated (default {s.default_new_tokens}).",
        )

    return EncodeRequest, AskRequest


# ----------------------------------------------------------------------------- responses


class EncodeResponse(BaseModel):
    knowledge_id: str
    n_facts: int = Field(description="Facts after normalisation (duplicates removed).")
    cached: bool = Field(description="True when this request ran no inner loop.")
    encode_ms: float = Field(description="Inner-loop time spent for this request (0 when cached).")
    delta_bytes: int
    model: str
    recall: float = Field(description="Share of the facts the adapted model reproduces.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "knowledge_id": "3f1c9a0e" * 8,
                    "n_facts": 4,
                    "cached": False,
                    "encode_ms": 91.5,
                    "delta_bytes": 1_050_000,
                    "model": "reckoning-full-k2",
                    "recall": 1.0,
                }
            ]
        }
    )


class AnswerOut(BaseModel):
    question: str
    answer: str
    scores: dict[str, float] | None = Field(description="Probability per choice (sums to 1), or null when generated.")


class AskResponse(BaseModel):
    knowledge_id: str
    answers: list[AnswerOut]
    ask_ms: float

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "knowledge_id": "3f1c9a0e" * 8,
                    "answers": [
                        {
                            "question": "Bob is strong.",
                            "answer": "True",
                            "scores": {"True": 0.97, "False": 0.01, "Unknown": 0.02},
                        }
                    ],
                    "ask_ms": 6.2,
                }
            ]
        }
    )


class KnowledgeInfo(BaseModel):
    knowledge_id: str
    n_facts: int
    created: datetime
    model: str
    fingerprint: str
    delta_cached: bool
    ttl_s: float | None = Field(description="Seconds left before the cached delta expires (null: none cached).")
    delta_bytes: int
    recall: float
    final_inner_loss: float
    facts: list[str] | None = Field(None, description="The normalised facts, with ?include_facts=true.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: str | None = None
    fingerprint: str | None = None
    labels: list[str] | None = None
    store: str | None = None
    detail: str | None = None


class ErrorResponse(BaseModel):
    detail: Any = Field(description="What went wrong, naming the field or limit.")
