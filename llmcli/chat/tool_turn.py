"""A chat turn with tools: the answer comes from the tool loop, and every turn it made
(assistant turns with their calls, the tools' results, the answer) joins the
conversation, so that the chat file keeps them and a resumed chat shows them to the
model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.chat.conversation import Conversation
    from llmcli.engine.model import Model
    from llmcli.engine.types import Decoding
    from llmcli.tools.loop import LoopResult, OpenWriter
    from llmcli.tools.toolbox import Toolbox


def reply_with_tools(
    conv: Conversation,
    llm: Model,
    box: Toolbox,
    decoding: Decoding,
    *,
    writer: OpenWriter,
    interactive: bool,
) -> LoopResult | None:
    """Answer the last user message with tools; its turns join `conv`. Ctrl-C at the
    terminal drops the message and whatever its answer had called (None): the
    conversation goes back to before it."""
    from llmcli.tools.loop import answer_with_tools

    try:
        done = answer_with_tools(
            llm,
            conv.messages(),
            box,
            conv.sampling,
            thinking=conv.thinking,
            decoding=decoding,
            writer=writer,
        )
    except KeyboardInterrupt:
        if not interactive:
            raise
        conv.drop_unanswered()
        console.notice("interrupted; the message and its tool calls were not kept")
        return None
    conv.add(done.messages)
    return done
