"""Tools a model may call from `run` and `chat`: Python functions from a file
(`python_file`), the tools of MCP servers (`mcp_client`, the only door to the `mcp`
SDK), the user's approval of each call (`approval`) and the loop that generates, reads
the calls, runs the approved ones and feeds their results back (`loop`).

How tools reach the model's template, how calls are read from its text and how a
grammar keeps them valid is the engine's (`engine.tool_calls`, `engine.tool_plan`),
shared with `serve`.
"""
