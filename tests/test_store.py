"""Pull, verify, find offline, list and remove, against a local Hub look-alike, with
huggingface_hub's real download code and a private cache per test."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest
from hubserver import DEAD_ENDPOINT, GATED_TOKEN, FakeFile, FakeRepo, HubServer, tiny
from testmodel import model_path

from llmcli import aliases, store
from llmcli.errors import (
    DiskError,
    ExitCode,
    ModelInvalidError,
    ModelNotFoundError,
    NetworkError,
    UsageError,
)
from llmcli.model_refs import HubRef, parse_ref
from llmcli.resolve import resolver
from llmcli.store import download, integrity


def ref(text: str) -> HubRef:
    parsed = parse_ref(text)
    assert isinstance(parsed, HubRef)
    return parsed


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir() -> Path:
    return store.HubSettings.from_env().cache_dir


def blobs(repo_id: str) -> list[Path]:
    folder = cache_dir() / ("models--" + repo_id.replace("/", "--")) / "blobs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


class Recorder:
    """A ProgressFactory that remembers what it was told."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.files: dict[str, list[int]] = {}  # name -> [total, bytes advanced, closed]

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def start_file(self, name: str, total: int | None, initial: int = 0) -> Recorder.File:
        self.files[name] = [total or 0, initial, 0]
        return Recorder.File(self.files[name])

    class File:
        def __init__(self, slot: list[int]) -> None:
            self.slot = slot

        def advance(self, nbytes: int) -> None:
            self.slot[1] += nbytes

        def close(self) -> None:
            self.slot[2] += 1


# -- choosing and downloading -------------------------------------------------------------


def test_pull_picks_q4_k_m_and_verifies_it(hub: HubServer) -> None:
    pulled = store.pull(ref("test/tiny-GGUF"))
    assert pulled.path.name == "tiny-Q4_K_M.gguf" and pulled.quant == "Q4_K_M"
    expected = hub.repos["test/tiny-GGUF"].files["tiny-Q4_K_M.gguf"].sha256
    assert sha256(pulled.path) == expected
    assert pulled.path.is_relative_to(cache_dir())
    # Only the chosen file was fetched, not the other quants; and the projector beside
    # it, so that the model can read images.
    fetched = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert fetched == [
        "/test/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf",
        "/test/tiny-GGUF/resolve/main/mmproj-tiny-F16.gguf",
    ]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("test/tiny-GGUF:q8_0", "tiny-Q8_0.gguf"),
        ("hf.co/test/tiny-GGUF:F16", "tiny-F16.gguf"),
        ("huggingface.co/test/tiny-GGUF:Q4_K_S", "tiny-Q4_K_S.gguf"),
        ("test/tiny-GGUF/sub/tiny-Q5_K_M.gguf", "tiny-Q5_K_M.gguf"),
        ("test/tiny-GGUF:Q5_K_M", "tiny-Q5_K_M.gguf"),
        ("test/noq4-GGUF", "noq4-Q6_K.gguf"),  # preference order: Q6_K before Q8_0
    ],
)
def test_every_reference_form_pulls_the_right_file(hub: HubServer, text: str, name: str) -> None:
    assert store.pull(ref(text)).path.name == name


