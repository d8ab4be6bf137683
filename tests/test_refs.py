"""Model references and quantization choice: pure functions, no network, no disk."""

from __future__ import annotations

import pytest

from llmcli import aliases
from llmcli.errors import ExitCode, ModelNotFoundError, UsageError
from llmcli.model_refs import HubRef, LocalRef, is_safe_repo_path, parse_ref
from llmcli.quants import PREFERENCE, SelectionError, candidates, quant_of, select

# -- references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smollm2", HubRef("bartowski/SmolLM2-135M-Instruct-GGUF", "Q4_K_M", alias="smollm2:135m")),
        (
            "smollm2:360m",
            HubRef("bartowski/SmolLM2-360M-Instruct-GGUF", "Q4_K_M", alias="smollm2:360m"),
        ),
        (
            "SmolLM2:1.7B",
            HubRef("bartowski/SmolLM2-1.7B-Instruct-GGUF", "Q4_K_M", alias="smollm2:1.7b"),
        ),
        ("qwen2.5:1.5b", HubRef("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "Q4_K_M", alias="qwen2.5:1.5b")),
        (
            "llama3.2:3b",
            HubRef("bartowski/Llama-3.2-3B-Instruct-GGUF", "Q4_K_M", alias="llama3.2:3b"),
        ),
        ("gemma3:1b", HubRef("unsloth/gemma-3-1b-it-GGUF", "Q4_K_M", alias="gemma3:1b")),
        ("phi3.5", HubRef("bartowski/Phi-3.5-mini-instruct-GGUF", "Q4_K_M", alias="phi3.5:3.8b")),
        (
            "mistral:7b",
            HubRef("bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Q4_K_M", alias="mistral:7b"),
        ),
        (
            "nomic-embed-text",
            HubRef("nomic-ai/nomic-embed-text-v1.5-GGUF", "F16", alias="nomic-embed-text:v1.5"),
        ),
        ("owner/repo", HubRef("owner/repo")),
        ("owner/repo:q5_k_m", HubRef("owner/repo", "Q5_K_M")),
        ("owner/repo:Q8_0", HubRef("owner/repo", "Q8_0")),
        ("owner/repo:fp16", HubRef("owner/repo", "F16")),
        ("owner/repo/model-Q4_K_M.gguf", HubRef("owner/repo", filename="model-Q4_K_M.gguf")),
        ("owner/repo/sub/dir/m.gguf", HubRef("owner/repo", filename="sub/dir/m.gguf")),
        ("hf.co/owner/repo:Q6_K", HubRef("owner/repo", "Q6_K")),
        ("huggingface.co/owner/repo", HubRef("owner/repo")),
        ("https://huggingface.co/owner/repo", HubRef("owner/repo")),
        ("HF.CO/Owner/Repo.v2-GGUF:iq4_xs", HubRef("Owner/Repo.v2-GGUF", "IQ4_XS")),
        ("  owner/repo  ", HubRef("owner/repo")),
    ],
)
def test_hub_references(text: str, expected: HubRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    ["./model.gguf", "/abs/path/m.gguf", "~/models/m.gguf", "model.gguf", "dir/model.GGUF", "../x"],
)
def test_local_spellings(text: str) -> None:
    assert parse_ref(text) == LocalRef(text)


def test_an_existing_path_wins_over_every_other_reading() -> None:
    # `a/b/c.gguf` would be a Hub file, and `smollm2` an alias, unless they exist on disk.
    on_disk = {"a/b/c.gguf", "smollm2"}
    assert parse_ref("a/b/c.gguf", exists=on_disk.__contains__) == LocalRef("a/b/c.gguf")
    assert parse_ref("smollm2", exists=on_disk.__contains__) == LocalRef("smollm2")
    assert parse_ref("a/b/c.gguf") == HubRef("a/b", filename="c.gguf")


def test_unknown_alias_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        parse_ref("smolm2")
    assert info.value.exit_code == ExitCode.MODEL_NOT_FOUND
    assert "smollm2" in str(info.value)


def test_unknown_tag_lists_the_tags_of_the_family() -> None:
    with pytest.raises(ModelNotFoundError, match=r"qwen2\.5:0\.5b.*qwen2\.5:3b"):
        parse_ref("qwen2.5:99b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "owner/../repo",
        "owner/repo/../../etc/passwd.gguf",
        "owner/repo/./m.gguf",
        "owner/repo//m.gguf",
        "owner/repo/a\\b.gguf",
        "owner/repo/readme.md",
        "owner/repo/m.gguf:Q4_K_M",
        "owner/re po",
        "-x/repo",
        "owner/repo:bad tag",
        "https://example.com/owner/repo",
    ],
)
def test_invalid_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("m.gguf", True),
        ("sub/m.gguf", True),
        ("../m.gguf", False),
        ("a/../../m.gguf", False),
        ("/etc/m.gguf", False),
        ("C:/m.gguf", False),
        ("a\\m.gguf", False),
        ("a//m.gguf", False),
        ("a/./m.gguf", False),
        ("m\n.gguf", False),
        ("", False),
    ],
)
def test_repo_path_safety(path: str, safe: bool) -> None:
    assert is_safe_repo_path(path) is safe


