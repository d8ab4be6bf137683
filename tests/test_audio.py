"""Sound in prompts: the real engine, the real test model and a real audio projector
(tests/projector.py writes a Whisper-style encoder with the ultravox projection), through
llama.cpp's mtmd from a WAV or MP3 file's bytes (decoded, resampled, turned into a log-mel
spectrogram) to the embeddings in the KV cache; `run -a`, serve's input_audio parts, and
a projector that takes only images.

tests/media/a440.mp3 is the tone `write_wav(path)` writes (440 Hz, one second, 16 kHz
mono), encoded once with LAME 3.100 (`lame --quiet -m m -b 32 --noreplaygain a440.wav
a440.mp3`: MPEG-2 Layer III, 32 kbit/s, 4 KB) and committed, so that no encoder is needed
to run the tests; mtmd decodes it with the MP3 decoder built into llama.cpp.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from clihelpers import run_cli
from projector import AUDIO_TOKENS, write_audio_projector, write_projector, write_wav
from test_serve import THREADS, start_server, stop

from llmcli.engine.model import Model
from llmcli.engine.types import MEDIA_SLOT, LoadOptions
from llmcli.engine.vision import Attachment
from llmcli.prompting import PromptBuilder

QUESTION = "What is this sound?"
# The a440.wav tone as MP3 (see above).
MP3 = Path(__file__).parent / "media" / "a440.mp3"
GREEDY = ("--temperature", "0", "-n", "12", "--threads", THREADS)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the audio projector, an image projector and two different sounds."""
    folder = tmp_path_factory.mktemp("audio")
    write_audio_projector(folder / "mmproj-audio.gguf")
    write_projector(folder / "mmproj-vision.gguf")
    write_wav(folder / "a440.wav", pitch=440.0)
    # Another rate and length: mtmd resamples to the projector's 16 kHz.
    write_wav(folder / "a880.wav", pitch=880.0, seconds=0.5, rate=22050)
    return folder


def _evaluated(llm: Model, tokens: list[int], sound: Path) -> list[int]:
    with llm.media_prompt(tokens, [Attachment(sound.name, sound.read_bytes())]) as prompt:
        prompt.evaluate(llm.kv, llm.llama)
        return prompt.tokens


def test_the_sounds_embeddings_are_evaluated_in_the_kv_cache(model_file: Path, media: Path) -> None:
    with Model(LoadOptions(model_file, n_ctx=512, n_threads=2)) as llm:
        projector = llm.use_projector(media / "mmproj-audio.gguf")
        assert (projector.vision, projector.audio, projector.kinds) == (False, True, "audio")
        tokens, _ = PromptBuilder(llm, raw=False, special=False).prompt(QUESTION, None, media=1)
        expanded = _evaluated(llm, tokens, media / "a440.wav")
        # One 30-second chunk: 3000 mel frames, halved by the convolution, stacked 20 at
        # a time. The ultravox projection puts no text around the sound.
        assert expanded.count(MEDIA_SLOT) == AUDIO_TOKENS
        assert len(expanded) == len(tokens) - 1 + AUDIO_TOKENS
        assert llm.kv.tokens() == expanded
        first = llm.kv.last_logits().copy()
        _evaluated(llm, tokens, media / "a440.wav")
        again = llm.kv.last_logits().copy()
        _evaluated(llm, tokens, media / "a880.wav")
        other = llm.kv.last_logits().copy()
    assert (first == again).all()
    assert abs(first - other).max() > 1e-3


def test_run_attach_wav_is_deterministic_and_counts_the_sound(
    model_file: Path, media: Path
) -> None:
    args = ("run", "-m", str(model_file), "--mmproj", str(media / "mmproj-audio.gguf"))
    outputs = []
    for _ in range(2):
        proc = run_cli(*args, "-a", str(media / "a440.wav"), *GREEDY, "--json", QUESTION)
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert outputs[0]["text"] == outputs[1]["text"] and outputs[0]["text"]
    assert outputs[0]["image_tokens"] == AUDIO_TOKENS
    assert outputs[0]["usage"]["prompt_tokens"] > AUDIO_TOKENS


def test_run_attach_mp3_counts_the_sound_as_the_same_tone_in_wav(
    model_file: Path, media: Path
) -> None:
    args = ("run", "-m", str(model_file), "--mmproj", str(media / "mmproj-audio.gguf"))
    counted = {}
    for sound in (media / "a440.wav", MP3):
        proc = run_cli(*args, "-a", str(sound), *GREEDY, "--json", QUESTION)
        assert proc.returncode == 0, proc.stderr
        output = json.loads(proc.stdout)
        assert output["text"]
        counted[sound.suffix] = (output["image_tokens"], output["usage"]["prompt_tokens"])
    # Both well within one 30-second chunk: the same positions, whatever the decoder.
    assert counted[".mp3"][0] == AUDIO_TOKENS
    assert counted[".mp3"] == counted[".wav"]


@pytest.mark.parametrize(
    ("projector", "sound", "said"),
    [
        (
            "mmproj-vision.gguf",
            "a440.wav",
            "a440.wav: the projector mmproj-vision.gguf does not take audio",
        ),
        (
            "mmproj-vision.gguf",
            "a440.mp3",
            "a440.mp3: the projector mmproj-vision.gguf does not take audio",
        ),
        (None, "a440.wav", "has no projector, so it cannot read attachments"),
    ],
)
def test_a_sound_without_an_audio_projector_is_one_line_and_exit_13(
    model_file: Path, media: Path, projector: str | None, sound: str, said: str
) -> None:
    given = ("--mmproj", str(media / projector)) if projector else ()
    file = MP3 if sound.endswith(".mp3") else media / sound
    proc = run_cli("run", "-m", str(model_file), *given, "-a", str(file), *GREEDY, QUESTION)
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], proc.stderr
    assert proc.stdout == ""


def test_serve_input_audio_answers_as_run_attach(model_file: Path, media: Path) -> None:
    projector = media / "mmproj-audio.gguf"
    sound = base64.b64encode((media / "a440.wav").read_bytes()).decode()
    parts = [
        {"type": "input_audio", "input_audio": {"data": sound, "format": "wav"}},
        {"type": "text", "text": QUESTION},
    ]
    body = {"messages": [{"role": "user", "content": parts}], "temperature": 0, "max_tokens": 12}
    server = start_server(model_file, "--mmproj", str(projector), "--parallel", "1")
    try:
        status, _, answer = server.post("/v1/chat/completions", body)
    finally:
        assert stop(server) == 0
    assert status == 200, answer
    expected = run_cli(
        "run", "-m", str(model_file), "--mmproj", str(projector),
        "-a", str(media / "a440.wav"), *GREEDY, QUESTION,
    )  # fmt: skip
    assert expected.returncode == 0, expected.stderr
    assert answer["choices"][0]["message"]["content"] == expected.stdout.removesuffix("\n")
    assert answer["usage"]["prompt_tokens"] > AUDIO_TOKENS


def test_show_says_a_projector_beside_the_model_takes_audio(
    model_file: Path, media: Path, tmp_path: Path
) -> None:
    (tmp_path / model_file.name).symlink_to(model_file)
    (tmp_path / "mmproj-SmolLM2-135M.gguf").symlink_to(media / "mmproj-audio.gguf")
    shown = run_cli("show", str(tmp_path / model_file.name))
    assert shown.returncode == 0, shown.stderr
    assert "projector:           mmproj-SmolLM2-135M.gguf (audio)" in shown.stdout
