"""The tools of MCP servers (--mcp), through the official `mcp` SDK: the only module
that imports it.

"COMMAND ARGS" starts a server as a child process speaking over its stdin and stdout
(split like a shell would split it, but never run by one); an http:// or https:// URL
connects over streamable HTTP. The SDK is asynchronous: each server's connection lives
in one task of an event loop that runs in a thread of its own, and calls from the CLI
are handed to that loop. `close` ends the connection, which ends the child process (the
SDK starts it in a process group of its own, so Ctrl-C at the terminal does not reach
it: llmcli ends it on the way out).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shlex
import tempfile
import threading
from contextlib import AsyncExitStack, suppress
from typing import Any, TextIO, cast

from llmcli.errors import ToolServerError, UsageError
from llmcli.tools.base import Tool, ToolFailed

# How long a server may take to start and list its tools.
START_TIMEOUT_S = 30.0


class McpServer:
    """One MCP server, connected by `start`, ended by `close`."""

    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self.remote = self.spec.startswith(("http://", "https://"))
        if not self.remote:
            try:
                self._argv = shlex.split(self.spec)
            except ValueError as exc:
                raise UsageError(f"--mcp {spec!r}: {exc}") from exc
            if not self._argv:
                raise UsageError("--mcp needs a command or an http(s):// URL")
        self.label = self.spec
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"mcp {self.label}", daemon=True
        )
        self._closing: asyncio.Event | None = None
        self._connection: concurrent.futures.Future[None] | None = None
        self._session: Any = None
        # The child's stderr, kept to say why it failed rather than mixed into ours.
        self._errlog = cast(
            TextIO,
            tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"),  # noqa: SIM115
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> list[Tool]:
        """Connect, and list the server's tools. ToolServerError when it cannot start."""
        self._thread.start()
        ready: asyncio.Future[list[Any]] = self._loop.create_future()
        self._connection = asyncio.run_coroutine_threadsafe(self._connect(ready), self._loop)

        async def wait_ready() -> list[Any]:
            return await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)

        try:
            listed = asyncio.run_coroutine_threadsafe(wait_ready(), self._loop).result()
        except TimeoutError:
            self.close()
            raise ToolServerError(
                f"MCP server {self.label} did not start within {START_TIMEOUT_S:g} s"
            ) from None
        except Exception as exc:
            why = self._why(exc)  # before close, which drops the child's stderr
            self.close()
            raise ToolServerError(f"MCP server {self.label} failed to start: {why}") from None
        return [self._tool(t) for t in listed]

    async def _connect(self, ready: asyncio.Future[list[Any]]) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client

        self._closing = asyncio.Event()
        try:
            async with AsyncExitStack() as stack:
                if self.remote:
                    transport = streamable_http_client(self.spec)
                else:
                    # The child gets llmcli's environment, as a command run from the
                    # user's shell would (the SDK's default passes only a few variables,
                    # and servers read their keys from the environment).
                    params = StdioServerParameters(
                        command=self._argv[0], args=self._argv[1:], env=dict(os.environ)
                    )
                    transport = stdio_client(params, errlog=self._errlog)
                read, write = await stack.enter_async_context(transport)
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
                self._session = session
                ready.set_result(list(listed.tools))
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            raise
        finally:
            self._session = None

    def close(self) -> None:
        """End the connection (and the child process), then the loop's thread."""
        if not self._thread.is_alive():
            return
        closing = self._closing
        if closing is not None:
            self._loop.call_soon_threadsafe(closing.set)
        if self._connection is not None:
            # An error here says it was lost already: what matters is that it is over.
            with suppress(BaseException):
                self._connection.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._errlog.close()

    # -- calls -------------------------------------------------------------------------

    def _tool(self, listed: Any) -> Tool:
        name = str(listed.name)
        schema = listed.input_schema if isinstance(listed.input_schema, dict) else {}

        def call(arguments: dict[str, Any], timeout: float) -> str:
            return self._call(name, arguments, timeout)

        return Tool(
            name,
            (listed.description or "").strip(),
            schema or {"type": "object"},
            call,
            f"MCP server {self.label}",
        )

    def _call(self, name: str, arguments: dict[str, Any], timeout: float) -> str:
        session = self._session
        if session is None:
            raise ToolServerError(f"MCP server {self.label} is gone")
        future = asyncio.run_coroutine_threadsafe(
            session.call_tool(name, arguments, read_timeout_seconds=timeout), self._loop
        )
        try:
            result = future.result(timeout + 5)
        except Exception as exc:
            if self._lost(exc):
                raise ToolServerError(
                    f"MCP server {self.label} was lost during a call to {name}: {self._why(exc)}"
                ) from None
            if isinstance(exc, TimeoutError) or "timed out" in str(exc):
                raise ToolFailed(
                    f"error: the tool {name} did not finish within {timeout:g} s"
                ) from None
            raise ToolFailed(f"error: {self._why(exc)}") from None
        text = _content_text(result)
        if result.is_error:
            raise ToolFailed(f"error: {text}")
        return text

    def _lost(self, exc: Exception) -> bool:
        """Whether the call failed because the connection ended (the server died or
        went away), not because of the call itself."""
        from mcp.shared.exceptions import MCPError
        from mcp_types.jsonrpc import CONNECTION_CLOSED

        if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
            return True
        connection = self._connection
        return connection is None or connection.done()

    def _why(self, exc: BaseException) -> str:
        """One line: the child's last line on stderr if it wrote one, else the error."""
        # anyio's task groups wrap the error in groups (of one, here).
        while getattr(exc, "exceptions", None):
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        said = ""
        if not self.remote and not self._errlog.closed:
            self._errlog.flush()
            self._errlog.seek(0)
            lines = [line.strip() for line in self._errlog.read().splitlines() if line.strip()]
            said = lines[-1] if lines else ""
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            text = f"no such command: {self._argv[0]}"
        elif isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        return f"{text} ({said})" if said and said not in text else text


def _content_text(result: Any) -> str:
    """A call's result as text: its text blocks, or its structured content as JSON."""
    parts = []
    for block in result.content:
        kind = getattr(block, "type", "")
        parts.append(block.text if kind == "text" else f"[{kind} content]")
    if not parts and result.structured_content is not None:
        import json

        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)
