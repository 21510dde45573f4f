"""Checkpoints: tensors in safetensors, everything else in JSON, and nothing ever unpickled.

A checkpoint is two files side by side, named after a path without a suffix (for example
`runs/<name>/checkpoints/wm-000001000`):

- `<path>.safetensors`: named tensors (model weights, optimizer moments, ...). The format is a JSON
  header plus raw bytes, so loading one cannot run code, unlike a pickle or a `torch.save` file.
- `<path>.json`: `{"format", "version", "tensors": {"file", "bytes", "sha256"}, "meta": {...}}`,
  where `meta` is the caller's: config, step counters, optimizer hyper-parameters, RNG states.

Each file is written to a temporary name, flushed to disk and renamed into place; the JSON goes
last, so its presence marks a complete checkpoint, and its size and SHA-256 of the tensor file catch
a tensor file that was truncated or that belongs to another save. Anything wrong with a checkpoint
is a `UserError`: one line naming the file and what to do.

Exact resume: `module_tensors` + `optimizer_tensors` + `rng_state` (+ `generator_state` for numpy
Generators) hold everything that decides the next training step, bit for bit, on the same device.

Migration: a module with a `migrate_checkpoint(saved) -> Migration | None` method may make an
older checkpoint's tensors fit (WorldModel re-initialises state heads sized for other ranges);
`restore_module` then says what was done in one logged line, and `restore_optimizer` starts the
moments of the parameters it re-initialised afresh instead of refusing them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pokedreamer.errors import UserError, check_format_version, one_line
from pokedreamer.files import fsync_directory, write_atomic

FORMAT = "pokedreamer-checkpoint"
VERSION = 1
"""The checkpoint format this code writes, in every checkpoint's JSON record."""
OLDEST_VERSION = 1
"""The oldest format this code still loads."""
CHANGES: dict[int, str] = {
    1: "tensors in safetensors, the rest in a JSON record that holds the tensor file's SHA-256",
}
"""What each version brought: a refusal of an old checkpoint names the changes since."""
TENSORS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
_TMP_SUFFIX = ".tmp"
_STEP_NAME = re.compile(r"(.+)-(\d+)")
_FRESH = "_pokedreamer_fresh_from_migration"
"""Marks a parameter a migration re-initialised, until restore_optimizer has dropped its saved
moments: the moments belong to weights that are gone."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """A checkpoint's module tensors made to fit the module they load into."""

    tensors: dict[str, torch.Tensor]
    """The tensors to load, under the module's own names (no prefix)."""
    fresh: frozenset[str]
    """Parameters taken as this module initialised them, not from the checkpoint."""
    note: str
    """What was done, one line for the user."""


def checkpoint_path(directory: Path, name: str, step: int) -> Path:
    """`directory/<name>-<step, 9 digits>`, the name `latest_checkpoint` looks for."""
    return directory / f"{name}-{step:09d}"


def checkpoint_stem(path: Path) -> Path:
    """A checkpoint as a person may name it, the .safetensors or the .json file or the stem, as
    the stem: the files a shell completes name the same checkpoint."""
    for suffix in (TENSORS_SUFFIX, META_SUFFIX):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def _files(path: Path) -> tuple[Path, Path]:
    # Appended rather than `with_suffix`, so a name with dots in it keeps them.
    return path.with_name(path.name + TENSORS_SUFFIX), path.with_name(path.name + META_SUFFIX)


