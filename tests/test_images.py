"""Images in prompts: the real engine, the real test model and a real projector file
(written by tests/projector.py), through llama.cpp's mtmd from the file's bytes to the
embeddings in the KV cache; `run -a`, `serve`'s image_url parts, and their failures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from clihelpers import run_cli
from hubserver import FakeFile, FakeRepo, HubServer
from projector import IMAGE_TOKENS, write_png, write_projector
from test_serve import THREADS, Server, start_server, stop

from llmcli.engine.model import Model
from llmcli.engine.types import MEDIA_SLOT, LoadOptions, Sampling
from llmcli.engine.vision import Attachment
from llmcli.prompting import PromptBuilder

QUESTION = "What is in this picture?"
GREEDY = ("--temperature", "0", "-n", "16", "--threads", THREADS)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the projector and two different images."""
    folder = tmp_path_factory.mktemp("media")
    write_projector(folder / "mmproj-test.gguf")
    write_png(folder / "one.png", seed=1)
    write_png(folder / "two.png", width=30, height=50, seed=2)
    return folder


def _prompt(llm: Model, image: Path) -> tuple[list[int], list[int]]:
    """(the prompt with a slot for the image, the expanded prompt) and leaves the image's
    prompt evaluated in the KV cache."""
    tokens, _ = PromptBuilder(llm, raw=False, special=False).prompt(QUESTION, None, media=1)
    with llm.media_prompt(tokens, [Attachment(image.name, image.read_bytes())]) as prompt:
        prompt.evaluate(llm.kv, llm.llama)
        return tokens, prompt.tokens


def test_the_images_embeddings_are_evaluated_in_the_kv_cache(model_file: Path, media: Path) -> None:
    with Model(LoadOptions(model_file, n_ctx=512, n_threads=2)) as llm:
        projector = llm.use_projector(media / "mmproj-test.gguf")
        assert (projector.vision, projector.audio) == (True, False)
        tokens, expanded = _prompt(llm, media / "one.png")
        # The slot became the text mtmd puts around an image and the image's positions:
        # as many as the projector makes (64 px / 8 px patches, pooled 2x2: 16).
        assert tokens.count(MEDIA_SLOT) == 1
        assert expanded.count(MEDIA_SLOT) == IMAGE_TOKENS
        assert len(expanded) > len(tokens) + IMAGE_TOKENS
        assert llm.kv.tokens() == expanded
        first = llm.kv.last_logits().copy()
        _prompt(llm, media / "one.png")
        again = llm.kv.last_logits().copy()
        _prompt(llm, media / "two.png")
        other = llm.kv.last_logits().copy()
    # The same image gives the same logits; another image, other logits: the image's
    # embeddings reached the model.
    assert (first == again).all()
    assert abs(first - other).max() > 1e-3


def test_generation_counts_the_image_and_is_repeatable(model_file: Path, media: Path) -> None:
    with Model(LoadOptions(model_file, n_ctx=512, n_threads=2)) as llm:
        llm.use_projector(media / "mmproj-test.gguf")
        tokens, _ = PromptBuilder(llm, raw=False, special=False).prompt(QUESTION, None, media=1)
        answers = []
        for _ in range(2):
            image = Attachment("one.png", (media / "one.png").read_bytes())
            with llm.media_prompt(tokens, [image]) as prompt:
                sampling = Sampling(temperature=0, max_tokens=12)
                result = llm.generate(prompt.tokens, sampling, media=prompt).complete()
            assert result.image_tokens == IMAGE_TOKENS
            assert result.prompt_tokens == len(prompt.tokens)
            answers.append(result.text)
        # A text prompt afterwards does not mistake the image's positions for tokens.
        plain = llm.generate(llm.chat_tokens([{"role": "user", "content": "Hi"}]), sampling)
        assert plain.complete().completion_tokens > 0
    assert answers[0] == answers[1] and answers[0].strip()


def test_run_attach_is_deterministic_and_reports_image_tokens(
    model_file: Path, media: Path
) -> None:
    args = ("run", "-m", str(model_file), "--mmproj", str(media / "mmproj-test.gguf"))
    outputs = []
    for _ in range(2):
        proc = run_cli(*args, "-a", str(media / "one.png"), *GREEDY, "--json", QUESTION)
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert outputs[0]["text"] == outputs[1]["text"] and outputs[0]["text"]
    assert outputs[0]["image_tokens"] == IMAGE_TOKENS
    assert outputs[0]["usage"]["prompt_tokens"] > IMAGE_TOKENS
    stats = run_cli(*args, "-a", str(media / "two.png"), *GREEDY, "--stats", QUESTION)
    assert stats.returncode == 0, stats.stderr
    assert f"({IMAGE_TOKENS} of attachments)" in stats.stderr


def test_a_projector_beside_the_model_is_found(
    model_file: Path, media: Path, tmp_path: Path
) -> None:
    (tmp_path / model_file.name).symlink_to(model_file)
    (tmp_path / "mmproj-SmolLM2-135M.gguf").symlink_to(media / "mmproj-test.gguf")
    model = tmp_path / model_file.name
    proc = run_cli("run", "-m", str(model), "-a", str(media / "one.png"), *GREEDY, QUESTION)
    assert proc.returncode == 0, proc.stderr
    given = run_cli(
        "run", "-m", str(model_file), "--mmproj", str(media / "mmproj-test.gguf"),
        "-a", str(media / "one.png"), *GREEDY, QUESTION,
    )  # fmt: skip
    assert proc.stdout == given.stdout
    shown = run_cli("show", str(model))
    assert shown.returncode == 0, shown.stderr
    assert "vision" in shown.stdout


