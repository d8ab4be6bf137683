"""From the user's text to prompt tokens: prompt template, chat template or plain
completion, and the thinking switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from llmcli.engine.reasoning import Thinking
from llmcli.engine.types import MEDIA_MARKER, GenerationResult, Message
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.prompt_templates import PromptTemplate


class PromptBuilder:
    """Decides once per model whether prompts use its chat template, and says so once
    when a model without a template has to fall back to plain completion."""

    def __init__(
        self,
        llm: Model,
        *,
        raw: bool,
        special: bool,
        instruction: str | None = None,
        thinking: Thinking | None = None,
        template: PromptTemplate | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.llm = llm
        self.completion = raw or not llm.has_chat_template
        self.special = special
        self.instruction = instruction
        self.thinking = thinking or Thinking()
        self.template = template
        self.variables = dict(variables or {})
        if not raw and not llm.has_chat_template:
            console.notice("this model has no chat template; running a plain text completion")

    def tokens(self, text: str | None, system: str | None) -> list[int]:
        return self.prompt(text, system)[0]

    def prompt(
        self,
        text: str | None,
        system: str | None,
        history: Sequence[Message] = (),
        *,
        media: int = 0,
    ) -> tuple[list[int], int]:
        """The prompt's tokens, and how many of them are the chat template's preamble
        (system prompt included), which prompts that differ only in `text` share; 0 for
        a plain completion, whose text is tokenized as one. `history`: earlier turns of
        the conversation, before `text`. `media`: attachments, each a MEDIA_SLOT before
        the text, as a chat request's image parts before its text part give (the
        projector adds what its model wants around each)."""
        if self.template is not None:
            own_system, text = self.template.render(text, self.variables)
            system = system if system is not None else own_system
        text = text or ""
        system = "\n\n".join(s for s in (system, self.instruction) if s) or None
        if media:
            text = MEDIA_MARKER * media + text
        if self.completion:
            prompt = f"{system}\n\n{text}" if system else text
            if media:
                tokenizer = self.llm.tokenizer
                return tokenizer.media_tokens(prompt, add_bos=True, special=self.special), 0
            return self.llm.completion_tokens(prompt, special=self.special), 0
        return self.llm.chat_prompt(
            self._messages(system, text, history),
            special=self.special,
            thinking=self.thinking,
            media=bool(media),
        )

    def messages(
        self, text: str | None, system: str | None, history: Sequence[Message] = ()
    ) -> list[Message]:
        """The chat messages `prompt` renders (prompt template and instruction applied),
        for a caller that renders them itself (the tool loop adds turns to them)."""
        if self.template is not None:
            own_system, text = self.template.render(text, self.variables)
            system = system if system is not None else own_system
        system = "\n\n".join(s for s in (system, self.instruction) if s) or None
        return self._messages(system, text or "", history)

    @staticmethod
    def _messages(system: str | None, text: str, history: Sequence[Message]) -> list[Message]:
        messages = [Message(role="system", content=system)] if system else []
        messages += history
        messages.append(Message(role="user", content=text))
        return messages


def thinking_budget_note(result: GenerationResult, max_tokens: int | None) -> str | None:
    """What to say on stderr when thinking ate the token budget; None otherwise."""
    if result.finish_reason != "length" or not result.reasoning_tokens:
        return None
    limit = f"max_tokens ({max_tokens})" if max_tokens else "the context"
    if not result.text:
        return (
            f"thinking used all {result.reasoning_tokens} tokens before the answer began, "
            f"and {limit} ended it (max_tokens counts thinking: raise it, or use --no-think)"
        )
    return (
        f"the answer was cut short by {limit}: {result.reasoning_tokens} of its "
        f"{result.completion_tokens} tokens went to thinking"
    )
