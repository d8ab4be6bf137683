"""Tool calls with and without constraints, side by side in one run: on 20 tool tasks
(five tools, every task offering all five, tool choice "required"), the share of answers
whose calls are valid (a given tool's name, arguments that match its JSON schema), when
the model writes freely and when the grammar built from the tools' schemas constrains
it; and what the grammar costs per generated token.

The model gets the tools through Qwen3's chat template (tests/chat_templates), which the
test model's tokens match; --model adds others (a Gemma GGUF, say) and --template picks
another template for them all. Greedy decoding, so one run per task and mode suffices.
Usage: python benchmarks/bench_tools.py [--model PATH ...] [--template FILE] [--tokens 96]
       [--tasks 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testmodel import model_path  # noqa: E402

from llmcli.engine.model import Model  # noqa: E402
from llmcli.engine.tool_calls import call_format, parse_calls  # noqa: E402
from llmcli.engine.tool_plan import ToolPlan, prompt_inputs  # noqa: E402
from llmcli.engine.types import Decoding, LoadOptions, Message, Sampling  # noqa: E402


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


TOOLS = [
    _tool(
        "get_weather",
        "The weather in a city now.",
        {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    ),
    _tool("get_time", "The time in a time zone.", {"zone": {"type": "string"}}),
    _tool("add", "Add two integers.", {"a": {"type": "integer"}, "b": {"type": "integer"}}),
    _tool(
        "search_web",
        "Search the web.",
        {"query": {"type": "string"}, "results": {"type": "integer", "minimum": 1, "maximum": 10}},
    ),
    _tool(
        "convert_currency",
        "Convert an amount between currencies.",
        {
            "amount": {"type": "number"},
            "source": {"type": "string", "enum": ["EUR", "USD", "GBP", "JPY"]},
            "target": {"type": "string", "enum": ["EUR", "USD", "GBP", "JPY"]},
        },
    ),
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
TASKS = [
    "What is the weather in Paris right now?",
    "Is it cold in Oslo? Answer in fahrenheit.",
    "Weather for Tokyo in celsius, please.",
    "Tell me the weather in Lima.",
    "What time is it in Europe/Berlin?",
    "Current time in UTC?",
    "What's the time in America/New_York?",
    "What is 17 plus 25?",
    "Add 1000 and 2345.",
    "Compute 7 + 8.",
    "Search the web for the tallest building in the world.",
    "Find three web pages about sourdough starters.",
    "Look up the population of Peru online, five results.",
    "Search for llama.cpp grammar documentation.",
    "Convert 100 EUR to USD.",
    "How many yen is 50 pounds?",
    "Convert 12.5 USD to GBP.",
    "What is 3000 JPY in euros?",
    "Check the weather in Cairo and tell me if I need a coat.",
    "I need the sum of 123 and 456.",
]


@dataclasses.dataclass
class Outcome:
    valid: bool
    seconds_per_token: float


def _valid(text: str, fmt: Any) -> bool:
    _, calls = parse_calls(text, fmt)
    if not calls:
        return False
    for call in calls:
        if call.name not in SCHEMAS:
            return False
        try:
            jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
        except jsonschema.ValidationError:
            return False
    return True


def answer(llm: Model, task: str, *, constrained: bool, tokens: int) -> Outcome:
    fmt = call_format(llm.tokenizer.chat_template)
    plan = ToolPlan(TOOLS, "required", False, fmt)
    messages, tools = prompt_inputs(plan, [Message(role="user", content=task)])
    prompt = llm.chat_tokens(messages, tools=tools)
    sampling = Sampling(
        temperature=0, max_tokens=tokens, grammar=plan.grammar() if constrained else None
    )
    generation = llm.generate(prompt, sampling, Decoding(lookup=False, prompt_cache=None))
    start = time.perf_counter()
    first = None
    for _ in generation:
        if first is None:
            first = time.perf_counter()
    result = generation.result
    end = time.perf_counter()
    per_token = (end - (first or start)) / max(result.completion_tokens - 1, 1)
    outcome = Outcome(_valid(result.text, fmt), per_token)
    mode = "constrained" if constrained else "free"
    print(f"  {mode:<11} {'valid' if outcome.valid else 'invalid':<7} {task}", file=sys.stderr)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path, default=[])
    parser.add_argument("--template", type=Path, default=ROOT / "tests/chat_templates/qwen3.jinja")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="the first N tasks only")
    args = parser.parse_args()
    tasks = TASKS[: args.tasks]
    template = args.template.read_text(encoding="utf-8")
    print(f"{len(tasks)} tasks, {len(TOOLS)} tools, tool choice required, greedy, -n {args.tokens}")
    print(
        f"{'model':<36} {'valid free':>11} {'valid constrained':>18} {'ms/token free':>14} "
        f"{'ms/token constrained':>21}"
    )
    for path in [model_path(), *args.model]:
        with Model(LoadOptions(path=path, n_ctx=2048, chat_template=template)) as llm:
            free = [answer(llm, t, constrained=False, tokens=args.tokens) for t in tasks]
            held = [answer(llm, t, constrained=True, tokens=args.tokens) for t in tasks]
        share = [sum(o.valid for o in runs) / len(runs) for runs in (free, held)]
        ms = [statistics.median(o.seconds_per_token for o in runs) * 1000 for runs in (free, held)]
        print(
            f"{path.name[:36]:<36} {share[0]:>10.0%} {share[1]:>18.0%} "
            f"{ms[0]:>14.1f} {ms[1]:>21.1f}"
        )


if __name__ == "__main__":
    main()
