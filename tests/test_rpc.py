"""Splitting a model across `llmcli worker`s with llama.cpp's RPC backend.

Real workers, each its own process on 127.0.0.1, and the real test model. These tests
need a llama.cpp build with RPC (README, "Install and run"); on a build without it they
fail and say how to reinstall, they do not skip.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import cli_command, run_cli

from llmcli.engine.system_info import RPC_INSTALL
from llmcli.errors import ExitCode

PROMPT = "List the planets of the solar system, one per line, with one fact about each."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """`llmcli worker` in its own process, its stderr read as it comes."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            cli_command("worker", "--port", str(self.port), "--threads", "1", *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stderr = ""
        self.wait_for("worker listening")

    def read_stderr(self, timeout: float) -> None:
        assert self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stderr, selectors.EVENT_READ)
        if selector.select(timeout):
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            self.stderr += chunk.decode(errors="replace")
        selector.close()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.read_stderr(0.5)
                raise AssertionError(f"worker never said {text!r}; it said:\n{self.stderr}")
            self.read_stderr(0.5)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr += err.decode(errors="replace")
        return self.proc.returncode


@pytest.fixture(scope="module")
def workers() -> Iterator[list[Worker]]:
    assert_rpc_build()
    started = [Worker(), Worker()]
    yield started
    for worker in started:
        worker.stop()


def assert_rpc_build() -> None:
    import llama_cpp

    assert llama_cpp.llama_supports_rpc(), (
        f"this llama.cpp build has no RPC backend; the test suite needs one: {RPC_INSTALL}"
    )


