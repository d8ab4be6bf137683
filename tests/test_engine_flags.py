"""--cache-type-k/-v, --lora/--lora-scale, --rope-scale/--yarn: from the command line and
the config file into the engine's contexts, on the real test model and a real LoRA
adapter GGUF written for it (tests/lorafile.py)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import llama_cpp
import pytest
from clihelpers import greedy, run_cli
from lorafile import write_lora

from llmcli.commands._engine_flags import EngineFlags
from llmcli.engine.model import Model
from llmcli.engine.scheduler import Chunk, Job, Scheduler
from llmcli.engine.types import Decoding, LoadOptions, Message, Sampling
from llmcli.errors import ExitCode

QUESTION = "What is the capital of France?"
STORY = [Message(role="user", content="Write a long story about a lighthouse keeper.")]


@pytest.fixture(scope="module")
def lora(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lora(model_file, tmp_path_factory.mktemp("lora") / "lora.gguf")


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmcli: error: "), lines
    assert all(word in lines[0] for word in words), lines[0]
    assert proc.stdout == ""


# -- KV cache types ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["q8_0", "q4_0"])
def test_a_quantized_kv_cache_answers(model_file: Path, kind: str) -> None:
    proc = greedy(model_file, "--cache-type-k", kind, "--cache-type-v", kind, QUESTION, n=16)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) >= 3


def test_the_cache_types_reach_every_context(model_file: Path) -> None:
    options = LoadOptions(
        model_file, n_ctx=512, start_ctx=256, cache_type_k="q8_0", cache_type_v="q4_0"
    )
    with Model(options) as model:
        params = model.llama.context_params
        assert (params.type_k, params.type_v) == (
            llama_cpp.GGML_TYPE_Q8_0,
            llama_cpp.GGML_TYPE_Q4_0,
        )
        tokens = model.chat_tokens(STORY)
        result = model.generate(tokens, Sampling(temperature=0, max_tokens=300), Decoding())
        assert len(tokens) + result.complete().completion_tokens > 256
        grown = model.llama.context_params  # the larger context made on the way
        assert model.llama.n_ctx() == 512
        assert (grown.type_k, grown.type_v) == (llama_cpp.GGML_TYPE_Q8_0, llama_cpp.GGML_TYPE_Q4_0)


def test_a_quantized_v_cache_without_flash_attention_is_refused(model_file: Path) -> None:
    from llmcli.errors import UsageError

    with pytest.raises(UsageError, match="needs flash attention"):
        Model(LoadOptions(model_file, n_ctx=256, cache_type_v="q8_0", flash_attn=False))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cache-type-k", "q5_1"], ["--cache-type-k", "f16, q8_0, q4_0", "q5_1"]),
        (["--cache-type-v", "int8"], ["--cache-type-v", "int8"]),
        (["--rope-scale", "0.5"], ["--rope-scale", "0.5"]),
        (["--lora-scale", "11"], ["--lora-scale"]),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    model_file: Path, args: list[str], words: list[str]
) -> None:
    one_error_line(greedy(model_file, *args, QUESTION), ExitCode.USAGE, *words)


def test_the_config_file_sets_the_cache_types(model_file: Path) -> None:
    Path(os.environ["LLMCLI_CONFIG"]).write_text(
        'cache_type_k = "q8_0"\ncache_type_v = "q8_0"\n', encoding="utf-8"
    )
    proc = run_cli("bench", "-m", str(model_file), "-p", "16", "-n", "4", "-r", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert all(r["cache_type_k"] == r["cache_type_v"] == "q8_0" for r in rows)
    # The command line still comes first.
    typed = run_cli(
        "bench", "-m", str(model_file), "-p", "16", "-n", "0", "-r", "1", "--json",
        "--cache-type-k", "f16", "--cache-type-v", "f16",
    )  # fmt: skip
    assert "cache_type_k" not in json.loads(typed.stdout)[0]
    doctor = json.loads(run_cli("doctor", "--json", env={"HF_HUB_OFFLINE": "1"}).stdout)
    flags = doctor["engine_flags"]
    assert flags["cache_type_k"] == "q8_0" and flags["from_config"] == [
        "cache_type_k",
        "cache_type_v",
    ]


def test_the_config_file_refuses_a_cache_type_that_is_not_one() -> None:
    set_bad = run_cli("config", "set", "cache_type_v", "q3_k")
    assert set_bad.returncode == ExitCode.USAGE
    assert "f16, q8_0, q4_0" in set_bad.stderr


# -- LoRA ------------------------------------------------------------------------------------


def test_a_lora_changes_the_answer_and_scale_0_or_zero_weights_do_not(
    model_file: Path, lora: Path, tmp_path: Path
) -> None:
    base = greedy(model_file, QUESTION, "--no-prompt-cache")
    adapted = greedy(model_file, QUESTION, "--lora", str(lora), "--no-prompt-cache")
    off = greedy(model_file, QUESTION, "--lora", str(lora), "--lora-scale", "0")
    zero = write_lora(model_file, tmp_path / "zero.gguf", zero=True)
    nothing = greedy(model_file, QUESTION, "--lora", str(zero))
    for proc in (base, adapted, off, nothing):
        assert proc.returncode == 0, proc.stderr
    assert adapted.stdout != base.stdout
    assert off.stdout == base.stdout
    assert nothing.stdout == base.stdout


def test_the_lora_stays_when_the_context_grows(model_file: Path, lora: Path) -> None:
    sampling = Sampling(temperature=0.0, max_tokens=300)

    def answer(**fields: object) -> str:
        with Model(LoadOptions(model_file, n_ctx=512, **fields)) as model:  # type: ignore[arg-type]
            tokens = model.chat_tokens(STORY)
            result = model.generate(tokens, sampling, Decoding(lookup=False)).complete()
            assert len(tokens) + result.completion_tokens > 256
            return result.text

    full = answer(lora=lora)
    assert answer(lora=lora, start_ctx=256) == full
    assert answer(start_ctx=256) != full


def test_the_scheduler_uses_the_lora(model_file: Path, lora: Path) -> None:
    def served(adapter: Path | None) -> str:
        chunks: list[Chunk] = []
        ended = threading.Event()

        def emit(chunk: Chunk) -> None:
            chunks.append(chunk)
            if chunk.finish_reason is not None:
                ended.set()

        with Model(LoadOptions(model_file, n_ctx=256, lora=adapter)) as model:
            scheduler = Scheduler(model, parallel=1, ctx_per_sequence=256, max_waiting=1)
            try:
                prompt = model.chat_tokens([Message(role="user", content=QUESTION)])
                scheduler.submit(Job(prompt, Sampling(temperature=0, max_tokens=16), emit))
                assert ended.wait(120), "the scheduler never finished the job"
            finally:
                scheduler.close()
        return "".join(chunk.text for chunk in chunks)

    assert served(lora) != served(None)


def test_a_missing_or_wrong_lora_file_is_refused_before_loading(
    model_file: Path, lora: Path, tmp_path: Path
) -> None:
    missing = greedy(model_file, "--lora", str(tmp_path / "nope.gguf"), QUESTION)
    one_error_line(missing, ExitCode.USAGE, "--lora", "no such file")
    a_model = greedy(model_file, "--lora", str(model_file), QUESTION)
    one_error_line(a_model, ExitCode.USAGE, "a model file, not a LoRA adapter")
    text = tmp_path / "notes.gguf"
    text.write_text("hello", encoding="utf-8")
    one_error_line(greedy(model_file, "--lora", str(text), QUESTION), ExitCode.USAGE, "not a GGUF")
    other = write_lora(model_file, tmp_path / "qwen.gguf", architecture="qwen2")
    refused = greedy(model_file, "--lora", str(other), QUESTION)
    one_error_line(refused, ExitCode.MODEL_INVALID, "qwen.gguf", "made for another model")


# -- RoPE scaling ---------------------------------------------------------------------------


def test_yarn_stretches_by_the_context_over_the_trained_one(model_file: Path) -> None:
    fields = EngineFlags(yarn=True).load_fields(model_file, 16384)
    assert fields["rope_scale"] == 2.0 and fields["yarn_orig_ctx"] == 8192
    assert EngineFlags(yarn=True).load_fields(model_file, 2048)["rope_scale"] == 1.0
    assert EngineFlags(yarn=True, rope_scale=4.0).load_fields(model_file, 2048)["rope_scale"] == 4
    options = LoadOptions(model_file, n_ctx=256, **fields)
    with Model(options) as model:
        params = model.llama.context_params
        assert params.rope_scaling_type == llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN
        assert params.rope_freq_scale == 0.5 and params.yarn_orig_ctx == 8192


def test_linear_rope_scale_answers_and_changes_the_positions(model_file: Path) -> None:
    base = greedy(model_file, QUESTION)
    stretched = greedy(model_file, "--rope-scale", "4", QUESTION)
    yarn = greedy(model_file, "--yarn", "--rope-scale", "4", QUESTION)
    for proc in (base, stretched, yarn):
        assert proc.returncode == 0, proc.stderr
    assert stretched.stdout != base.stdout
    with Model(LoadOptions(model_file, n_ctx=256, rope_scale=4.0)) as model:
        params = model.llama.context_params
        assert params.rope_scaling_type == llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
        assert params.rope_freq_scale == 0.25


def test_the_prompt_cache_keeps_states_apart_by_cache_type_and_adapter(
    model_file: Path, lora: Path
) -> None:
    from llmcli.engine import context_setup
    from llmcli.engine.prompt_cache import model_identity

    def key(**fields: object) -> str:
        options = LoadOptions(model_file, **fields)  # type: ignore[arg-type]
        return model_identity(model_file, flash_attn=True, setup=context_setup.identity(options))

    keys = {key(), key(cache_type_k="q8_0"), key(lora=lora), key(rope_scale=2.0)}
    assert len(keys) == 4
