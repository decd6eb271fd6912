"""A LoRA adapter folder, as PEFT and Unsloth save it, checked against its base and merged.

    check(adapter_dir, base_dir)     AdapterInfo: the adapter's files and what it targets, or
                                     InputError naming what does not fit
    merged(model, info)              the base model (in memory) with the adapter merged in
    write_merged(base_dir, info, out)  a checkpoint folder of the merged model (for export)

The folder layout and keys are PEFT's own (peft/utils/save_and_load.py,
`get_peft_model_state_dict` and `load_peft_weights`; peft/config.py, `PeftConfig.from_pretrained`):
`adapter_config.json` (peft_type, r, target_modules, base_model_name_or_path) and
`adapter_model.safetensors`, whose keys are the model's module paths behind a
`base_model.model.` prefix, ending in `.lora_A.weight` (r × in_features) and
`.lora_B.weight` (out_features × r). The merge itself is PEFT's
(`PeftModel.from_pretrained(...).merge_and_unload()`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from edgekit.artifact import AdapterSource, sha256_file
from edgekit.errors import InputError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_LORA_PARTS = (".lora_A.weight", ".lora_B.weight")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdapterInfo:
    """A checked adapter folder: its path, each file's sha256, and what it changes."""

    path: Path
    files: dict[str, str]
    rank: int
    target_modules: tuple[str, ...]
    """The base's modules it changes (their paths, e.g. model.layers.0.self_attn.q_proj)."""
    base_model: str | None
    """adapter_config.json's base_model_name_or_path, as training left it."""

    def record(self) -> AdapterSource:
        """The manifest's record of it (`source.adapter`, its path resolved)."""
        return AdapterSource(
            path=str(self.path.resolve()),
            files=dict(self.files),
            rank=self.rank,
            target_modules=tuple(self.target_modules),
            base_model=self.base_model,
        )


def _config(path: Path) -> dict[str, Any]:
    file = path / CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file} is not a readable JSON file ({exc}): re-save the adapter", path=file) from None
    if not isinstance(config, dict):
        raise InputError(f"{file} is not a JSON object: re-save the adapter with PEFT", path=file)
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise InputError(
            f"{file} says peft_type {peft_type!r}: edgekit merges LoRA adapters (peft_type 'LORA')", path=file
        )
    return config


def _shapes(file: Path, what: str) -> dict[str, list[int]]:
    """Each tensor's shape, from a safetensors header; InputError if the file is corrupt."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as exc:
        raise InputError(f"{file} is truncated or corrupt ({exc}): re-save the {what}", path=file) from None


def _lora_shapes(path: Path) -> dict[str, dict[str, list[int]]]:
    """{module path: {"A": shape, "B": shape}} from the adapter's safetensors header."""
    file = path / WEIGHTS
    shapes = _shapes(file, "adapter")
    modules: dict[str, dict[str, list[int]]] = {}
    for name, shape in shapes.items():
        part = next((p for p in _LORA_PARTS if name.endswith(p)), None)
        if part is None:
            continue  # modules_to_save copies, DoRA magnitudes: PEFT merges them too
        module = name.removeprefix(_PREFIX).removesuffix(part)
        modules.setdefault(module, {})[part[6]] = shape
    if not modules:
        raise InputError(f"{file} holds no LoRA weights (no *.lora_A.weight / *.lora_B.weight)", path=file)
    return modules


def check(adapter_dir: Path | str, base_dir: Path | str) -> AdapterInfo:
    """The adapter folder `adapter_dir`, checked against checkpoint folder `base_dir`.

    InputError (one line) if a file is missing, it is not a LoRA adapter, a module it
    targets is not in the base (an adapter for another architecture), or a shape differs
    (an adapter for another base of the same architecture).
    """
    path, base = Path(adapter_dir), Path(base_dir)
    if not path.is_dir():
        raise InputError(
            f"adapter folder {path} does not exist: give the folder PEFT's save_pretrained wrote", path=path
        )
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            hint = (
                ": PEFT's older adapter_model.bin is not read, re-save with save_pretrained(safe_serialization=True)"
                if name == WEIGHTS and (path / "adapter_model.bin").is_file()
                else ": give the folder PEFT's save_pretrained wrote"
            )
            raise InputError(f"adapter folder {path} has no {name}{hint}", path=path)
    config = _config(path)
    lora = _lora_shapes(path)
    weights: dict[str, list[int]] = {}
    for file in sorted(base.glob("*.safetensors")):
        weights.update(_shapes(file, "base"))
    for module, parts in sorted(lora.items()):
        weight = weights.get(f"{module}.weight")
        if weight is None:
            raise InputError(
                f"adapter {path} changes {module}, which base {base} does not have: "
                f"it was trained for another architecture",
                path=path,
            )
        a, b = parts.get("A"), parts.get("B")
        if a is None or b is None:
            raise InputError(f"adapter {path} has only half of {module}'s LoRA pair: re-save the adapter", path=path)
        out_features, in_features = weight[0], weight[-1]
        if len(weight) != 2 or a[1] != in_features or b[0] != out_features or a[0] != b[1]:
            raise InputError(
                f"adapter {path} was trained for another base: its {module} maps {a[1]} to {b[0]} "
                f"features, the base's {weight[1] if len(weight) == 2 else weight} to {weight[0]}",
                path=path,
            )
    ranks = {parts["A"][0] for parts in lora.values()}
    files = {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}
    base_model = config.get("base_model_name_or_path")
    return AdapterInfo(
        path=path,
        files=files,
        rank=max(ranks),
        target_modules=tuple(sorted(lora)),
        base_model=base_model if isinstance(base_model, str) and base_model else None,
    )


PEFT_DEPRECATIONS = r".*is_gradient_checkpointing.*"
"""peft 0.21.2 asks transformers 5.24 for this deprecated property (peft/peft_model.py)."""


def merged(model: Any, info: AdapterInfo) -> Any:
    """`model` (the base, in memory) with the adapter of `info` merged into its weights (PEFT)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise InputError("--adapter needs PEFT: pip install 'edgekit[convert]'") from None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATIONS, category=FutureWarning)
        with_adapter = PeftModel.from_pretrained(model, str(info.path), is_trainable=False)
        return with_adapter.merge_and_unload().eval()


def write_merged(base_dir: Path, info: AdapterInfo, out_dir: Path) -> Path:
    """Checkpoint folder `out_dir`: base `base_dir` with the adapter merged (fp32), the base's
    other files (tokenizer, chat template, …) copied beside it. Returns `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    merged(model, info).save_pretrained(str(out_dir))
    for src in sorted(base_dir.iterdir()):
        weights = src.suffix == ".safetensors" or src.name == "model.safetensors.index.json"
        if src.is_file() and not src.name.startswith(".") and not weights and not (out_dir / src.name).exists():
            shutil.copy2(src, out_dir / src.name)
    return out_dir
