"""`llmcli serve`: an OpenAI-compatible HTTP server. The only package that imports
starlette and uvicorn, and only `llmcli serve` imports it."""