def answer(model: Path, *args: str) -> dict[str, object]:
    result = run_cli(
        "run", "-m", str(model), "--temperature", "0", "-n", "48", "--no-prompt-cache",
        "--json", *args, PROMPT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_this_build_has_rpc() -> None:
    assert_rpc_build()
    from llmcli.engine.rpc import require_rpc, rpc_supported

    assert rpc_supported()
    require_rpc()  # finds the RPC backend in the ggml instance libllama uses


def test_answer_split_over_two_workers_equals_the_local_one(
    model_file: Path, workers: list[Worker]
) -> None:
    local = answer(model_file)
    endpoints = ",".join(w.endpoint for w in workers)
    split = answer(model_file, "--rpc", endpoints)
    assert split["text"] == local["text"]
    assert "split" not in local
    report = split["split"]
    assert isinstance(report, dict)
    on_workers = [d for d in report["devices"] if d["device"].startswith("RPC")]
    assert {d["description"] for d in on_workers} == {w.endpoint for w in workers}
    assert all(d["weights_mib"] > 0 and d["kv_cache_mib"] > 0 for d in on_workers)
    # Every layer (the output layer counts as one) is on a worker, some on each.
    assert report["offloaded"] == "31/31"
    assert sum(d["layers"] for d in on_workers) == 31
    assert all(d["layers"] > 0 for d in on_workers)
    for worker in workers:
        worker.wait_for("a client connected")


def test_stats_say_how_the_model_was_split(model_file: Path, workers: list[Worker]) -> None:
    result = run_cli(
        "run", "-m", str(model_file), "-n", "4", "--stats", "--no-prompt-cache",
        "--rpc", workers[0].endpoint, "Hi",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"RPC0 ({workers[0].endpoint}): 31 layers" in result.stderr
    assert "split over" in result.stderr


def test_tensor_split_sets_each_workers_share(model_file: Path, workers: list[Worker]) -> None:
    endpoints = ",".join(w.endpoint for w in workers)
    report = answer(model_file, "--rpc", endpoints, "--tensor-split", "1,3")["split"]
    assert isinstance(report, dict)
    layers = {d["description"]: d["layers"] for d in report["devices"]}
    assert layers[workers[0].endpoint] == 8
    assert layers[workers[1].endpoint] == 23
    bad = run_cli("run", "-m", str(model_file), "--tensor-split", "1,x", "Hi")
    assert bad.returncode == ExitCode.USAGE
    assert "--tensor-split" in bad.stderr


def test_rpc_from_the_environment_and_the_config_file(
    model_file: Path, workers: list[Worker], isolated_home: Path
) -> None:
    endpoint = workers[0].endpoint
    by_env = run_cli(
        "run", "-m", str(model_file), "-n", "2", "--json", "--no-prompt-cache", "Hi",
        env={"LLMCLI_RPC": endpoint},
    )  # fmt: skip
    assert by_env.returncode == 0, by_env.stderr
    assert endpoint in json.dumps(json.loads(by_env.stdout)["split"])
    (isolated_home / "config.toml").write_text(f'rpc = "{endpoint}"\n')
    by_config = run_cli("run", "-m", str(model_file), "-n", "2", "--json", "Hi")
    assert by_config.returncode == 0, by_config.stderr
    assert by_config.stderr == ""  # a known key: no warning
    shown = run_cli("config", "show", "--json")
    assert json.loads(shown.stdout)["rpc"] == endpoint
    assert endpoint in json.dumps(json.loads(by_config.stdout)["split"])


def test_a_worker_that_is_down_gives_one_clear_error(model_file: Path) -> None:
    assert_rpc_build()
    endpoint = f"127.0.0.1:{free_port()}"
    result = run_cli("run", "-m", str(model_file), "--rpc", endpoint, "Hi")
    assert result.returncode == ExitCode.WORKER_LOST
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot reach the RPC worker {endpoint}" in lines[0]
    assert "llmcli worker" in lines[0]


def test_something_else_on_the_port_is_not_taken_for_a_worker(model_file: Path) -> None:
    assert_rpc_build()
    with socket.create_server(("127.0.0.1", 0)) as server:
        endpoint = f"127.0.0.1:{server.getsockname()[1]}"

        def close_every_connection() -> None:
            while True:
                try:
                    server.accept()[0].close()
                except OSError:
                    return

        threading.Thread(target=close_every_connection, daemon=True).start()
        result = run_cli("run", "-m", str(model_file), "--rpc", endpoint, "Hi")
    assert result.returncode == ExitCode.WORKER_LOST
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{endpoint} did not answer as an RPC worker" in lines[0]


def test_a_malformed_rpc_address_is_a_usage_error(model_file: Path) -> None:
    result = run_cli("run", "-m", str(model_file), "--rpc", "localhost", "Hi")
    assert result.returncode == ExitCode.USAGE
    assert "HOST:PORT" in result.stderr


def test_a_worker_killed_mid_answer_keeps_the_partial_answer(model_file: Path) -> None:
    worker = Worker()
    try:
        proc = subprocess.Popen(
            cli_command(
                "run",
                "-m",
                str(model_file),
                "--rpc",
                worker.endpoint,
                "--temperature",
                "0",
                "--no-lookup",
                "--no-prompt-cache",
                "-n",
                "4000",
                "-c",
                "4096",
                "Write a very long story about a lighthouse keeper.",
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 4096)  # the answer has begun
        assert first, proc.communicate(timeout=30)[1].decode()
        worker.proc.kill()
        rest, err = proc.communicate(timeout=120)
    finally:
        worker.stop()
    stdout = (first + rest).decode(errors="replace")
    stderr = err.decode(errors="replace")
    assert proc.returncode == ExitCode.WORKER_LOST, stderr
    assert stdout.strip()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"lost the RPC worker ({worker.endpoint})" in lines[0]


def test_worker_stops_cleanly_on_sigterm_and_warns_off_loopback() -> None:
    assert_rpc_build()
    worker = Worker("--host", "0.0.0.0")
    assert "no authentication" in worker.stderr
    assert "trusted network" in worker.stderr
    assert worker.stop() == 0
    assert "worker stopped" in worker.stderr
    assert "Traceback" not in worker.stderr


def test_worker_refuses_a_port_in_use() -> None:
    assert_rpc_build()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("worker", "--port", str(port))
    assert result.returncode == ExitCode.USAGE
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


# A build without RPC: llama_supports_rpc() answers False, as it does in such a build.
_WITHOUT_RPC = """
import sys
import llama_cpp
llama_cpp.llama_supports_rpc = lambda: False
from llmcli.cli import main
sys.argv[0] = "llmcli"
sys.exit(main())
"""


@pytest.mark.parametrize("args", [["worker"], ["run", "--rpc", "127.0.0.1:1", "Hi"]])
def test_a_build_without_rpc_refuses_with_the_reinstall_command(
    model_file: Path, args: list[str]
) -> None:
    if args[0] == "run":
        args = [*args[:1], "-m", str(model_file), *args[1:]]
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RPC, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "this llama.cpp build has no RPC backend" in result.stderr
    assert RPC_INSTALL in result.stderr


def test_doctor_says_whether_the_build_has_rpc() -> None:
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    import llama_cpp

    assert report["engine"]["rpc"] is bool(llama_cpp.llama_supports_rpc())


def test_split_report_reads_llama_cpp_load_log() -> None:
    from llmcli.engine.split import SplitReport, _read_line

    report = SplitReport()
    for line in [
        "load_tensors: offloaded 31/31 layers to GPU",
        "llama_prepare_model_devices: using device RPC0 (127.0.0.1:50052) (unknown id) - 9 MiB",
        "llama_prepare_model_devices: using device RPC1 (127.0.0.1:50053) (unknown id) - 9 MiB",
        "load_tensors: layer   0 assigned to device RPC0, is_swa = 0",
        "load_tensors: layer   1 assigned to device RPC1, is_swa = 0",
        "load_tensors:   CPU_Mapped model buffer size =    20.00 MiB",
        "load_tensors: RPC0[127.0.0.1:50052] model buffer size =    40.50 MiB",
        "llama_kv_cache: RPC0[127.0.0.1:50053] KV buffer size =    12.00 MiB",
    ]:
        _read_line(report, line)
    data = report.as_dict()
    assert data["offloaded"] == "31/31"
    by_name = {d["device"]: d for d in data["devices"]}
    assert by_name["CPU"]["weights_mib"] == 20.0
    assert by_name["RPC0"]["layers"] == 1
    assert by_name["RPC0"]["weights_mib"] == 40.5
    assert by_name["RPC0"]["description"] == "127.0.0.1:50052"
    assert by_name["RPC1"]["kv_cache_mib"] == 12.0
