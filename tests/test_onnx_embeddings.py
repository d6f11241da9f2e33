"""The embedding model run by onnxruntime gives torch's vectors, exports once, and leaves layouts it cannot
reproduce to torch (tools/onnx_embeddings.py). Real model: the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from settings import BGE_QUERY_INSTRUCTION, Settings
from tools.embeddings import _load, encode_queries, get_embeddings, model_path
from tools.onnx_embeddings import OnnxEmbeddings, supports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder() -> str:
    return model_path(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def paragraphs() -> list[str]:
    """Real documentation text of every length: the product's own docs, a long one past the 256-token limit."""
    text = (ROOT / "docs" / "retrieval.md").read_text()
    parts = [part.strip() for part in text.split("\n\n") if part.strip()]
    return [*parts[:40], "\n\n".join(parts)]


def test_documents_and_questions_get_torchs_vectors(folder: str, cache: Path) -> None:
    onnx, torch = OnnxEmbeddings(folder, cache), _load(folder, "")
    texts = paragraphs()
    assert np.abs(np.asarray(onnx.embed_documents(texts)) - np.asarray(torch.embed_documents(texts))).max() < 1e-5
    questions = ["How do I change the port?", "what is the rate limit\nin tier 2", "¿Cómo reinicio el servidor?"]
    batched = np.asarray(encode_queries(onnx, questions))
    assert np.abs(batched - np.asarray(encode_queries(torch, questions))).max() < 1e-5
    assert np.abs(batched[0] - np.asarray(onnx.embed_query(questions[0]))).max() < 1e-6  # alone as in a batch


def test_the_bge_query_instruction_goes_before_questions_only(folder: str, cache: Path) -> None:
    onnx, torch = OnnxEmbeddings(folder, cache, BGE_QUERY_INSTRUCTION), _load(folder, BGE_QUERY_INSTRUCTION)
    question = "How do I index my own documentation?"
    assert np.abs(np.asarray(onnx.embed_query(question)) - np.asarray(torch.embed_query(question))).max() < 1e-5
    plain = np.asarray(OnnxEmbeddings(folder, cache).embed_query(question))
    assert np.abs(np.asarray(onnx.embed_query(question)) - plain).max() > 1e-3
    assert onnx.embed_documents([question]) == OnnxEmbeddings(folder, cache).embed_documents([question])


def test_the_export_is_made_once_and_named_by_the_weights(folder: str, tmp_path: Path) -> None:
    OnnxEmbeddings(folder, tmp_path)
    (exported,) = tmp_path.iterdir()  # no half-written file beside it
    made = exported.stat().st_mtime_ns
    OnnxEmbeddings(folder, tmp_path)
    assert list(tmp_path.iterdir()) == [exported] and exported.stat().st_mtime_ns == made

    changed = tmp_path / "changed-model"
    shutil.copytree(folder, changed)
    weights = changed / "model.safetensors"
    tensors = load_file(weights)
    name = next(key for key, value in tensors.items() if value.is_floating_point())
    tensors[name][0] += 1e-3  # fine-tuned, say: other weights under the same folder name
    save_file(tensors, weights, metadata={"format": "pt"})
    OnnxEmbeddings(str(changed), tmp_path)
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".onnx"]) == 2


def test_a_pooling_onnx_cannot_reproduce_stays_on_torch(folder: str, tmp_path: Path) -> None:
    other = tmp_path / "max-pooled"
    shutil.copytree(folder, other)
    config = other / "1_Pooling" / "config.json"
    config.write_text(
        json.dumps(
            json.loads(config.read_text()) | {"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}
        )
    )
    assert supports(folder) and not supports(str(other))
    settings = Settings(_env_file=None, embedding_model=str(other), data_dir=tmp_path)  # type: ignore[call-arg]
    assert not isinstance(get_embeddings(settings), OnnxEmbeddings)
    with pytest.raises(ValueError, match="mean or CLS"):
        OnnxEmbeddings(str(other), tmp_path)
    concatenated = json.loads(config.read_text()) | {"pooling_mode_mean_tokens": True}  # mean and max, side by side
    config.write_text(json.dumps(concatenated))
    assert not supports(str(other))


def test_the_setting_chooses_the_backend(tmp_path: Path) -> None:
    onnx = get_embeddings(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    torch = get_embeddings(Settings(_env_file=None, data_dir=tmp_path, embedding_backend="torch"))  # type: ignore[call-arg]
    assert isinstance(onnx, OnnxEmbeddings) and not isinstance(torch, OnnxEmbeddings)
    assert list((tmp_path / "models" / "onnx").glob("*.onnx"))


def test_a_data_dir_it_cannot_write_falls_back_to_torch(tmp_path: Path) -> None:
    blocked = tmp_path / "data"
    blocked.write_text("a file where DATA_DIR's folder would be")  # mkdir under it fails, even for root
    embeddings = get_embeddings(Settings(_env_file=None, data_dir=blocked))  # type: ignore[call-arg]
    assert not isinstance(embeddings, OnnxEmbeddings)
    assert len(embeddings.embed_query("How do I change the port?")) == 384
