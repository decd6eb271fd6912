"""Model-family recipes (`converters/*.toml`) and the settings they resolve.

Every conversion setting is resolved once, in this order: the caller's value (a CLI
flag), the model family's recipe, edgekit's built-in default. `Setting.source` says
which one won; the manifest records it.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from pathlib import Path
from typing import Any

from edgekit._data import data_dir
from edgekit.errors import InputError


class Quant(str, enum.Enum):
    """Weight quantization choices; each maps to one ai-edge-quantizer recipe."""

    INT4 = "int4"
    INT4_B64 = "int4-b64"
    INT4_CHANNEL = "int4-channel"
    INT8 = "int8"
    FP32 = "fp32"

    @property
    def upstream_recipe(self) -> str | None:
        """The litert-torch `quantization_recipe` name (None = no quantization)."""
        return _UPSTREAM_RECIPES[self]

    @property
    def description(self) -> str:
        """The recipe in plain words, as reports print it."""
        return _DESCRIPTIONS.get(self, f"--quant {self.value}")

    @property
    def block_size(self) -> int | None:
        """Block length along a weight row for block-wise recipes, else None."""
        return {Quant.INT4: 32, Quant.INT4_B64: 64}.get(self)


_UPSTREAM_RECIPES = {
    Quant.INT4: "dynamic_wi4b32_afp32",
    Quant.INT4_B64: "dynamic_wi4b64_afp32",
    Quant.INT4_CHANNEL: "dynamic_wi4_afp32",
    Quant.INT8: "dynamic_wi8_afp32",
    Quant.FP32: None,
}


_DESCRIPTIONS = {
    Quant.INT4: "INT4 weights in blocks of 32, embedding too",
    Quant.INT4_B64: "INT4 weights in blocks of 64, embedding too",
    Quant.INT4_CHANNEL: "INT4 weights per channel",
    Quant.INT8: "INT8 weights per channel",
    Quant.FP32: "fp32 weights (no quantization)",
}


class Format(str, enum.Enum):
    """Output formats: the LiteRT-LM bundle, or the bare quantized TFLite model."""

    LITERTLM = "litertlm"
    TFLITE = "tflite"

    @property
    def suffix(self) -> str:
        """The file extension an output of this format must have."""
        return "." + self.value


# Model types litert-torch's text exporter and LiteRT-LM's bundle both know by name.
SUPPORTED_MODEL_TYPES = ("gemma3_text", "qwen2", "qwen3", "lfm2")

# Used when neither the caller nor a recipe says otherwise.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "quant": Quant.INT4,
    "prefill_lengths": (128,),
    "cache_length": 2048,
    "lightweight": True,
    "min_top1_agreement": {q.value: 0.99 if q is Quant.FP32 else 0.5 for q in Quant},
    # No NLL-gap floor without a model family's measured one: the gap is measured and recorded.
    "max_nll_gap": {},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """One model family's defaults and expectations, read from `converters/<family>.toml`."""

    family: str
    model_types: tuple[str, ...]
    defaults: dict[str, Any]
    turn_markers: tuple[str, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    min_top1_agreement: dict[str, float] = dataclasses.field(default_factory=dict)
    max_nll_gap: dict[str, float] = dataclasses.field(default_factory=dict)
    path: Path | None = None


@dataclasses.dataclass(frozen=True)
class Setting:
    """A resolved value and where it came from: "flag", "recipe:<family>" or "default"."""

    value: Any
    source: str


def _parse_recipe(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"recipe {path} is not valid TOML: {exc}") from exc
    defaults = dict(data.get("defaults", {}))
    if "quant" in defaults:
        defaults["quant"] = Quant(defaults["quant"])
    if "prefill_lengths" in defaults:
        defaults["prefill_lengths"] = tuple(defaults["prefill_lengths"])
    chat = data.get("chat", {})
    return Recipe(
        family=data["family"],
        model_types=tuple(data.get("model_types", ())),
        defaults=defaults,
        turn_markers=tuple(chat.get("turn_markers", ())),
        stop_tokens=tuple(chat.get("stop_tokens", ())),
        min_top1_agreement=dict(data.get("fidelity", {}).get("min_top1_agreement", {})),
        max_nll_gap=dict(data.get("fidelity", {}).get("max_nll_gap", {})),
        path=path,
    )


def all_recipes() -> list[Recipe]:
    """Every recipe in the installed `converters/` folder."""
    return [_parse_recipe(p) for p in sorted(data_dir("converters").glob("*.toml"))]


def recipe_for(model_type: str) -> Recipe | None:
    """The recipe for `model_type`, or None when edgekit has none (generic defaults apply)."""
    return next((r for r in all_recipes() if model_type in r.model_types), None)


def resolve(name: str, given: Any, recipe: Recipe | None) -> Setting:
    """Resolve one setting: `given` (not None) beats the recipe, which beats the default."""
    if given is not None:
        return Setting(given, "flag")
    if recipe is not None and name in recipe.defaults:
        return Setting(recipe.defaults[name], f"recipe:{recipe.family}")
    return Setting(BUILTIN_DEFAULTS[name], "default")


def resolve_min_agreement(given: float | None, quant: Quant, recipe: Recipe | None) -> Setting:
    """The top-1 agreement floor for `quant`: flag, then recipe, then built-in."""
    if given is not None:
        return Setting(given, "flag")
    if recipe is not None and quant.value in recipe.min_top1_agreement:
        return Setting(float(recipe.min_top1_agreement[quant.value]), f"recipe:{recipe.family}")
    return Setting(BUILTIN_DEFAULTS["min_top1_agreement"][quant.value], "default")


def resolve_max_nll_gap(given: float | None, quant: Quant, recipe: Recipe | None) -> Setting:
    """The NLL-gap ceiling (nats/token) for `quant`: flag, then recipe, then none (measured, not judged)."""
    if given is not None:
        return Setting(given, "flag")
    if recipe is not None and quant.value in recipe.max_nll_gap:
        return Setting(float(recipe.max_nll_gap[quant.value]), f"recipe:{recipe.family}")
    return Setting(BUILTIN_DEFAULTS["max_nll_gap"].get(quant.value), "default")
