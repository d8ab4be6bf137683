"""An MCP server for the tests, written with the official SDK: over stdio by default,
over streamable HTTP on 127.0.0.1 with `http PORT`. It writes its process id into the
file $MCP_PID names (when set), so a test can see whether it is still running."""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("llmcli-test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def die(code: int) -> str:
    """Ends the server in the middle of the call."""
    os._exit(3)


@server.tool()
def slow(seconds: int) -> str:
    """Takes a long time."""
    time.sleep(600)
    return "done"


if __name__ == "__main__":
    if os.environ.get("MCP_PID"):
        with open(os.environ["MCP_PID"], "w", encoding="utf-8") as out:
            out.write(str(os.getpid()))
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