def test_an_alias_pulls_its_repo_and_quant(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    family = aliases.Family("small", {"small": aliases.AliasTarget("test/tiny-GGUF", "Q8_0")})
    monkeypatch.setitem(aliases.FAMILIES, "tiny", family)
    path = resolver.ensure_model("tiny", progress=None)
    assert path.name == "tiny-Q8_0.gguf"
    assert [m.name for m in store.list_models()] == ["tiny:small"]


def test_unknown_quant_lists_the_available_ones(hub: HubServer) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        store.pull(ref("test/tiny-GGUF:Q2_K"))
    assert info.value.exit_code == ExitCode.MODEL_NOT_FOUND
    assert "F16, Q4_K_M, Q4_K_S, Q5_K_M, Q8_0" in str(info.value)


def test_missing_file_lists_the_model_files(hub: HubServer) -> None:
    with pytest.raises(ModelNotFoundError, match=r"tiny-Q8_0\.gguf"):
        store.pull(ref("test/tiny-GGUF/nope.gguf"))


def test_missing_repo(hub: HubServer) -> None:
    with pytest.raises(ModelNotFoundError, match="not found on the Hub: test/nope-GGUF"):
        store.pull(ref("test/nope-GGUF"))


def test_missing_revision(hub: HubServer) -> None:
    with pytest.raises(ModelNotFoundError, match="revision"):
        store.pull(ref("test/tiny-GGUF"), revision="no-such-branch")


def test_pull_by_commit(hub: HubServer) -> None:
    commit = hub.repos["test/tiny-GGUF"].commit
    pulled = store.pull(ref("test/tiny-GGUF"), revision=commit)
    assert pulled.commit == commit
    assert store.find_cached(ref("test/tiny-GGUF"), revision=commit) == pulled


def test_gated_repo_says_to_set_hf_token(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_value")
    with pytest.raises(NetworkError) as info:
        store.pull(ref("test/gated-GGUF"))
    assert info.value.exit_code == ExitCode.NETWORK
    assert "HF_TOKEN" in str(info.value)
    assert "hf_wrong_token_value" not in str(info.value)
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    assert store.pull(ref("test/gated-GGUF")).path.name == "gated-Q4_K_M.gguf"


def test_split_model_gets_every_part(hub: HubServer) -> None:
    pulled = store.pull(ref("test/split-GGUF"))
    assert [p.name for p in pulled.files] == [
        f"SmolLM2-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert len({p.parent for p in pulled.files}) == 1  # side by side, as llama.cpp expects
    joined = b"".join(p.read_bytes() for p in pulled.files)
    assert hashlib.sha256(joined).hexdigest() == sha256(model_path())
    assert store.find_cached(ref("test/split-GGUF")) == pulled


def test_progress_sees_every_byte(hub: HubServer) -> None:
    recorder = Recorder()
    resolver.ensure_model("test/tiny-GGUF:Q8_0", progress=recorder)
    assert recorder.notices == ["pulling test/tiny-GGUF:Q8_0..."]
    assert recorder.files == {
        "tiny-Q8_0.gguf": [8192, 8192, 1],
        "mmproj-tiny-F16.gguf": [4096, 4096, 1],
    }


def test_dropped_connection_is_resumed_and_verified(hub: HubServer) -> None:
    hub.repos["test/drop-GGUF"].drops_left = 1
    pulled = store.pull(ref("test/drop-GGUF"))
    assert sha256(pulled.path) == hub.repos["test/drop-GGUF"].files["drop-Q4_K_M.gguf"].sha256
    gets = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
    assert len(gets) == 2  # the cut one, then the rest with a Range request


# -- integrity --------------------------------------------------------------------------


def test_hash_mismatch_keeps_nothing(hub: HubServer) -> None:
    with pytest.raises(ModelInvalidError) as info:
        store.pull(ref("test/badsha-GGUF"))
    assert info.value.exit_code == ExitCode.MODEL_INVALID
    assert "SHA-256" in str(info.value)
    assert blobs("test/badsha-GGUF") == []
    assert store.find_cached(ref("test/badsha-GGUF")) is None
    assert store.list_models() == []


def test_unsafe_file_names_from_the_hub_are_refused(hub: HubServer) -> None:
    with pytest.raises(ModelInvalidError, match="unsafe file name"):
        store.pull(ref("test/evil-GGUF"))
    assert not (cache_dir() / "evil-Q4_K_M.gguf").exists()
    assert blobs("test/evil-GGUF") == []


def test_a_corrupted_cached_file_is_refused_then_repaired_by_pull(hub: HubServer) -> None:
    pulled = store.pull(ref("test/tiny-GGUF"))
    blob = pulled.path.resolve()
    blob.write_bytes(b"GGUF" + b"\0" * 4092)  # same size, different bytes
    with pytest.raises(ModelInvalidError, match="fails its checksum"):
        store.find_cached(ref("test/tiny-GGUF"))
    repaired = store.pull(ref("test/tiny-GGUF"))
    assert sha256(repaired.path) == hub.repos["test/tiny-GGUF"].files["tiny-Q4_K_M.gguf"].sha256
    assert store.find_cached(ref("test/tiny-GGUF")) == repaired


def test_verification_is_remembered_until_the_file_changes(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pulled = store.pull(ref("test/tiny-GGUF"))
    calls: list[Path] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    assert store.find_cached(ref("test/tiny-GGUF")) == pulled
    assert calls == []  # verified at pull: not hashed again
    os.utime(pulled.path.resolve(), ns=(1, 1))  # any change invalidates the record
    assert store.find_cached(ref("test/tiny-GGUF")) == pulled
    assert len(calls) == 1


def test_files_from_other_tools_are_verified_by_their_blob_name(hub: HubServer) -> None:
    from huggingface_hub import hf_hub_download

    path = Path(
        hf_hub_download("test/noq4-GGUF", "noq4-Q8_0.gguf", cache_dir=cache_dir(), endpoint=hub.url)
    )
    found = store.find_cached(ref("test/noq4-GGUF:Q8_0"))
    assert found is not None and found.path == path
    path.resolve().write_bytes(tiny("tampered"))
    with pytest.raises(ModelInvalidError):
        store.find_cached(ref("test/noq4-GGUF:Q8_0"))


# -- cache use without the network --------------------------------------------------------


def test_cached_model_is_used_offline_without_any_request(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = resolver.ensure_model("test/SmolLM2-GGUF", progress=None)
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", DEAD_ENDPOINT)
    assert resolver.ensure_model("test/SmolLM2-GGUF", progress=None) == online
    assert resolver.ensure_model("test/SmolLM2-GGUF:Q4_K_M", progress=None) == online
    assert hub.requests == []
    assert sha256(online) == sha256(model_path())


def test_cached_model_needs_no_network_even_when_online(hub: HubServer) -> None:
    resolver.ensure_model("test/tiny-GGUF", progress=None)
    hub.requests.clear()
    resolver.ensure_model("test/tiny-GGUF", progress=None)
    assert hub.requests == []


def test_offline_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NetworkError, match="offline") as info:
        resolver.ensure_model("test/tiny-GGUF", progress=None)
    assert info.value.exit_code == ExitCode.NETWORK


def test_unreachable_hub() -> None:
    # conftest points HF_ENDPOINT at a closed port: one short retry, then this error.
    with pytest.raises(NetworkError, match="cannot reach the Hub") as info:
        resolver.ensure_model("test/tiny-GGUF", progress=None)
    assert info.value.exit_code == ExitCode.NETWORK


def test_disk_full(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def full(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", full)
    with pytest.raises(DiskError, match="disk full") as info:
        store.pull(ref("test/tiny-GGUF"))
    assert info.value.exit_code == ExitCode.DISK


# -- model references through ensure_model ----------------------------------------------


def test_local_paths(tmp_path: Path, hub: HubServer) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolver.ensure_model(str(gguf), progress=None) == gguf
    with pytest.raises(ModelNotFoundError, match=r"model file not found: \./missing\.gguf"):
        resolver.ensure_model("./missing.gguf", progress=None)
    assert hub.requests == []


def test_default_model_comes_from_the_environment(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCLI_MODEL", "test/tiny-GGUF:Q4_K_S")
    assert resolver.ensure_model(None, progress=None).name == "tiny-Q4_K_S.gguf"
    monkeypatch.delenv("LLMCLI_MODEL")
    assert resolver.default_ref() == aliases.DEFAULT_MODEL


# -- list and remove ----------------------------------------------------------------------


def test_list_names_sizes_and_other_tools_downloads(hub: HubServer) -> None:
    from huggingface_hub import hf_hub_download

    store.pull(ref("test/tiny-GGUF"))
    store.pull(ref("test/split-GGUF"))
    hf_hub_download("test/noq4-GGUF", "noq4-Q8_0.gguf", cache_dir=cache_dir(), endpoint=hub.url)
    listed = {m.name: m for m in store.list_models()}
    assert sorted(listed) == [
        "test/noq4-GGUF:Q8_0",
        "test/split-GGUF:Q4_K_M",
        "test/tiny-GGUF:Q4_K_M",
    ]
    assert listed["test/split-GGUF:Q4_K_M"].size == model_path().stat().st_size
    assert len(listed["test/split-GGUF:Q4_K_M"].files) == 3
    assert listed["test/tiny-GGUF:Q4_K_M"].quant == "Q4_K_M"
    assert listed["test/tiny-GGUF:Q4_K_M"].refs == ("main",)


def test_remove_one_quant_keeps_the_others(hub: HubServer) -> None:
    store.pull(ref("test/tiny-GGUF"))
    store.pull(ref("test/tiny-GGUF:Q8_0"))
    plan = store.plan_removal(["test/tiny-GGUF:q8_0"])
    assert [m.name for m in plan.models] == ["test/tiny-GGUF:Q8_0"]
    assert plan.freed_bytes == 8192
    assert [m.name for m in store.list_models()] == ["test/tiny-GGUF:Q4_K_M", "test/tiny-GGUF:Q8_0"]
    assert plan.execute() == 8192
    assert [m.name for m in store.list_models()] == ["test/tiny-GGUF:Q4_K_M"]
    # The Q4_K_M model and the projector pulled with it.
    assert len(blobs("test/tiny-GGUF")) == 2


def test_remove_a_whole_repo(hub: HubServer) -> None:
    store.pull(ref("test/tiny-GGUF"))
    store.pull(ref("test/tiny-GGUF:Q8_0"))
    plan = store.plan_removal(["test/tiny-GGUF"])
    assert plan.freed_bytes == 4096 + 8192 + 4096  # the projector goes with the repo
    plan.execute()
    assert store.list_models() == []
    assert not (cache_dir() / "models--test--tiny-GGUF").exists()


def test_remove_what_is_not_there(hub: HubServer) -> None:
    with pytest.raises(ModelNotFoundError, match="not in the cache"):
        store.plan_removal(["test/tiny-GGUF"])
    with pytest.raises(UsageError, match="local file"):
        store.plan_removal(["./m.gguf"])


# -- interrupted downloads ----------------------------------------------------------------


def leftover(repo_id: str, etag: str, *, age_s: float, size: int = 1000) -> Path:
    """A partial download as huggingface_hub names it, last written `age_s` ago."""
    folder = cache_dir() / ("models--" + repo_id.replace("/", "--")) / "blobs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{etag}.0123abcd.incomplete"
    path.write_bytes(b"x" * size)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_only_idle_unlocked_partial_downloads_are_leftovers() -> None:
    from huggingface_hub.utils import WeakFileLock

    old = leftover("test/slow-GGUF", "a" * 64, age_s=3600)
    fresh = leftover("test/slow-GGUF", "b" * 64, age_s=1)  # perhaps still being written
    held = leftover("test/slow-GGUF", "c" * 64, age_s=3600)
    locks = cache_dir() / ".locks" / "models--test--slow-GGUF"
    locks.mkdir(parents=True)
    with WeakFileLock(locks / f"{'c' * 64}.lock"):  # as a pull in progress holds it
        found = store.leftovers()
        assert [(p.repo_id, p.path, p.size) for p in found] == [("test/slow-GGUF", old, 1000)]
    assert {p.path for p in store.leftovers()} == {old, held}
    assert fresh.exists()


def test_pull_removes_its_repos_leftovers_only(hub: HubServer) -> None:
    mine = leftover("test/tiny-GGUF", "a" * 64, age_s=3600)
    other = leftover("test/noq4-GGUF", "b" * 64, age_s=3600)
    store.pull(ref("test/tiny-GGUF"))
    assert not mine.exists() and other.exists()


def test_remove_takes_the_repos_leftovers_along(hub: HubServer) -> None:
    store.pull(ref("test/tiny-GGUF"))
    partial = leftover("test/tiny-GGUF", "a" * 64, age_s=3600, size=5000)
    plan = store.plan_removal(["test/tiny-GGUF"])
    assert [p.path for p in plan.leftovers] == [partial]
    assert plan.freed_bytes == 4096 + 4096 + 5000  # the model, its projector, the partial
    plan.execute()
    assert not partial.exists() and store.list_models() == []


def test_remove_of_a_repo_that_holds_only_leftovers() -> None:
    partial = leftover("test/slow-GGUF", "a" * 64, age_s=3600)
    plan = store.plan_removal(["test/slow-GGUF"])
    assert plan.models == () and plan.freed_bytes == 1000
    plan.execute()
    assert not partial.exists()


def test_a_new_listing_entry_does_not_disturb_the_cache(hub: HubServer) -> None:
    """A repo that gains a better quant later: the cached model stays what `-m` means
    until the user pulls again."""
    hub.add(FakeRepo("test/grow-GGUF", {"g-Q8_0.gguf": FakeFile(tiny("g8"))}))
    first = resolver.ensure_model("test/grow-GGUF", progress=None)
    hub.repos["test/grow-GGUF"].files["g-Q4_K_M.gguf"] = FakeFile(tiny("g4"))
    assert resolver.ensure_model("test/grow-GGUF", progress=None) == first
    assert store.pull(ref("test/grow-GGUF")).path.name == "g-Q4_K_M.gguf"


def test_a_download_is_hashed_while_it_arrives(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second read of a freshly downloaded file: it was hashed in flight, and the
    hash is trusted only because it covers the very inode that became the blob."""
    calls: list[Path] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    pulled = store.pull(ref("test/SmolLM2-GGUF"))
    assert store.find_cached(ref("test/SmolLM2-GGUF")) == pulled
    assert calls == []
    assert sha256(pulled.path) == sha256(model_path())


def test_an_in_flight_hash_counts_only_for_the_file_it_followed(tmp_path: Path) -> None:
    blobs_dir = tmp_path / "blobs"
    blobs_dir.mkdir()
    etag = hashlib.sha256(b"payload").hexdigest()

    def follow() -> integrity.TailHasher:
        (blobs_dir / f"{etag}.0a1b2c3d.incomplete").write_bytes(b"payload")
        hasher = integrity.TailHasher(blobs_dir, etag)
        hasher.start()
        return hasher

    # What hf_hub_download does at the end: rename the temporary file into place.
    hasher = follow()
    blob = blobs_dir / etag
    os.replace(blobs_dir / f"{etag}.0a1b2c3d.incomplete", blob)
    assert download._verified_in_flight(blob, hasher, etag)

    # Same bytes in another file (another inode): the hash says nothing about it.
    hasher = follow()
    copy = tmp_path / "copy"
    copy.write_bytes(b"payload")
    assert not download._verified_in_flight(copy, hasher, etag)

    # A transfer that rewound (restarted in the same file) voids the result.
    hasher = follow()
    hasher.invalidate()
    assert not download._verified_in_flight(blobs_dir / f"{etag}.0a1b2c3d.incomplete", hasher, etag)