# --- saving and loading -----------------------------------------------------------------------


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Writes `<path>.safetensors`, then `<path>.json`, each atomically."""
    tensors_file, meta_file = _files(path)
    json.dumps(meta)  # a meta that is not JSON fails here, before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    # Overwriting a checkpoint: until the new JSON lands it is incomplete, not old JSON + new
    # tensors (the SHA-256 would catch that too, but `latest_checkpoint` would still pick it).
    meta_file.unlink(missing_ok=True)

    tmp = tensors_file.with_name(tensors_file.name + _TMP_SUFFIX)
    save_file(_saveable(tensors), str(tmp))
    digest = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())
    os.replace(tmp, tensors_file)

    record = {
        "format": FORMAT,
        "version": VERSION,
        "tensors": {
            "file": tensors_file.name,
            "bytes": tensors_file.stat().st_size,
            "sha256": digest.hexdigest(),
        },
        "meta": meta,
    }
    write_atomic(meta_file, json.dumps(record, indent=1).encode())
    fsync_directory(path.parent)


def _saveable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"checkpoint tensor {name!r} is a {type(tensor).__name__}")
        tensor = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors that share memory (tied weights, views of one buffer);
        # a copy of every tensor after the first on a storage saves them all.
        ptr = tensor.untyped_storage().data_ptr()
        if ptr and ptr in storages:
            tensor = tensor.clone()
            ptr = tensor.untyped_storage().data_ptr()
        storages.add(ptr)
        out[name] = tensor
    return out


def load_checkpoint(
    path: Path, expect: dict[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and meta saved at `path`, checked; `expect` holds meta keys that must match.

    Raises UserError for missing or incomplete files, a tensor file that is not safetensors (a
    pickle or `torch.save` file is refused, never loaded), a truncated or swapped tensor file,
    metadata that is not ours, and meta that differs from `expect` (the message lists the keys).
    `path` is the stem, or either file (checkpoint_stem).
    """
    path = checkpoint_stem(path)
    tensors_file, meta_file = _files(path)
    if not meta_file.is_file():
        if tensors_file.is_file():
            raise UserError(
                f"checkpoint {path} is incomplete: {meta_file.name} is missing (the run stopped "
                "while writing it); resume from an earlier checkpoint"
            )
        raise UserError(
            f"no checkpoint at {path} (expected {tensors_file.name} and {meta_file.name}); "
            "check the path"
        )
    if not tensors_file.is_file():
        raise UserError(
            f"checkpoint {path} has no {tensors_file.name}; resume from an earlier checkpoint"
        )

    try:
        record = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(
            f"cannot read checkpoint metadata {meta_file}: {one_line(e)}; "
            "resume from an earlier checkpoint"
        ) from None
    meta, size, sha256 = _check_record(record, meta_file)

    try:
        # Parses only the header: a pickle file fails here, before any of it is interpreted.
        with safe_open(str(tensors_file), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise UserError(
            f"{tensors_file} is not a valid safetensors file ({one_line(e)}); it is truncated, "
            "or not a pokedreamer checkpoint (pickle and torch.save files are never loaded)"
        ) from None
    if tensors_file.stat().st_size != size or _sha256(tensors_file) != sha256:
        raise UserError(
            f"{tensors_file} does not match {meta_file.name} (size or SHA-256 differ): it was "
            "truncated or replaced; resume from an earlier checkpoint"
        )
    tensors = load_file(str(tensors_file))

    if expect is not None:
        # Through JSON, so that a tuple in the config compares equal to the list it was saved as.
        wanted = json.loads(json.dumps(expect))
        differences = _differences(wanted, meta, "", top=True)
        if differences:
            raise UserError(
                f"checkpoint {path} was made with another config: {'; '.join(differences)}; "
                "resume with the config it was made with, or start a new run"
            )
    return tensors, meta


def _check_record(record: object, meta_file: Path) -> tuple[dict[str, Any], int, str]:
    def bad(what: str) -> UserError:
        return UserError(
            f"checkpoint metadata {meta_file} {what}; it is not a pokedreamer checkpoint, or a "
            "damaged one: resume from an earlier checkpoint"
        )

    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise bad(f'lacks "format": "{FORMAT}"')
    version = record.get("version")
    # Every checkpoint ever written records its version: one without is damaged, not old.
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f'lacks an integer "version" (found {version!r})')
    check_format_version(
        version, VERSION, OLDEST_VERSION, CHANGES,
        subject=f"checkpoint {meta_file} has", reads="loads", open_with="load",
    )  # fmt: skip
    files = record.get("tensors")
    if (
        not isinstance(files, dict)
        or not isinstance(files.get("bytes"), int)
        or not isinstance(files.get("sha256"), str)
    ):
        raise bad('lacks "tensors": {"bytes", "sha256"}')
    meta = record.get("meta")
    if not isinstance(meta, dict):
        raise bad('lacks a "meta" object')
    return meta, files["bytes"], files["sha256"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(
    wanted: dict[str, Any], found: dict[str, Any], prefix: str, top: bool
) -> list[str]:
    """'key (checkpoint X, now Y)' for each difference; nested dicts are compared key by key.

    At the top level only `wanted`'s keys count (meta holds much else); inside a nested dict such
    as the preset, a key on either side only is a difference too.
    """
    out: list[str] = []
    keys = list(wanted) if top else list(wanted) + [k for k in found if k not in wanted]
    for key in keys:
        name = f"{prefix}{key}"
        if key not in found:
            out.append(f"{name} (missing from the checkpoint)")
        elif key not in wanted:
            out.append(f"{name} (checkpoint {_short(found[key])}, now absent)")
        elif isinstance(wanted[key], dict) and isinstance(found[key], dict):
            out += _differences(wanted[key], found[key], f"{name}.", top=False)
        elif found[key] != wanted[key]:
            out.append(f"{name} (checkpoint {_short(found[key])}, now {_short(wanted[key])})")
    return out


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def latest_checkpoint(directory: Path, name: str | None = None) -> Path | None:
    """The complete checkpoint (both files) with the highest step in `<name>-<step>`, or None."""
    if not directory.is_dir():
        return None
    best: tuple[int, str] | None = None
    for meta_file in directory.glob(f"*{META_SUFFIX}"):
        stem = meta_file.name[: -len(META_SUFFIX)]
        match = _STEP_NAME.fullmatch(stem)
        if match is None or (name is not None and match[1] != name):
            continue
        if not (directory / (stem + TENSORS_SUFFIX)).is_file():
            continue
        key = (int(match[2]), stem)
        if best is None or key > best:
            best = key
    return None if best is None else directory / best[1]


# --- modules and optimizers -------------------------------------------------------------------


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict, keys as `<prefix>/<name>` ("/" never occurs in a module's names)."""
    return {f"{prefix}/{name}": tensor for name, tensor in module.state_dict().items()}


def restore_module(
    prefix: str,
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    source: object = "the checkpoint",
    announce: bool = True,
) -> None:
    """Loads `<prefix>/...` tensors into `module`; a missing, extra or misshapen one is refused,
    unless the module's `migrate_checkpoint` makes them fit (logged in one line when
    `announce`: a migration that only matters to training need not be told to a run that only
    acts)."""
    own = module.state_dict()
    saved = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
    migrate = getattr(module, "migrate_checkpoint", None)
    migration = migrate(saved) if callable(migrate) else None
    if migration is not None:
        saved = migration.tensors
    problems = [f"{k} missing" for k in own if k not in saved]
    problems += [f"{k} unexpected" for k in saved if k not in own]
    for key in own.keys() & saved.keys():
        mine, theirs = own[key], saved[key]
        if mine.shape != theirs.shape or mine.dtype != theirs.dtype:
            problems.append(
                f"{key} is {_describe(theirs)} there but {_describe(mine)} in this model"
            )
    if problems:
        listed = ", ".join(sorted(problems)[:4]) + (", ..." if len(problems) > 4 else "")
        raise UserError(
            f"{source} does not fit this model ({prefix}/ tensors: {listed}); it was made with "
            "another preset or version: use that, or start a new run"
        )
    module.load_state_dict(saved, strict=True)
    for name, param in module.named_parameters():
        if migration is not None and name in migration.fresh:
            setattr(param, _FRESH, True)
        elif hasattr(param, _FRESH):
            delattr(param, _FRESH)
    if migration is not None and announce:
        log.warning("%s: %s", source, migration.note)


def _describe(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}"


def optimizer_tensors(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer's state dict split in two: its tensors (moments, step counts, as
    `<prefix>/state/<param>/<key>`) and a JSON-able rest (param groups and scalars, each tensor
    replaced by {"tensor": key} and each tuple by {"tuple": [...]}, so restoring gives back the
    exact types: Adam's betas must come back a tuple)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: object, name: str) -> object:
        if isinstance(value, torch.Tensor):
            key = f"{prefix}/{name}"
            tensors[key] = value.detach()
            return {"tensor": key}
        if isinstance(value, tuple):
            return {"tuple": [encode(v, f"{name}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{name}/{i}") for i, v in enumerate(value)]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"optimizer {prefix!r} holds {name} = a {type(value).__name__}")

    state = {
        str(param): {key: encode(v, f"state/{param}/{key}") for key, v in values.items()}
        for param, values in state_dict["state"].items()
    }
    groups = [
        {key: encode(v, f"group/{i}/{key}") for key, v in group.items()}
        for i, group in enumerate(state_dict["param_groups"])
    ]
    return tensors, {"state": state, "param_groups": groups}


def restore_optimizer(
    prefix: str,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    source: object = "the checkpoint",
) -> None:
    """Inverse of `optimizer_tensors`. Refuses other parameter counts or shapes (UserError)."""

    def misfit(what: str) -> UserError:
        return UserError(
            f"{source} does not fit the {prefix!r} optimizer ({what}); it was made with another "
            "preset or optimizer: use that, or start a new run"
        )

    def decode(value: object) -> object:
        if isinstance(value, dict):
            if value.keys() == {"tensor"}:
                if value["tensor"] not in tensors:
                    raise misfit(f"tensor {value['tensor']} missing")
                # A copy: the optimizer updates its moments in place, and must not update the
                # caller's loaded tensors (which may also feed another restore).
                return tensors[value["tensor"]].clone()
            if value.keys() == {"tuple"}:
                return tuple(decode(v) for v in value["tuple"])
            raise misfit(f"unreadable entry {_short(value)}")
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    try:
        saved = {
            "state": {
                int(param): {key: decode(v) for key, v in values.items()}
                for param, values in state["state"].items()
            },
            "param_groups": [
                {key: decode(v) for key, v in group.items()} for group in state["param_groups"]
            ],
        }
        saved_counts = [len(group["params"]) for group in saved["param_groups"]]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise misfit(f"malformed state: {one_line(e)}") from None
    counts = [len(group["params"]) for group in optimizer.param_groups]
    if saved_counts != counts:
        raise misfit(f"parameters per group {saved_counts} there, {counts} here")

    # Saved ids follow the groups' order, which is how torch pairs them with parameters too.
    ids = [i for group in saved["param_groups"] for i in group["params"]]
    params = dict(zip(ids, (p for g in optimizer.param_groups for p in g["params"]), strict=True))
    for param_id, param in params.items():
        if getattr(param, _FRESH, False):
            saved["state"].pop(param_id, None)
            delattr(param, _FRESH)
    for param_id, values in saved["state"].items():
        if param_id not in params:
            raise misfit(f"state for unknown parameter {param_id}")
        shape = params[param_id].shape
        for key, value in values.items():
            # Moments (Adam's exp_avg, SGD's momentum_buffer, ...) are shaped like their
            # parameter; scalars such as `step` are not.
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                raise misfit(
                    f"{key} of parameter {param_id} is {list(value.shape)}, "
                    f"the parameter {list(shape)}"
                )
    optimizer.load_state_dict(saved)


# --- random number generators -----------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """torch's CPU generator (and CUDA's, once CUDA is in use), as base64 text for the JSON."""
    state: dict[str, Any] = {"torch": _b64(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `rng_state`."""
    try:
        torch.set_rng_state(_unb64(state["torch"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(
            f"the checkpoint's RNG state is unreadable ({one_line(e)}); start a new run"
        ) from None


def _b64(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """A numpy Generator's bit-generator state as JSON (arrays, as in MT19937's, become lists)."""

    def plain(value: object) -> object:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.integer):
            return int(value)
        return value

    return cast(dict[str, Any], plain(generator.bit_generator.state))


def restore_generator(generator: np.random.Generator, state: dict[str, Any]) -> None:
    """Puts `state` (from `generator_state`) back into `generator`, in place."""
    kind = type(generator.bit_generator).__name__
    try:
        if state["bit_generator"] != kind:
            raise ValueError(f"it holds a {state['bit_generator']} state, this is a {kind}")
        generator.bit_generator.state = state
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"the checkpoint's random generator state does not fit ({one_line(e)}); start a new run"
        ) from None
