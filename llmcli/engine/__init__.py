"""The seam around llama-cpp-python: the only package that imports `llama_cpp`.

Importing this package is cheap; the engine itself loads in `llmcli.engine.model`,
which callers import inside functions so that start-up stays fast.
"""

from llmcli.engine.types import GenerationResult, LoadOptions, Message, Sampling

__all__ = ["GenerationResult", "LoadOptions", "Message", "Sampling"]
