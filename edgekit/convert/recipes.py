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
from typing import Generic, TypeVar

from edgekit._data import data_dir
from edgekit._typed import from_data
from edgekit.artifact import QuantRule
from edgekit.errors import InputError

T = TypeVar("T")


class Quant(str, enum.Enum):
    """Weight quantization choices; each is one ai-edge-quantizer recipe (`rules()`)."""

    INT4 = "int4"
    INT4_TABLE = "int4-table"
    INT4_B32 = "int4-b32"
    INT4_B64 = "int4-b64"
    INT4_CHANNEL = "int4-channel"
    INT8 = "int8"
    FP32 = "fp32"

    @property
    def recipe_name(self) -> str | None:
        """The recipe's name: ai-edge-quantizer's own, or edgekit's for a mixed one (None = no quantization)."""
        return _RECIPE_NAMES[self]

    @property
    def description(self) -> str:
        """The recipe in plain words, as reports print it."""
        return _DESCRIPTIONS.get(self, f"--quant {self.value}")

    @property
    def block_size(self) -> int | None:
        """Block length along a weight row where every weight is block-wise, else None."""
        return {Quant.INT4_B32: 32, Quant.INT4_B64: 64}.get(self)

    def rules(self, *, recover_grid: bool = False, split_rows: int | None = None) -> list[QuantRule] | None:
        """The exact ai-edge-quantizer recipe (its JSON form), or None for fp32.

        Rules are matched in order and the last match wins. Weights shared by several
        ops (Gemma's tied embedding/output table) must get identical rules in every op,
        or the quantizer stores one copy per rule. `recover_grid`: the weights lie on the
        Q4_0 grid (edgekit.convert.grid), so every 4-bit blocks-of-32 rule keeps that grid
        (DEQUANTIZED_WEIGHT_RECOVERY) instead of making a new one. `split_rows`: the
        table is split at that id (edgekit.convert.split_table); only `int4` uses it.
        """
        rules = _rules(self, split=split_rows is not None)
        if rules is None or not recover_grid:
            return rules
        return [_recovering(r) if _is_4bit_b32(r) else r for r in rules]

    @property
    def can_recover_grid(self) -> bool:
        """The recipe has 4-bit blocks of 32, the Q4_0 grid's shape, to keep a QAT grid in."""
        return any(_is_4bit_b32(r) for r in _rules(self) or [])

    @property
    def splits_table(self) -> bool:
        """The recipe gives the two halves of a split table (split_table) different precisions."""
        return self is Quant.INT4

    def recipe_name_for(self, *, recover_grid: bool = False, split_rows: int | None = None) -> str | None:
        """`recipe_name` for this conversion: the split variant, marked when the Q4_0 grid is recovered."""
        name = _SPLIT_RECIPE_NAME if split_rows is not None and self.splits_table else self.recipe_name
        if name is None or not recover_grid or not self.can_recover_grid:
            return name
        return name + "+q4_0_grid_recovery"

    def description_for(self, split_rows: int | None = None) -> str:
        """`description` for this conversion (the split variant names where the table splits)."""
        if split_rows is not None and self.splits_table:
            return (
                f"INT8 embedding/output table for the {split_rows:,} ids the model uses most, INT4 "
                f"blocks of 32 for the rest; INT8 linear layers"
            )
        return self.description


def _rule(operation: str, bits: int, granularity: str, *, regex: str = ".*") -> QuantRule:
    """One ai-edge-quantizer 0.10 rule: dynamic range (int weights, float activations quantized
    on the fly), symmetric; the schema of `ai_edge_quantizer/recipe.py`'s `dynamic_*` recipes."""
    return {
        "regex": regex,
        "operation": operation,
        "algorithm_key": "min_max_uniform_quantize",
        "op_config": {
            "weight_tensor_config": {"num_bits": bits, "symmetric": True, "granularity": granularity, "dtype": "INT"},
            "compute_precision": "INTEGER",
            "explicit_dequantize": False,
            "skip_checks": False,
            "min_weight_elements": 0,
        },
    }


def _is_4bit_b32(rule: QuantRule) -> bool:
    config = rule["op_config"]["weight_tensor_config"]
    return config["num_bits"] == 4 and config["granularity"] == "BLOCKWISE_32"


