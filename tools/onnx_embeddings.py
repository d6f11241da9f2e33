"""A sentence-transformers folder run by onnxruntime instead of torch (EMBEDDING_BACKEND=onnx, the default).

Why: a question's embedding is the largest part of the app's CPU before the first token under a burst
(docs/performance.md). Measured on MiniLM, 2 cores: one query 8.3 → 4.4 ms, 64 queries 214 → 97 ms; and
onnxruntime keeps the GIL released for the whole forward pass, where torch's Python layers take it between
every operation and so hold up the event loop thread. The vectors are torch's to within 1e-6
(tests/test_onnx_embeddings.py), so a collection ingested with either backend is searched with either.

The ONNX file is exported from the folder's own weights on first use (torch.onnx, the model's transformer only)
and kept under DATA_DIR/models/onnx, named by the weights' sha256: nothing is downloaded, a changed model gets
its own file, and a concurrent or interrupted export never leaves half a file (written aside, then renamed).
Pooling and normalisation follow the folder's sentence-transformers config: mean or CLS pooling, then unit
length (what `normalize_embeddings=True` gives with torch). Other layouts stay on torch (`supports`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
BATCH = 32  # texts per onnxruntime run


def _pooling(folder: Path) -> str | None:
    """'mean' or 'cls' from the folder's 1_Pooling config; None for anything else (max pooling, several modes
    concatenated, no config)."""
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    modes = json.loads(config.read_text())
    chosen = [mode for mode, flag in modes.items() if mode.startswith("pooling_mode_") and flag]
    if len(chosen) != 1:
        return None
    return {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(chosen[0])


def _weights(folder: Path) -> Path | None:
    return next((folder / name for name in WEIGHTS if (folder / name).is_file()), None)


def supports(model: str) -> bool:
    """A local sentence-transformers folder with weights and mean or CLS pooling."""
    folder = Path(model)
    return folder.is_dir() and _weights(folder) is not None and _pooling(folder) is not None


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def export(folder: Path, target: Path) -> Path:
    """The folder's transformer as ONNX at `target`, exported once (torch is needed for this step only)."""
    if target.is_file():
        return target
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names]

    class Hidden(torch.nn.Module):  # positional inputs → the last hidden state, all ONNX needs
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, aside = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(),
                tuple(sample[name] for name in names),
                aside,
                input_names=names,
                output_names=["hidden"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]},
                opset_version=17,
                dynamo=False,  # the TorchScript exporter: no onnxscript, stable for BERT-like encoders
            )
        os.replace(aside, target)
    finally:
        Path(aside).unlink(missing_ok=True)
    return target


class OnnxEmbeddings(Embeddings):
    """LangChain embeddings over onnxruntime, with the same options as tools/embeddings.py gives torch."""

    def __init__(self, model: str, cache_dir: Path, query_instruction: str = "") -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        folder = Path(model)
        weights = _weights(folder)
        self.pooling = _pooling(folder)
        if weights is None or self.pooling is None:
            raise ValueError(f"{model} is not a sentence-transformers folder with mean or CLS pooling")
        config = folder / "sentence_bert_config.json"
        max_tokens = json.loads(config.read_text()).get("max_seq_length", 512) if config.is_file() else 512
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), model_max_length=max_tokens)
        self.query_instruction = query_instruction
        onnx_file = export(folder, cache_dir / f"{folder.name}-{file_sha256(weights)[:16]}.onnx")
        options = onnxruntime.SessionOptions()
        # Idle worker threads spin-wait by default: on a 2-core server that burns the core the event loop needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [item.name for item in self.session.get_inputs()]

    def _encode(self, texts: list[str]) -> list[list[float]]:
        """In batches of BATCH texts of similar length, as sentence-transformers does: a batch pads to its longest
        text, so ingesting thousands of chunks neither pads short ones to the longest nor holds them all at once."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), BATCH):
            picked = order[start : start + BATCH]
            for i, vector in zip(picked, self._run([texts[i] for i in picked]), strict=True):
                vectors[i] = vector
        return vectors

    def _run(self, texts: list[str]) -> list[list[float]]:
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="np")
        feed = {name: batch[name].astype(np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = feed["attention_mask"][..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors.astype(np.float32).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode([text.replace("\n", " ") for text in texts])

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Many questions in one run; BGE's instruction before each, as `embed_query` puts it."""
        return self._encode([self.query_instruction + text.replace("\n", " ") for text in texts])

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]
