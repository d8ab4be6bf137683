"""`llmcli show` and the GGUF header reader: checked against gguf.GGUFReader on the real
test model, and on small synthetic files for split, big-endian and broken headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from clihelpers import ESCAPE, run_cli

from llmcli import config
from llmcli.errors import ModelInvalidError
from llmcli.gguf_file import info as gguf_info
from llmcli.gguf_file.info import ModelCard, build_card, model_card, read_header
from llmcli.ui.model_card import explain, format_count


@pytest.fixture(scope="module")
def reference(model_file: Path) -> Any:
    """gguf's own reader: slow (seconds) but the authority on the format."""
    return gguf.GGUFReader(model_file)


def _field(reader: Any, key: str) -> Any:
    return reader.get_field(key).contents()


# -- the header reader against gguf.GGUFReader -------------------------------------------


def test_header_matches_gguf_reader(model_file: Path, reference: Any) -> None:
    header = read_header(model_file)
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    assert [t.ggml_type for t in header.tensors] == [int(t.tensor_type) for t in reference.tensors]
    assert [t.n_elements for t in header.tensors] == [int(t.n_elements) for t in reference.tensors]
    meta = header.metadata
    for key in ("general.architecture", "llama.block_count", "tokenizer.chat_template"):
        assert meta[key] == _field(reference, key)
    tokens = meta["tokenizer.ggml.tokens"]
    assert isinstance(tokens, gguf_info.ArrayInfo)
    assert tokens.count == len(_field(reference, "tokenizer.ggml.tokens")) == 49152


def test_card_of_the_test_model(model_file: Path, reference: Any) -> None:
    card = build_card(model_file)
    assert card.parameters == sum(int(t.n_elements) for t in reference.tensors)
    assert card.tensor_count == len(reference.tensors)
    assert (card.architecture, card.layers, card.attention_heads, card.kv_heads) == (
        "llama",
        30,
        9,
        3,
    )
    assert (card.embedding_length, card.feed_forward_length, card.context_length) == (
        576,
        1536,
        8192,
    )
    assert (card.vocab_size, card.tokenizer_model) == (49152, "gpt2")
    assert (card.quantization, card.file_type) == ("Q4_1", 3)
    assert card.size_bytes == model_file.stat().st_size
    assert card.license == "apache-2.0"
    assert card.has_chat_template
    # The tensor mix adds up: every tensor and parameter once, bytes within the file.
    assert sum(s.tensors for s in card.tensor_types) == card.tensor_count
    assert sum(s.parameters for s in card.tensor_types) == card.parameters
    stored = sum(s.bytes or 0 for s in card.tensor_types)
    assert 0.95 * card.size_bytes < stored < card.size_bytes
    assert {s.type for s in card.tensor_types} == {"Q4_1", "Q8_0", "F32"}


@pytest.mark.parametrize(
    ("file_type", "name"), [(15, "Q4_K_M"), (3, "Q4_1"), (0, "F32"), (1, "F16")]
)
def test_file_type_names(file_type: int, name: str) -> None:
    assert gguf_info.file_type_name(file_type) == name


def test_constants_come_without_the_whole_gguf_package() -> None:
    # The fast path loads gguf/constants.py alone; it must agree with the package.
    constants = gguf_info._constants()
    assert constants.GGML_QUANT_SIZES[constants.GGMLQuantizationType.Q4_K] == (256, 144)
    assert gguf_info.ggml_type_bytes(int(gguf.GGMLQuantizationType.Q8_0), 64) == 68


# -- synthetic files -----------------------------------------------------------------------


def write_gguf(
    path: Path,
    *,
    tensors: dict[str, tuple[int, ...]],
    extra: dict[str, int] | None = None,
    endian: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_file_type(0)
    writer.add_token_list([f"tok{i}" for i in range(300)])  # a big array to step over
    for key, value in (extra or {}).items():
        writer.add_uint32(key, value)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_synthetic_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny.gguf", tensors={"a": (4, 8), "b": (8,)})
    card = build_card(path)
    assert card.parameters == 40
    assert card.vocab_size == 300
    assert card.kv_heads == 2  # absent: as many as the query heads, as llama.cpp assumes
    assert card.quantization == "F32"


def test_big_endian_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "be.gguf", tensors={"a": (4, 8)}, endian=gguf.GGUFEndian.BIG)
    card = build_card(path)
    assert (card.parameters, card.layers, card.vocab_size) == (32, 2, 300)


