"""How much model work a request asks for, counted in tokens before any of it runs.

A fact longer than the model encodes (it would be cut without a word), an ask over RECKONING_MAX_ASK_TOKENS,
a prompt longer than the context: each is refused here, on its own tokenizer thread, so the refusal never
waits behind the torch worker and never touches its tokenizer (a fast tokenizer is not meant to be shared
between threads).
"""

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reckoning_core.knowledge_ids import normalize_fact
from reckoning_core.reckoner import Reckoner


class FactTooLong(ValueError):
    """A fact with more tokens than the model's inner loop reads."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"fact {index} has {tokens} tokens as the model writes it; the model encodes at most {limit} tokens "
            f"per fact (max_fact_tokens of the model) and would silently drop the rest: split it into shorter facts"
        )
        self.index = index
        self.tokens = tokens
        self.limit = limit


class InputTooLong(ValueError):
    """A question (with its prompt and longest choice) does not fit the model's context window."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"question {index} needs {tokens} tokens with its prompt; the model's context is {limit}")
        self.index = index
        self.tokens = tokens
        self.limit = limit


class AskTooLarge(ValueError):
    """An ask whose forward passes would hold more tokens than RECKONING_MAX_ASK_TOKENS."""

    def __init__(self, tokens: int, limit: int, questions: int, choices: int) -> None:
        per = f"{questions} question(s) x {choices} choice(s)" if choices else f"{questions} generated answer(s)"
        super().__init__(
            f"this ask needs {tokens:,} prompt tokens ({per}), over the limit max_ask_tokens={limit:,}; "
            "send fewer questions or choices per request"
        )
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True)
class AskPlan:
    """An ask that fits: the tokens each question costs (what the engine splits micro-batches by)."""

    costs: list[int]

    @property
    def tokens(self) -> int:
        return sum(self.costs)


class Sizer:
    """Counts tokens with a private copy of the model's tokenizer, on one thread of its own."""

    def __init__(self, reckoner: Reckoner, max_ask_tokens: int) -> None:
        self.tokenizer = copy.deepcopy(reckoner.tokenizer)
        self.prompt = reckoner.config.prompt
        self.labels = reckoner.labels
        self.fact_limit = reckoner.max_fact_tokens
        config = getattr(reckoner.model, "config", None)
        context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.context: int | None = int(context) if context else None
        self.max_ask_tokens = max_ask_tokens
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reckoning-tokenize")

    def _counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def check_facts_sync(self, facts: list[str]) -> None:
        """FactTooLong for the first fact (index in the request) the inner loop would cut."""
        indexed = [(i, normalize_fact(f)) for i, f in enumerate(facts)]
        indexed = [(i, f) for i, f in indexed if f]
        counts = self._counts([self.prompt.fact_text(f) for _, f in indexed])
        for (i, _), n in zip(indexed, counts, strict=True):
            if n > self.fact_limit:
                raise FactTooLong(i, n, self.fact_limit)

    def plan_ask_sync(self, questions: list[str], choices: list[str] | None, max_new_tokens: int) -> AskPlan:
        """The tokens each question costs: its prompt once per choice plus the choices (scored), or its prompt
        plus max_new_tokens (generated). AskTooLarge over max_ask_tokens, InputTooLong past the context."""
        options = choices or self.labels or []
        prompts = [1 + n for n in self._counts([self.prompt.question_prompt(q) for q in questions])]  # 1 = <bos>
        choice_tokens = self._counts([self.prompt.answer_prefix + c for c in options])
        tail = max(choice_tokens, default=0)
        if self.context is not None:
            for i, n in enumerate(prompts):
                if n + tail > self.context:
                    raise InputTooLong(i, n + tail, self.context)
        if options:
            costs = [len(options) * n + sum(choice_tokens) for n in prompts]
        else:
            costs = [n + max_new_tokens for n in prompts]
        plan = AskPlan(costs)
        if plan.tokens > self.max_ask_tokens:
            raise AskTooLarge(plan.tokens, self.max_ask_tokens, len(questions), len(options))
        return plan

    async def check_facts(self, facts: list[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.check_facts_sync, facts)

    async def plan_ask(self, questions: list[str], choices: list[str] | None, max_new_tokens: int) -> AskPlan:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self.plan_ask_sync, questions, choices, max_new_tokens
        )

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