def _recovering(rule: QuantRule) -> QuantRule:
    """`rule` with ai-edge-quantizer's DEQUANTIZED_WEIGHT_RECOVERY: scale = the smallest gap
    between a block's |values| (dequantized_weight_recovery.py, 0.10), codes = value / scale.

    skip_checks: a Q4_0 block with a negative scale has one value at +8 x |scale|, which
    INT4 (-8..7, positive scales only in XNNPACK) cannot hold; it is clipped to +7 and the
    recovery check would refuse the whole model for it. Measured cost: docs/benchmarks.md.
    """
    return {
        **rule,
        "algorithm_key": "dequantized_weight_recovery",
        "op_config": {**rule["op_config"], "skip_checks": True},
    }


# litert-torch names the decode signature's output projection (the LM head) this way
# (litert_torch/generative/export_hf/core/exportable_module.py, 0.10): the one FULLY_CONNECTED
# op a rule can single out. In tied models (Gemma 3) it reads the embedding table.
LM_HEAD_SCOPE = "decode_logits_output"


def _rules(quant: Quant, *, split: bool = False) -> list[QuantRule] | None:
    if quant is Quant.FP32:
        return None
    if quant is Quant.INT4 and split:
        # The INT4-class default on a split table (edgekit.convert.split_table), chosen on
        # the real Gemma 3 270M (docs/benchmarks.md): the table's frequent half (low ids)
        # and every linear layer 8-bit per channel, its rare half 4-bit in blocks of 32.
        # Each half is read by one lookup and one projection, addressed by module name.
        from edgekit.convert.split_table import SCOPE_HIGH_IDS

        return [
            _rule("FULLY_CONNECTED", 8, "CHANNELWISE"),
            _rule("EMBEDDING_LOOKUP", 8, "CHANNELWISE"),
            _rule("FULLY_CONNECTED", 4, "BLOCKWISE_32", regex=SCOPE_HIGH_IDS),
            _rule("EMBEDDING_LOOKUP", 4, "BLOCKWISE_32", regex=SCOPE_HIGH_IDS),
        ]
    if quant in (Quant.INT4, Quant.INT4_TABLE):
        # Models whose table cannot be split (and --quant int4-table): the 262k x 640 table
        # (embedding lookup and output projection, one tensor) in 4-bit blocks of 32,
        # every other linear layer 8-bit per channel.
        return [
            _rule("FULLY_CONNECTED", 8, "CHANNELWISE"),
            _rule("FULLY_CONNECTED", 4, "BLOCKWISE_32", regex=LM_HEAD_SCOPE),
            _rule("EMBEDDING_LOOKUP", 4, "BLOCKWISE_32"),
        ]
    bits, granularity = {
        Quant.INT4_B32: (4, "BLOCKWISE_32"),
        Quant.INT4_B64: (4, "BLOCKWISE_64"),
        Quant.INT4_CHANNEL: (4, "CHANNELWISE"),
        Quant.INT8: (8, "CHANNELWISE"),
    }[quant]
    return [_rule("*", bits, granularity)]


_SPLIT_RECIPE_NAME = "edgekit_split_table_wi8_wi4b32_linear_wi8_afp32"
_RECIPE_NAMES = {
    Quant.INT4: "edgekit_table_wi4b32_linear_wi8_afp32",
    Quant.INT4_TABLE: "edgekit_table_wi4b32_linear_wi8_afp32",
    Quant.INT4_B32: "dynamic_wi4b32_afp32",
    Quant.INT4_B64: "dynamic_wi4b64_afp32",
    Quant.INT4_CHANNEL: "dynamic_wi4_afp32",
    Quant.INT8: "dynamic_wi8_afp32",
    Quant.FP32: None,
}