def test_a_model_without_a_projector_refuses_attachments(model_file: Path, media: Path) -> None:
    proc = run_cli("run", "-m", str(model_file), "-a", str(media / "one.png"), QUESTION)
    assert proc.returncode == 13
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no projector" in lines[0] and "--mmproj" in lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("content", [b"not an image at all\n", b"\x89PNG\r\n\x1a\nbroken"])
def test_an_unreadable_or_non_image_file_is_one_line_and_exit_14(
    model_file: Path, media: Path, tmp_path: Path, content: bytes
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(content)
    projector = ("--mmproj", str(media / "mmproj-test.gguf"))
    for path in (bad, tmp_path / "missing.png"):
        proc = run_cli("run", "-m", str(model_file), *projector, "-a", str(path), QUESTION)
        assert proc.returncode == 14, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and path.name in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _image_chat(url: str, **extra: object) -> dict[str, object]:
    parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]
    return {"messages": [{"role": "user", "content": parts}], **extra}


def test_serve_image_url_answers_as_run_attach(model_file: Path, media: Path) -> None:
    projector = media / "mmproj-test.gguf"
    server: Server = start_server(model_file, "--mmproj", str(projector), "--parallel", "2")
    try:
        status, _, body = server.post(
            "/v1/chat/completions",
            _image_chat(_data_url(media / "one.png"), temperature=0, max_tokens=16),
        )
        assert status == 200, body
        remote = server.post("/v1/chat/completions", _image_chat("https://example.com/a.png"))
        garbled = server.post("/v1/chat/completions", _image_chat("data:image/png;base64,AAAA"))
    finally:
        assert stop(server) == 0
    expected = run_cli(
        "run", "-m", str(model_file), "--mmproj", str(projector),
        "-a", str(media / "one.png"), *GREEDY, QUESTION,
    )  # fmt: skip
    assert expected.returncode == 0, expected.stderr
    assert body["choices"][0]["message"]["content"] == expected.stdout.removesuffix("\n")
    assert body["usage"]["prompt_tokens"] > IMAGE_TOKENS
    status, _, error = remote
    assert status == 400
    assert error["error"]["param"] == "messages[0].content[0].image_url.url"
    assert "data: URL" in error["error"]["message"]
    assert garbled[0] == 400


def test_serve_without_a_projector_refuses_image_parts(model_file: Path, media: Path) -> None:
    server = start_server(model_file, "--parallel", "1")
    try:
        status, _, error = server.post(
            "/v1/chat/completions", _image_chat(_data_url(media / "one.png"))
        )
    finally:
        assert stop(server) == 0
    assert status == 400
    assert "no projector" in error["error"]["message"]


def test_chat_attach_sends_the_image_and_the_chat_file_keeps_it(
    model_file: Path, media: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "chat.json"
    image = media / "one.png"
    chat = ("chat", "-m", str(model_file), "--mmproj", str(media / "mmproj-test.gguf"))
    lines = f"/attach {image}\n{QUESTION}\nAnd its colours?\n/save {saved}\n"
    proc = run_cli(*chat, *GREEDY, "--no-log", input=lines, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"attached {image.name}" in proc.stderr
    messages = json.loads(saved.read_text())["messages"]
    assert messages[0]["attachments"] == [str(image)]
    assert messages[0]["content"].endswith(QUESTION)
    assert "attachments" not in messages[2]
    # A run with the image answers the first question as the chat did.
    run = run_cli(
        "run", "-m", str(model_file), "--mmproj", str(media / "mmproj-test.gguf"),
        "-a", str(image), *GREEDY, QUESTION,
    )  # fmt: skip
    assert messages[1]["content"] == run.stdout.removesuffix("\n")
    # The chat file brings the image back: a later turn reads it again.
    more = run_cli(*chat, *GREEDY, "--no-log", "--load", str(saved), input="Thanks!\n", timeout=600)
    assert more.returncode == 0, more.stderr
    assert more.stdout.strip()


def test_chat_attach_without_a_projector_says_so(model_file: Path, media: Path) -> None:
    lines = f"/attach {media / 'one.png'}\nHi\n"
    proc = run_cli("chat", "-m", str(model_file), *GREEDY, "--no-log", input=lines, timeout=600)
    assert proc.returncode == 0
    assert "no projector" in proc.stderr


def test_pull_brings_the_projector_and_run_finds_it(
    hub: HubServer, model_file: Path, media: Path
) -> None:
    projector = (media / "mmproj-test.gguf").read_bytes()
    files = {
        "README.md": FakeFile(b"# vision\n", lfs=False),
        "SmolLM2-135M-Instruct-Q4_K_M.gguf": FakeFile(model_file.read_bytes()),
        "mmproj-SmolLM2-F16.gguf": FakeFile(projector),
        "mmproj-SmolLM2-F32.gguf": FakeFile(projector + b"\0" * 64),
        "other/mmproj-other-F16.gguf": FakeFile(b"GGUF not this one"),
    }
    hub.add(FakeRepo("test/vision-GGUF", files))
    pulled = run_cli("pull", "test/vision-GGUF")
    assert pulled.returncode == 0, pulled.stderr
    got = [path for method, path in hub.requests if method == "GET" and "mmproj" in path]
    assert [p.rsplit("/", 1)[-1] for p in got] == ["mmproj-SmolLM2-F16.gguf"]
    shown = run_cli("show", "test/vision-GGUF")
    assert "mmproj-SmolLM2-F16.gguf (vision)" in shown.stdout
    listed = json.loads(run_cli("list", "--json").stdout)
    assert [m["inputs"] for m in listed if m["repo"] == "test/vision-GGUF"] == [["vision"]]
    proc = run_cli("run", "-m", "test/vision-GGUF", "-a", str(media / "one.png"), *GREEDY, "Hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
