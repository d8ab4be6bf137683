"""From the user's text to prompt tokens: chat template or plain completion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcli.engine.types import Message
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.model import Model


class PromptBuilder:
    """Decides once per model whether prompts use its chat template, and says so once
    when a model without a template has to fall back to plain completion."""

    def __init__(
        self, llm: Model, *, raw: bool, special: bool, instruction: str | None = None
    ) -> None:
        self.llm = llm
        self.completion = raw or not llm.has_chat_template
        self.special = special
        self.instruction = instruction
        if not raw and not llm.has_chat_template:
            console.notice("this model has no chat template; running a plain text completion")

    def tokens(self, text: str, system: str | None) -> list[int]:
        system = "\n\n".join(s for s in (system, self.instruction) if s) or None
        if self.completion:
            prompt = f"{system}\n\n{text}" if system else text
            return self.llm.completion_tokens(prompt, special=self.special)
        messages = [Message(role="system", content=system)] if system else []
        messages.append(Message(role="user", content=text))
        return self.llm.chat_tokens(messages, special=self.special)