_DESCRIPTIONS = {
    Quant.INT4: "INT4 embedding/output table (blocks of 32), INT8 linear layers",
    Quant.INT4_TABLE: "INT4 embedding/output table (blocks of 32), INT8 linear layers",
    Quant.INT4_B32: "INT4 weights in blocks of 32, embedding too",
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

# Used when neither the caller nor a recipe says otherwise. (No NLL-gap floor without a model
# family's measured one: the gap is measured and recorded.)
DEFAULT_QUANT = Quant.INT4
DEFAULT_PREFILL_LENGTHS: tuple[int, ...] = (128,)
DEFAULT_CACHE_LENGTH = 2048
DEFAULT_LIGHTWEIGHT = True
DEFAULT_MIN_TOP1_AGREEMENT: dict[str, float] = {q.value: 0.99 if q is Quant.FP32 else 0.5 for q in Quant}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecipeDefaults:
    """A recipe's `[defaults]` table: the settings it gives (a key it leaves out: None)."""

    quant: Quant | None = None
    prefill_lengths: tuple[int, ...] | None = None
    cache_length: int | None = None
    lightweight: bool | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """One model family's defaults and expectations, read from `converters/<family>.toml`."""

    family: str
    model_types: tuple[str, ...]
    defaults: RecipeDefaults = RecipeDefaults()
    turn_markers: tuple[str, ...] = ()
    min_top1_agreement: dict[str, float] = dataclasses.field(default_factory=dict)
    max_nll_gap: dict[str, float] = dataclasses.field(default_factory=dict)
    path: Path | None = None


@dataclasses.dataclass(frozen=True)
class Setting(Generic[T]):
    """A resolved value and where it came from: "caller"/"flag" (given in ConvertConfig by
    Python code / the CLI), "recipe:<family>" or "default"."""

    value: T
    source: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RecipeChat:
    """A recipe file's `[chat]` table."""

    turn_markers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RecipeFidelity:
    """A recipe file's `[fidelity]` table: floors per --quant value."""

    min_top1_agreement: dict[str, float] = dataclasses.field(default_factory=dict)
    max_nll_gap: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RecipeFile:
    """A `converters/<family>.toml` as written, validated by msgspec (unknown keys are ignored)."""

    family: str
    model_types: tuple[str, ...] = ()
    defaults: RecipeDefaults = RecipeDefaults()
    chat: _RecipeChat = _RecipeChat()
    fidelity: _RecipeFidelity = _RecipeFidelity()


def load_recipe(path: Path) -> Recipe:
    """The recipe in TOML file `path`; one InputError naming the file and the first bad or missing key."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"recipe {path} is not valid TOML: {exc}", path=path) from exc
    parsed = from_data(data, _RecipeFile, f"recipe {path}", path=path)
    return Recipe(
        family=parsed.family,
        model_types=parsed.model_types,
        defaults=parsed.defaults,
        turn_markers=parsed.chat.turn_markers,
        min_top1_agreement=dict(parsed.fidelity.min_top1_agreement),
        max_nll_gap=dict(parsed.fidelity.max_nll_gap),
        path=path,
    )


def all_recipes() -> list[Recipe]:
    """Every recipe in the installed `converters/` folder."""
    return [load_recipe(p) for p in sorted(data_dir("converters").glob("*.toml"))]


def recipe_for(model_type: str) -> Recipe | None:
    """The recipe for `model_type`, or None when edgekit has none (generic defaults apply)."""
    return next((r for r in all_recipes() if model_type in r.model_types), None)


def resolve(
    given: T | None, from_recipe: T | None, default: T, recipe: Recipe | None, given_by: str = "caller"
) -> Setting[T]:
    """Resolve one setting: `given` (not None; its source `given_by`) beats `from_recipe` (the
    value in `recipe`'s defaults, None: it gives none), which beats `default`."""
    if given is not None:
        return Setting(given, given_by)
    if recipe is not None and from_recipe is not None:
        return Setting(from_recipe, f"recipe:{recipe.family}")
    return Setting(default, "default")


def resolve_min_agreement(
    given: float | None, quant: Quant, recipe: Recipe | None, given_by: str = "caller"
) -> Setting[float]:
    """The top-1 agreement floor for `quant`: the caller's, then recipe, then built-in."""
    if given is not None:
        return Setting(given, given_by)
    if recipe is not None and quant.value in recipe.min_top1_agreement:
        return Setting(float(recipe.min_top1_agreement[quant.value]), f"recipe:{recipe.family}")
    return Setting(DEFAULT_MIN_TOP1_AGREEMENT[quant.value], "default")


def resolve_max_nll_gap(
    given: float | None, quant: Quant, recipe: Recipe | None, given_by: str = "caller"
) -> Setting[float | None]:
    """The NLL-gap ceiling (nats/token) for `quant`: the caller's, then recipe, then none (measured, not judged)."""
    if given is not None:
        return Setting(given, given_by)
    if recipe is not None and quant.value in recipe.max_nll_gap:
        return Setting(float(recipe.max_nll_gap[quant.value]), f"recipe:{recipe.family}")
    return Setting(None, "default")
