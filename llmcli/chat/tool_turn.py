"""A chat turn with tools: the answer comes from the tool loop, and every turn it made
(assistant turns with their calls, the tools' results, the answer) joins the
conversation, so that the chat file keeps them and a resumed chat shows them to the
model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.chat.session import ChatSession
    from llmcli.engine.types import GenerationResult
    from llmcli.tools.loop import Write
    from llmcli.tools.toolbox import Toolbox


def reply_with_tools(session: ChatSession, box: Toolbox) -> GenerationResult | None:
    """Answer the last user message with tools. Ctrl-C at the terminal drops the message
    and whatever its answer had called: the conversation goes back to before it."""
    from llmcli.tools.loop import answer_with_tools

    conv = session.conv

    @contextmanager
    def writer() -> Iterator[Write]:
        with console.ReplyWriter(
            markdown=session.markdown, show_thinking=session.show_thinking, out=session.out
        ) as reply:
            yield reply.write

    started = time.perf_counter()
    try:
        done = answer_with_tools(
            session.llm,
            conv.messages(),
            box,
            conv.sampling,
            thinking=conv.thinking,
            decoding=session.decoding,
            writer=writer,
        )
    except KeyboardInterrupt:
        if not session.interactive:
            raise
        conv.drop_unanswered()
        console.notice("interrupted; the message and its tool calls were not kept")
        return None
    conv.add(done.messages)
    session.last = done.result
    session.write_out("\n")  # a blank line between an answer and what follows
    session.log_answer(done.result, started)
    return done.result
