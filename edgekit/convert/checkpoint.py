"""A Hugging Face checkpoint folder, validated and hashed; its PyTorch reference model.

    require_convert_extra()                     DependencyError unless torch, transformers, litert-torch are installed
    load_checkpoint(dir) -> Checkpoint          validate the folder, hash its files
    load_reference(dir) -> (model, tokenizer)   the fp32 PyTorch model every check compares against

Shared by the conversion (pipeline) and `edgekit eval` (evaluate.py), which is why
it is neither of them. Importing this module imports no torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from edgekit.artifact import sha256_file
from edgekit.convert import recipes
from edgekit.errors import DependencyError, InputError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def require_convert_extra() -> None:
    """DependencyError naming the install command unless edgekit[convert]'s packages are installed."""
    missing = [m for m in ("torch", "transformers", "litert_torch") if _missing(m)]
    if missing:
        raise DependencyError(
            f"edgekit convert needs {', '.join(missing)}: install edgekit[convert] "
            f"(pip install 'edgekit[convert]', after pip install torch==2.13.0)"
        )


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A validated Hugging Face checkpoint directory."""

    path: Path
    model_type: str
    files: dict[str, str]
    parameter_count: int
    random_weights: bool = False
    """True for edgekit's own example models (their `edgekit-example.json` says so)."""

    @property
    def source_sha256(self) -> str:
        """One hash over the per-file hashes, names included."""
        return hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape, from the safetensors header (safetensors.safe_open, which checks
    that the header describes the whole file); InputError if it is truncated or corrupt."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise InputError(f"{path} is truncated or corrupt ({reason}): re-download or re-save it", path=path) from None


def load_checkpoint(directory: Path | str) -> Checkpoint:
    """Validate a Hugging Face checkpoint directory and hash its files.

    Raises InputError naming the problem: missing folder, no/invalid config.json, an
    architecture litert-torch cannot export, no tokenizer, truncated safetensors.
    """
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"model directory {path} does not exist", path=path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InputError(f"{path} has no config.json: point at a Hugging Face checkpoint folder", path=path)
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{config_file} is not valid JSON: {exc}", path=config_file) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in recipes.SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"model_type {model_type!r} in {config_file} is not supported: edgekit converts "
            f"{', '.join(recipes.SUPPORTED_MODEL_TYPES)}",
            path=config_file,
        )
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise InputError(
            f"{path} has no tokenizer (tokenizer.json or tokenizer.model): copy the tokenizer "
            f"files from the original checkpoint",
            path=path,
        )
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise InputError(f"{path} has no *.safetensors weights: save the model with save_pretrained()", path=path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        absent = sorted(s for s in shards if not (path / s).is_file())
        if absent:
            raise InputError(f"{path} is missing weight shards {', '.join(absent)}", path=path)
    parameter_count = 0
    for w in weights:
        parameter_count += sum(math.prod(shape) for shape in _safetensors_shapes(w).values())
    files = {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}
    return Checkpoint(
        path=path,
        model_type=model_type,
        files=files,
        parameter_count=parameter_count,
        random_weights=_marked_random(path),
    )


def _marked_random(path: Path) -> bool:
    marker = path / "edgekit-example.json"
    try:
        return bool(json.loads(marker.read_text()).get("random_weights"))
    except (OSError, ValueError, AttributeError):
        return False


def load_reference(path: Path) -> tuple[Any, Any]:
    """The PyTorch reference model (fp32, eval) and tokenizer of checkpoint folder `path`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(path))