def test_every_alias_parses_and_names_itself() -> None:
    for name in aliases.all_names():
        ref = parse_ref(name)
        assert isinstance(ref, HubRef) and ref.alias is not None
        assert parse_ref(ref.alias) == ref
        assert aliases.alias_for(ref.repo_id, ref.quant) == ref.alias


def test_the_default_model_is_a_built_in_chat_alias() -> None:
    ref = parse_ref(aliases.DEFAULT_MODEL)
    assert isinstance(ref, HubRef)
    family = aliases.FAMILIES[ref.alias.split(":")[0]] if ref.alias else None
    assert family is not None and all(t.kind == "chat" for t in family.tags.values())


# -- quantizations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-1.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("nomic-embed-text-v1.5.Q8_0.gguf", "Q8_0"),
        ("nomic-embed-text-v1.5.f16.gguf", "F16"),
        ("gemma-3-1b-it-UD-IQ2_XXS.gguf", "IQ2_XXS"),
        ("SmolLM3-3B-Q6_K_L.gguf", "Q6_K_L"),
        ("qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf", "Q5_K_M"),
        ("Phi-3-mini-4k-instruct-fp16.gguf", "F16"),
        ("Model-bf16.gguf", "BF16"),
        ("dir/Model-Q4_0/Model-Q4_0.gguf", "Q4_0"),
        ("model.gguf", None),
    ],
)
def test_quant_from_file_name(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


REPO = [
    "README.md",
    "m-Q8_0.gguf",
    "m-Q4_K_S.gguf",
    "m-Q4_K_M.gguf",
    "m-F16.gguf",
    "mmproj-m-F16.gguf",
    "m.imatrix.gguf",
]


def test_default_is_q4_k_m() -> None:
    assert select(REPO, quant=None, filename=None).paths == ("m-Q4_K_M.gguf",)


def test_preference_order_is_followed_when_q4_k_m_is_missing() -> None:
    repo = [p for p in REPO if "Q4_K_M" not in p]
    assert select(repo, quant=None, filename=None).quant == "Q4_K_S"
    only_big = ["m-F16.gguf", "m-Q8_0.gguf", "m-Q6_K.gguf"]
    assert select(only_big, quant=None, filename=None).quant == "Q6_K"
    assert PREFERENCE.index("Q6_K") < PREFERENCE.index("Q8_0") < PREFERENCE.index("F16")


def test_explicit_quant_any_case() -> None:
    assert select(REPO, quant="q8_0", filename=None).paths == ("m-Q8_0.gguf",)


def test_unknown_quant_lists_what_exists() -> None:
    with pytest.raises(SelectionError) as info:
        select(REPO, quant="Q2_K", filename=None)
    # Projectors and imatrix files are GGUFs but not models: never offered.
    assert info.value.available == ["F16", "Q4_K_M", "Q4_K_S", "Q8_0"]


def test_a_single_unconventional_file_is_chosen() -> None:
    assert select(["weights.gguf"], quant=None, filename=None).paths == ("weights.gguf",)
    with pytest.raises(SelectionError):
        select(["a-IQ2_XS.gguf", "a-IQ3_M.gguf"], quant=None, filename=None)


def test_split_models_come_whole_and_in_order() -> None:
    files = [f"big/m-Q4_K_M-0000{i}-of-00003.gguf" for i in (3, 1, 2)] + ["m-Q8_0.gguf"]
    chosen = select(files, quant=None, filename=None)
    assert chosen.paths == tuple(f"big/m-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3))
    assert chosen.primary.endswith("00001-of-00003.gguf")
    # Naming any part selects the whole set.
    by_part = select(files, quant=None, filename="big/m-Q4_K_M-00002-of-00003.gguf")
    assert by_part == chosen


def test_incomplete_split_sets_are_not_models() -> None:
    files = ["m-Q4_K_M-00001-of-00002.gguf", "m-Q8_0.gguf"]
    assert [c.quant for c in candidates(files)] == ["Q8_0"]
    assert select(files, quant=None, filename=None).quant == "Q8_0"


def test_missing_file_lists_model_files() -> None:
    with pytest.raises(SelectionError) as info:
        select(REPO, quant=None, filename="nope.gguf")
    assert "m-Q4_K_M.gguf" in info.value.available


def test_no_gguf_at_all() -> None:
    with pytest.raises(SelectionError) as info:
        select(["README.md", "model.safetensors"], quant=None, filename=None)
    assert info.value.available == []
