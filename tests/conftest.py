"""Shared fixtures: the real test model, an isolated home, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hubserver import DEAD_ENDPOINT, HubServer, serve, standard_repos
from testmodel import model_path

from llmcli.config import usable_cores

# Variables that would let the user's own setup leak into a test.
_SCRUBBED = (
    "LLMCLI_MODEL",
    "LLMCLI_DEBUG",
    "LLMCLI_CONFIG",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "NO_COLOR",
    "FORCE_COLOR",
    "LLMCLI_ENGINE_SETUP",
    "LLMCLI_PROBE_FAULT",
    "LLMCLI_RPC",
)


# Loads the test model as generation and as embedding, so the engine setups that suit
# this CPU are measured once, by the real probes, before any test runs the model.
_WARM_ENGINE = """
import sys
from pathlib import Path
from llmcli.engine.model import Model
from llmcli.engine.types import LoadOptions
path = Path(sys.argv[1])
Model(LoadOptions(path, n_ctx=512)).close()
Model(LoadOptions(path, n_ctx=512, embedding=True)).close()
"""


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Engine measurements shared by the whole session: a machine fact, not user data.
    Tests of the measuring itself use their own folder."""
    folder = tmp_path_factory.mktemp("engine")
    home = tmp_path_factory.mktemp("warm-home")
    env = {**os.environ, "LLMCLI_ENGINE_CACHE": str(folder), "LLMCLI_HOME": str(home)}
    env.pop("LLMCLI_ENGINE_SETUP", None)
    subprocess.run([sys.executable, "-c", _WARM_ENGINE, str(model_path())], env=env, check=True)
    return folder


@pytest.fixture(scope="session")
def model_file() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF, provisioned and hash-checked once."""
    return model_path()


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, engine_cache: Path
) -> Path:
    """Every test gets its own data, config and Hugging Face cache directories, so the
    user's real cache, token and settings are never read or written."""
    home = tmp_path_factory.mktemp("home")
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMCLI_HOME", str(home / "llmcli"))
    monkeypatch.setenv("LLMCLI_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("LLMCLI_ENGINE_CACHE", str(engine_cache))
    # The default thread count follows the machine's load, and past 256 positions the
    # thread count changes a greedy answer's sums: tests compare answers, so pin it.
    monkeypatch.setenv("LLMCLI_THREADS", str(usable_cores()))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # No machine running the tests reaches the Hub: fail fast instead of hanging.
    monkeypatch.setenv("HF_ENDPOINT", DEAD_ENDPOINT)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    return home


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    """A Hub look-alike on 127.0.0.1 serving the real test model under several repos."""
    with serve(standard_repos(model_path().read_bytes())) as server:
        yield server


@pytest.fixture
def hub(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The Hub look-alike as this test's HF_ENDPOINT, with its request logs cleared."""
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    hub_server.requests.clear()
    hub_server.sent.clear()
    return hub_server


# -- the test model with other families' chat templates ----------------------------------

CHAT_TEMPLATES = Path(__file__).parent / "chat_templates"


@pytest.fixture(scope="session")
def family_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`family_model("qwen3")`: the test model with that family's chat template (see
    tests/chat_templates/SOURCES.md). Without weights by default (a sparse file that
    only vocabulary-only loads such as `run --show-prompt` can use); `weights=True`
    gives a copy that generates. Made once per session each."""
    from ggufedit import with_metadata

    folder = tmp_path_factory.mktemp("families")
    made: dict[tuple[str, bool, bool], Path] = {}

    def make(family: str, *, weights: bool = False, add_bos: bool = False) -> Path:
        key = (family, weights, add_bos)
        if key not in made:
            template = (CHAT_TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
            name = f"{family}{'-w' if weights else ''}{'-bos' if add_bos else ''}.gguf"
            bools = {"tokenizer.ggml.add_bos_token": True} if add_bos else {}
            made[key] = with_metadata(
                model_path(),
                folder / name,
                strings={"tokenizer.chat_template": template},
                bools=bools,
                weights=weights,
            )
        return made[key]

    return make
