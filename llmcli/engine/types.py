"""Plain data passed across the engine seam (no llama_cpp import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from llmcli.config import options_table
from llmcli.config.options_table import DEFAULT_CTX

if TYPE_CHECKING:
    from llmcli.engine.logprobs import TokenLogprob

__all__ = [
    "DEFAULT_CTX",
    "Decoding",
    "FinishReason",
    "GenerationResult",
    "LoadOptions",
    "Message",
    "Sampling",
]


def _default(name: str) -> Any:
    """A sampling default, as the option table declares it."""
    return options_table.BY_NAME[name].default


class _Turn(TypedDict):
    role: str
    content: str


class Message(_Turn, total=False):
    # An assistant's calls, as OpenAI sends them but with the arguments parsed (the way
    # chat templates read them), and the call a "tool" message answers.
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    # Files attached to a chat message (paths), one MEDIA_MARKER each in its content.
    attachments: list[str]


# Where an attachment goes in a prompt's text (llama.cpp's own media marker), and what
# stands for it among the prompt's tokens until the projector expands it; the positions of
# an image's embeddings hold it too, since no token of any vocabulary is negative.
MEDIA_MARKER = "<__media__>"
MEDIA_SLOT = -1

# KV cache positions allocated first where a context may grow (LoadOptions.start_ctx):
# most prompts and answers fit, and allocating 4,096 takes several times as long.
START_CTX = 1024


@dataclass(frozen=True)
class LoadOptions:
    path: Path
    n_ctx: int = DEFAULT_CTX
    # None: every usable core (see config.usable_cores).
    n_threads: int | None = None
    # None: all layers when this build can offload to a GPU, else 0.
    n_gpu_layers: int | None = None
    # 256 evaluates prompts as fast as 512 here and halves what the prompt cache must
    # re-evaluate to stay exact (it reuses whole batches only).
    n_batch: int = 256
    flash_attn: bool = True
    verbose: bool = False
    embedding: bool = False
    # With embedding: "mean" averages the token vectors (right for generative models);
    # "model" uses the pooling the GGUF declares (CLS, last token...) for embedding models;
    # "rank" attaches a reranker's classification head (engine.rerank).
    pooling: Literal["mean", "model", "rank"] = "mean"
    # Tokenizer only, no weights: fast even for big models, but nothing can be evaluated.
    vocab_only: bool = False
    # A chat template to use instead of the one in the GGUF (the text of a Jinja file).
    chat_template: str | None = None
    # RPC workers ("host:port") whose devices share the model's layers with this machine.
    rpc: tuple[str, ...] = ()
    # Each device's share of the layers (llama.cpp's --tensor-split); None: by free memory.
    tensor_split: tuple[float, ...] | None = None
    # The KV cache's element types for keys and values (llama.cpp's type_k, type_v):
    # "f16", "q8_0" or "q4_0". A quantized V cache needs flash attention.
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    # A LoRA adapter GGUF applied to every context of the model, at this scale.
    lora: Path | None = None
    lora_scale: float = 1.0
    # Context extension: positions stretched `rope_scale` times (rope_freq_scale is its
    # inverse), linearly or with YaRN; None: the model's own scaling. `yarn_orig_ctx` is
    # the context the model was trained on (0: llama.cpp reads it from the model).
    rope_scale: float | None = None
    yarn: bool = False
    yarn_orig_ctx: int = 0
    # Allocate a KV cache of this many positions first, and one of n_ctx only once a
    # prompt and its answer need more (see Model.make_room): a one-shot answer rarely
    # needs the whole context, and allocating it costs time in proportion. None: n_ctx.
    start_ctx: int | None = None

    def engine_flags(self) -> dict[str, str | float | None]:
        """The cache, adapter and context-extension settings, as `bench --json` and
        `doctor` report them: only what differs from llama.cpp's defaults."""
        flags: dict[str, str | float | None] = {}
        if (self.cache_type_k, self.cache_type_v) != ("f16", "f16"):
            flags["cache_type_k"] = self.cache_type_k
            flags["cache_type_v"] = self.cache_type_v
        if self.lora is not None:
            flags["lora"] = str(self.lora)
            flags["lora_scale"] = self.lora_scale
        if self.rope_scale is not None or self.yarn:
            flags["rope_scaling"] = "yarn" if self.yarn else "linear"
            flags["rope_scale"] = self.rope_scale
        return flags


@dataclass(frozen=True)
class Sampling:
    temperature: float = _default("temperature")
    top_p: float = _default("top_p")
    top_k: int = _default("top_k")
    min_p: float = _default("min_p")
    repeat_penalty: float = _default("repeat_penalty")
    seed: int | None = _default("seed")
    max_tokens: int | None = _default("max_tokens")
    stop: tuple[str, ...] = ()
    # A GBNF grammar the answer must follow (JSON schemas are converted to one).
    grammar: str | None = None
    # With a grammar: a regular expression that the text generated so far must match
    # before the grammar applies, from its first group on (llama.cpp's lazy grammar: a
    # tool call constrained once it opens). None: the grammar applies from the start.
    # Honoured by the Scheduler and by Model.generate alike.
    grammar_trigger: str | None = None


@dataclass(frozen=True)
class Decoding:
    """Speed-ups: prompt-lookup decoding (used only for greedy choice, where it gives
    plain decoding's answer up to near-ties: README, Speed-ups) and the on-disk prompt cache
    (the exact answer: it reuses only whole batches)."""

    lookup: bool = True
    # The folder of the on-disk prompt cache (the engine keeps the live cache); None: off.
    prompt_cache: Path | None = None
    # Leading prompt tokens that are the chat template's preamble (system prompt
    # included): evaluated as a batch of their own, so that a state saved for them gives
    # the same answer as evaluating them again (see Model.generate). 0: none.
    preamble: int = 0


# "repetition": stopped where the answer kept repeating itself (see engine.repetition);
# "error": the engine failed while answering (the scheduler says so to each client).
FinishReason = Literal["stop", "length", "interrupted", "repetition", "error"]


@dataclass
class GenerationResult:
    """What one generation produced and how fast. Filled in as tokens stream."""

    text: str = ""
    # What a reasoning model thought before answering, apart from the answer (`text`).
    reasoning: str = ""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    # Prompt tokens that were actually evaluated; the rest came from the KV cache.
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0
    # Of the completion tokens, those spent thinking (max_tokens counts them too).
    reasoning_tokens: int = 0
    load_s: float = 0.0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0
    seed: int = 0
    # Prompt tokens whose KV state came from the on-disk prompt cache, and whether this
    # prompt's state was saved there for later runs.
    prompt_cache_tokens: int = 0
    prompt_cache_saved: bool = False
    # Prompt-lookup decoding: tokens guessed from earlier text, and how many the model kept.
    draft_tokens: int = 0
    accepted_tokens: int = 0
    # Prompt positions taken by the embeddings of attached images (counted in prompt_tokens).
    image_tokens: int = 0
    # Filled only when asked for (Model.generate's `logprobs`): one entry per answer token.
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_prompt_tokens": self.prompt_tokens - self.prompt_tokens_evaluated,
        }

    def timings(self) -> dict[str, float]:
        return {
            "load_s": round(self.load_s, 4),
            "time_to_first_token_s": round(self.ttft_s, 4),
            "prompt_tokens_per_s": round(self.prompt_tps, 2),
            "generation_tokens_per_s": round(self.generation_tps, 2),
        }
