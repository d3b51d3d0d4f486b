"""POST /ask: questions against an encoded knowledge set, answered with its delta applied."""

import time
from typing import cast

from fastapi import APIRouter, Request

from service.api.deps import KnowledgeDep, SettingsDep, TenantDep
from service.api.disconnect import until_disconnected
from service.api.errors import COMMON, NOT_FOUND, TOO_LARGE
from service.metrics import ASK_SECONDS
from service.schemas import AnswerOut, AskRequestBase, AskResponse, request_models
from service.settings import Settings


def build_router(settings: Settings) -> APIRouter:
    _, ask_request = request_models(settings)
    router = APIRouter(tags=["ask"])

    @router.post(
        "/ask",
        response_model=AskResponse,
        summary="Answer questions from an encoded knowledge set",
        description=(
            "Questions run as batched forwards with the knowledge set's delta applied; the facts are not in "
            "the prompt. With `choices`, each is scored and probabilities are returned; without, a model that "
            "declares a label set answers within it, others generate. An ask whose prompt tokens over "
            "questions x choices exceed max_ask_tokens is a 413."
        ),
        responses={**COMMON, **NOT_FOUND, **TOO_LARGE},
    )
    async def ask(
        body: ask_request,  # type: ignore[valid-type]
        http: Request,
        knowledge: KnowledgeDep,
        tenant: TenantDep,
        cfg: SettingsDep,
    ) -> AskResponse:
        started = time.perf_counter()
        request = cast(AskRequestBase, body)
        # Lets an InputTooLong error point at the field the caller actually used.
        http.state.question_field = "question" if request.question is not None else "questions"
        answers = await until_disconnected(
            http,
            knowledge.ask(
                tenant,
                request.knowledge_id,
                request.question_list(),
                choices=request.choices,
                max_new_tokens=request.max_new_tokens or min(cfg.default_new_tokens, cfg.max_new_tokens),
            ),
        )
        elapsed = time.perf_counter() - started
        ASK_SECONDS.observe(elapsed)
        return AskResponse(
            knowledge_id=request.knowledge_id,
            answers=[AnswerOut(question=a.question, answer=a.answer, scores=a.scores) for a in answers],
            ask_ms=round(elapsed * 1000.0, 3),
        )

    return router
