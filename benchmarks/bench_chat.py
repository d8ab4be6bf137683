"""Does a long chat stay fast? Time to first token of turn 10 over turn 1.

Two chats run side by side, turn by turn, through the same code as `llmcli chat`
(conversation + ChatSession + Model), each with its own loaded model:
- "reused": the KV cache is kept between turns, as `llmcli chat` does, so each turn
  evaluates only its new tokens;
- "reset": the KV cache is dropped before every turn, so each turn evaluates the whole
  history again (what a chat that reloads or rebuilds its context would pay).
By turn 10 the history is about 2k tokens (user messages carry a paragraph of material,
answers are capped). Greedy decoding keeps both chats' histories the same.

Bar: the reused chat's turn-10/turn-1 ratio is at most 1.2.

Also printed, as the floor no chat can beat: the engine alone evaluating turn 10's new
tokens after the history versus with no history. Attention over a longer context costs
more per token, and for a model as small as the test model that share is large.
Usage: python benchmarks/bench_chat.py [--reps 3] [--threads N] [--turns 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testmodel import model_path

from llmcli.chat.conversation import Conversation
from llmcli.chat.session import ChatSession, open_model
from llmcli.engine.types import LoadOptions, Sampling

BAR = 1.2
MATERIAL = (
    "Here is a note from my travel diary. The train left the coast early in the morning, "
    "climbed through terraced vineyards and stopped at a small station where an old man "
    "sold warm bread and coffee from a cart. By noon the mountains were close enough to "
    "see the snow on the ridges, and the carriage was full of hikers with muddy boots. "
)
TOPICS = [
    "the bread",
    "the mountains",
    "the hikers",
    "the vineyards",
    "the station",
    "the coffee",
    "the snow",
    "the morning",
    "the carriage",
    "the old man",
]


def message(turn: int) -> str:
    # Same length every turn, so turn 1 and turn 10 have the same amount of new text.
    return f"{MATERIAL}\nQuestion {turn + 1}: write three sentences about {TOPICS[turn]}."


def new_chat(load: LoadOptions, answer_tokens: int) -> ChatSession:
    conv = Conversation(sampling=Sampling(temperature=0.0, max_tokens=answer_tokens))
    return ChatSession(conv, open_model(load), load, out=io.StringIO())


def run_once(load: LoadOptions, turns: int, answer_tokens: int) -> dict[str, list[float]]:
    chats = {"reused": new_chat(load, answer_tokens), "reset": new_chat(load, answer_tokens)}
    ttft: dict[str, list[float]] = {name: [] for name in chats}
    history: list[int] = []
    evaluated: list[int] = []
    try:
        for turn in range(turns):
            for name, chat in chats.items():
                if name == "reset":
                    forget(chat.llm.llama)  # evaluate everything again
                chat.handle(message(turn))
                assert chat.last is not None
                ttft[name].append(chat.last.ttft_s)
                if name == "reused":
                    history.append(chat.last.prompt_tokens)
                    evaluated.append(chat.last.prompt_tokens_evaluated)
        ttft["floor"] = [engine_floor(chats["reused"], chats["reset"])]
    finally:
        for chat in chats.values():
            chat.close()
    ttft["prompt_tokens"] = [float(n) for n in history]
    ttft["evaluated"] = [float(n) for n in evaluated]
    return ttft


def forget(llama: Any) -> None:
    """Drop the KV cache: the next prompt is evaluated from its first token."""
    llama.reset()


def engine_floor(reused: ChatSession, spare: ChatSession) -> float:
    """Time to evaluate the last turn's new tokens after its history, over the time for
    the same tokens with no history, straight on the engine (on the spare model)."""
    assert reused.last is not None
    prompt = reused.llm.chat_tokens(reused.conv.messages()[:-1])
    new = reused.last.prompt_tokens_evaluated
    head, tail = prompt[:-new], prompt[-new:]
    llama = spare.llm.llama
    ratios = []
    for _ in range(3):
        forget(llama)
        start = time.perf_counter()
        llama.eval(tail)
        alone = time.perf_counter() - start
        forget(llama)
        llama.eval(head)
        start = time.perf_counter()
        llama.eval(tail)
        ratios.append((time.perf_counter() - start) / alone)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--answer-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="default: llmcli's")
    args = parser.parse_args()
    load = LoadOptions(path=model_path(), n_ctx=4096, n_threads=args.threads)

    runs = [run_once(load, args.turns, args.answer_tokens) for _ in range(args.reps)]
    last = args.turns - 1
    history = int(runs[-1]["prompt_tokens"][last])
    print(f"model {load.path.name}, threads {args.threads or 'default'}, {args.reps} runs")
    print(
        f"prompt at turn 1: {int(runs[-1]['prompt_tokens'][0])} tokens; "
        f"at turn {args.turns}: {history} tokens of history and question"
    )
    print(
        "reused chat, prompt tokens evaluated per turn (the rest came from the cache): "
        + ", ".join(str(int(n)) for n in runs[-1]["evaluated"])
    )
    print(f"{'':>8}  {'turn 1 TTFT':>12}  {f'turn {args.turns} TTFT':>13}  {'ratio':>6}")
    for name in ("reused", "reset"):
        first = statistics.median(r[name][0] for r in runs)
        tenth = statistics.median(r[name][last] for r in runs)
        ratio = statistics.median(r[name][last] / r[name][0] for r in runs)
        verdict = ""
        if name == "reused":
            verdict = f"  bar <= {BAR}: {'PASS' if ratio <= BAR else 'FAIL'}"
        print(f"{name:>8}  {first:>10.3f} s  {tenth:>11.3f} s  {ratio:>6.2f}{verdict}")
    floor = statistics.median(r["floor"][0] for r in runs)
    reused = statistics.median(r["reused"][last] / r["reused"][0] for r in runs)
    print(
        f"engine floor (same new tokens after the history vs alone): {floor:.2f}; "
        f"reused chat over the floor: {reused / floor:.2f}"
    )


if __name__ == "__main__":
    main()
