"""Fitting a conversation into the context window: the oldest turns go first, and
room is kept for the answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmcli.chat.conversation import Conversation
from llmcli.engine.types import Message
from llmcli.errors import LlmcliError


class MessageTooLong(LlmcliError):
    """One message (with the system prompt) does not fit in the context on its own."""

    def __init__(self, tokens: int, budget: int, n_ctx: int) -> None:
        super().__init__(
            f"this message is {tokens} tokens with the system prompt, but only {budget} of "
            f"the {n_ctx}-token context are left once room is kept for the answer",
            hint=f"shorten it, or restart the chat with --ctx {_round_up(tokens * 2)}",
        )
        self.tokens = tokens
        self.budget = budget


def answer_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer: max_tokens, else a quarter of the context; never
    more than half, so a huge max_tokens still leaves room for the conversation."""
    wanted = max_tokens if max_tokens is not None else n_ctx // 4
    return max(1, min(wanted, n_ctx // 2))


@dataclass(frozen=True)
class Fit:
    tokens: list[int]
    dropped_messages: int


def fit_context(
    conversation: Conversation,
    render: Callable[[Sequence[Message]], list[int]],
    n_ctx: int,
) -> Fit:
    """Make the prompt fit, dropping the oldest turns (the system prompt stays).

    Once trimming is needed it goes down to three quarters of the budget rather than
    just under it: each trim changes the prompt's prefix and forces the whole history
    to be evaluated again, so trimming a little more means doing that rarely.
    Raises MessageTooLong, changing nothing, when the last message cannot fit at all.
    """
    budget = n_ctx - answer_reserve(n_ctx, conversation.sampling.max_tokens)
    tokens = render(conversation.messages())
    if len(tokens) <= budget:
        return Fit(tokens, 0)
    last = conversation.turns[-1:] if conversation.turns else []
    head = [Message(role="system", content=conversation.system)] if conversation.system else []
    alone = len(render(head + last))
    if alone > budget:
        raise MessageTooLong(alone, budget, n_ctx)
    goal = budget * 3 // 4
    dropped = 0
    while len(tokens) > goal and len(conversation.turns) > 1:
        # Drop one whole exchange so that the history still starts with a user turn.
        cut = 1
        while cut < len(conversation.turns) - 1 and conversation.turns[cut]["role"] != "user":
            cut += 1
        del conversation.turns[:cut]
        dropped += cut
        tokens = render(conversation.messages())
    conversation.dirty = True
    return Fit(tokens, dropped)


def _round_up(n: int, step: int = 1024) -> int:
    return max(step, ((n + step - 1) // step) * step)