def test_split_model_sums_its_parts(tmp_path: Path) -> None:
    first = write_gguf(
        tmp_path / "m-00001-of-00002.gguf",
        tensors={"a": (4, 8)},
        extra={"split.count": 2, "split.no": 0},
    )
    second = write_gguf(
        tmp_path / "m-00002-of-00002.gguf",
        tensors={"b": (16, 8)},
        extra={"split.count": 2, "split.no": 1},
    )
    card = build_card(first)
    assert card.parameters == 32 + 128
    assert card.size_bytes == first.stat().st_size + second.stat().st_size
    assert (card.split_count, card.split_parts_found) == (2, 2)
    assert build_card(second).parameters == card.parameters  # any part names the model
    second.unlink()
    partial = build_card(first)
    assert (partial.parameters, partial.split_parts_found) == (32, 1)


def test_cache_follows_changes_to_the_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "x.gguf", tensors={"a": (4, 8)})
    assert model_card(path).parameters == 32
    assert list((config.user_cache_dir() / "cards").glob("*.json"))
    assert model_card(path) == build_card(path)  # a cache hit gives the same card
    write_gguf(path, tensors={"a": (4, 8), "b": (100,)})
    assert model_card(path).parameters == 132


@pytest.mark.parametrize("cut", [3, 10, 30, 5_000])
def test_truncated_headers_are_invalid(model_file: Path, tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.gguf"
    with model_file.open("rb") as f:
        path.write_bytes(f.read(cut))
    with pytest.raises(ModelInvalidError):
        read_header(path)


def test_card_round_trips_through_json(model_file: Path) -> None:
    card = build_card(model_file)
    assert ModelCard.from_dict(json.loads(json.dumps(card.as_dict()))) == card


# -- the words -----------------------------------------------------------------------------


def test_format_count() -> None:
    assert [format_count(n) for n in (134_515_008, 7_615_616_512, 999, 1_500)] == [
        "135M",
        "7.62B",
        "999",
        "1.5K",
    ]


def test_explanation_mentions_grouped_query_attention_only_when_used(model_file: Path) -> None:
    card = build_card(model_file)
    words = " ".join(explain(card))
    assert "30 transformer layers" in words and "576 numbers" in words
    assert "grouped-query attention" in words and "8,192 tokens" in words
    from dataclasses import replace

    assert "grouped-query" not in " ".join(explain(replace(card, kv_heads=9)))


# -- the command -----------------------------------------------------------------------------


def test_show_json(model_file: Path) -> None:
    proc = run_cli("show", str(model_file), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["parameters"] == 134_515_008
    assert data["quantization"] == "Q4_1" and data["has_chat_template"] is True
    assert data["path"] == str(model_file)
    assert proc.stderr == ""


def test_show_piped_is_plain_lines(model_file: Path) -> None:
    proc = run_cli("show", str(model_file))
    assert proc.returncode == 0, proc.stderr
    assert not ESCAPE.search(proc.stdout)
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines())
    assert lines["architecture"].strip() == "llama"
    assert lines["layers"].strip() == "30"
    assert "In plain words" not in proc.stdout  # explanations are for people, not pipes


def test_show_on_a_terminal_explains(model_file: Path) -> None:
    proc = run_cli("show", str(model_file), env={"FORCE_COLOR": "1", "COLUMNS": "300"})
    assert proc.returncode == 0, proc.stderr
    assert "In plain words" in proc.stdout
    assert "30 transformer layers" in proc.stdout


def test_show_template_is_verbatim(model_file: Path, reference: Any) -> None:
    proc = run_cli("show", str(model_file), "--template")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip("\n") == _field(reference, "tokenizer.chat_template").rstrip("\n")


def test_show_without_template(model_file: Path, tmp_path: Path) -> None:
    data = model_file.read_bytes().replace(b"tokenizer.chat_template", b"tokenizer.chat_templatX")
    base = tmp_path / "base.gguf"
    base.write_bytes(data)
    assert json.loads(run_cli("show", str(base), "--json").stdout)["has_chat_template"] is False
    proc = run_cli("show", str(base), "--template")
    assert proc.returncode == 1 and "no chat template" in proc.stderr


def test_show_errors(model_file: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model at all\n")
    proc = run_cli("show", str(text))
    assert proc.returncode == 4 and "not a GGUF" in proc.stderr
    cut = tmp_path / "cut.gguf"
    with model_file.open("rb") as f:
        cut.write_bytes(f.read(100_000))
    proc = run_cli("show", str(cut))
    assert proc.returncode == 4 and "truncated" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_cli("show", str(tmp_path / "missing.gguf")).returncode == 3
