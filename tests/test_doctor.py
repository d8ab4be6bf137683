"""`llmcli doctor`: the facts, their types, and that no secret is printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from clihelpers import run_cli

from llmcli.engine.system_info import parse_system_info


def test_json_fields_are_present_and_typed() -> None:
    proc = run_cli("doctor", "--json", env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert isinstance(report["llmcli"], str)
    assert isinstance(report["python"], str) and isinstance(report["platform"], str)
    engine = report["engine"]
    assert isinstance(engine["llama_cpp_python"], str)
    assert isinstance(engine["gpu_offload"], bool)
    assert "CPU" in engine["backends"] and isinstance(engine["backends"]["CPU"], list)
    assert isinstance(engine["system_info"], str)
    if engine["gpu_offload"]:
        assert report["gpu_install"] == []
    else:
        assert any("--force-reinstall" in cmd for cmd in report["gpu_install"])
    threads = report["threads"]
    assert threads["default"] >= 1 and threads["usable_cores"] >= 1
    cache = report["cache"]
    assert cache["path"] == os.environ["HF_HUB_CACHE"]
    assert isinstance(cache["size_bytes"], int) and isinstance(cache["models"], int)
    assert cache["free_bytes"] is None or cache["free_bytes"] > 0
    assert report["hub"] == {
        "endpoint": os.environ["HF_ENDPOINT"],
        "offline": True,
        "token": False,
        "token_source": None,
    }
    assert report["config"]["path"] == os.environ["LLMCLI_CONFIG"]
    assert report["config"]["exists"] is False and report["config"]["valid"] is True


def test_token_is_reported_never_shown() -> None:
    secret = "hf_thisisnotarealtoken123"
    proc = run_cli("doctor", env={"HF_TOKEN": secret})
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert "token:" in proc.stdout and "yes (HF_TOKEN)" in proc.stdout
    report = json.loads(run_cli("doctor", "--json", env={"HF_TOKEN": secret}).stdout)
    assert (report["hub"]["token"], report["hub"]["token_source"]) == (True, "HF_TOKEN")


def test_piped_output_is_plain_lines_and_reports_a_broken_config() -> None:
    path = Path(os.environ["LLMCLI_CONFIG"])
    path.write_text("temperature = \n")
    proc = run_cli("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)["config"]
    assert facts["valid"] is False and f"{path}:1:" in facts["error"]
    plain = run_cli("doctor").stdout
    assert "\x1b[" not in plain
    assert any(line.startswith("GPU offload:") for line in plain.splitlines())
    assert "does not load" in plain


def test_system_info_parsing() -> None:
    text = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX = 0 | OPENMP = 1 |"
    assert parse_system_info(text) == {
        "CUDA": ["ARCHS=890", "USE_GRAPHS"],
        "CPU": ["SSE3", "OPENMP"],
    }
