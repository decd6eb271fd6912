"""Every setting of one conversion, resolved once, with where each came from.

    make_plan(ckpt, config) -> ConvertPlan          caller > recipe > default (recipes.resolve); bad input refused
    fit_to_weights(plan, ckpt) -> (plan, notes)     what the weights decide: a Q4_0 grid to keep, where the table splits

The plan is what the manifest's settings record and what the cache key hashes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgekit.artifact import (
    CALLER,
    EvalTextFile,
    ManifestSettings,
    QuantizationRecord,
    QuantRule,
    SettingRecord,
    sha256_file,
)
from edgekit.convert import recipes
from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.config import ConvertConfig
from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT
from edgekit.convert.grid import GridReport, detect_q4_0
from edgekit.convert.recipes import Format, Quant, Recipe, Setting
from edgekit.errors import InputError

BUILTIN_EVAL_TEXT = "builtin:report"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertPlan:
    """Every setting of one conversion, resolved, with where each came from."""

    recipe: Recipe | None
    quant: Setting[Quant]
    prefill_lengths: Setting[tuple[int, ...]]
    cache_length: Setting[int]
    lightweight: Setting[bool]
    min_agreement: Setting[float]
    max_nll_gap: Setting[float | None]
    eval_text: Setting[str | EvalTextFile]
    """BUILTIN_EVAL_TEXT, or the caller's text file."""
    calibration_texts: Setting[tuple[EvalTextFile, ...]]
    """The caller's calibration text files."""
    format: Format
    threads: int | None
    notes: tuple[str, ...]
    grid: GridReport | None = None
    split_rows: int | None = None
    """Where the tied table splits (split_table), when the recipe splits it and the model can be split."""
    given_by: str = CALLER
    """The source of the values the caller gave (ConvertConfig.given_by): "caller" or "flag"."""

    @property
    def recover_grid(self) -> bool:
        """The weights lie on the Q4_0 grid and the recipe has 4-bit blocks of 32 to keep it in."""
        quant = self.quant.value
        return self.grid is not None and self.grid.detected and quant.can_recover_grid

    @property
    def recipe_name(self) -> str | None:
        """The recipe's name as the manifest records it: the split variant, grid recovery marked."""
        quant = self.quant.value
        return quant.recipe_name_for(recover_grid=self.recover_grid, split_rows=self.split_rows)

    @property
    def description(self) -> str:
        """The quantization in plain words (the split variant names where the table splits)."""
        return self.quant.value.description_for(self.split_rows)

    def rules(self) -> list[QuantRule] | None:
        """The exact ai-edge-quantizer recipe this conversion applies (None: no quantization)."""
        quant = self.quant.value
        return quant.rules(recover_grid=self.recover_grid, split_rows=self.split_rows)

    def quantization(self) -> QuantizationRecord:
        """The manifest's `quantization` record: the recipe in words, its exact rules, the grid."""
        return QuantizationRecord(
            recipe=self.recipe_name,
            description=self.description,
            rules=self.rules(),
            grid_recovered=self.recover_grid,
            grid=self.grid.record() if self.grid is not None else None,
        )

    def settings(self) -> ManifestSettings:
        """The settings as the manifest records them."""
        quant = self.quant.value
        return ManifestSettings(
            quant=SettingRecord(value=quant.value, source=self.quant.source),
            quant_recipe=SettingRecord(value=self.recipe_name, source=self.quant.source),
            prefill_lengths=SettingRecord(value=tuple(self.prefill_lengths.value), source=self.prefill_lengths.source),
            cache_length=SettingRecord(value=self.cache_length.value, source=self.cache_length.source),
            lightweight=SettingRecord(value=self.lightweight.value, source=self.lightweight.source),
            min_agreement=SettingRecord(value=self.min_agreement.value, source=self.min_agreement.source),
            max_nll_gap=SettingRecord(value=self.max_nll_gap.value, source=self.max_nll_gap.source),
            eval_text=SettingRecord(value=self.eval_text.value, source=self.eval_text.source),
            format=SettingRecord(value=self.format.value, source=self.given_by),
            calibration_texts=SettingRecord(value=self.calibration_texts.value, source=self.calibration_texts.source),
        )


def _text_file(path: Path) -> EvalTextFile:
    return EvalTextFile(path=str(path.resolve()), sha256=sha256_file(path))


def make_plan(ckpt: Checkpoint, config: ConvertConfig) -> ConvertPlan:
    """Resolve the settings of converting `ckpt` as `config` asks (caller > recipe > default)."""
    recipe = recipes.recipe_for(ckpt.model_type)
    notes = []
    if recipe is None:
        notes.append(f"no edgekit recipe for model_type {ckpt.model_type!r}: converting with generic defaults")
    by = config.given_by
    defaults = recipe.defaults if recipe is not None else recipes.RecipeDefaults()
    quant = recipes.resolve(config.quant, defaults.quant, recipes.DEFAULT_QUANT, recipe, by)
    prefill = recipes.resolve(
        config.prefill_lengths, defaults.prefill_lengths, recipes.DEFAULT_PREFILL_LENGTHS, recipe, by
    )
    cache = recipes.resolve(config.cache_length, defaults.cache_length, recipes.DEFAULT_CACHE_LENGTH, recipe, by)
    if max(prefill.value) > cache.value:
        raise InputError(
            f"prefill length {max(prefill.value)} is longer than the cache ({cache.value}): "
            f"lower --prefill-lengths or raise --cache-length"
        )
    if quant.value is Quant.INT4_CHANNEL:
        notes.append(
            "int4-channel (per-channel INT4) is known upstream to collapse small LLMs; "
            "int4 (block-wise, 32) keeps quality at almost the same size"
        )
    min_agreement = recipes.resolve_min_agreement(config.min_agreement, quant.value, recipe, by)
    max_nll_gap = recipes.resolve_max_nll_gap(config.max_nll_gap, quant.value, recipe, by)
    if ckpt.random_weights:
        # The floors are measured on trained models; random weights give flat logits whose
        # order any quantization shuffles (see RANDOM_WEIGHTS_MIN_AGREEMENT).
        if config.min_agreement is None:
            min_agreement = Setting(RANDOM_WEIGHTS_MIN_AGREEMENT, "random-weights")
        if config.max_nll_gap is None:
            max_nll_gap = Setting(None, "random-weights")
    eval_text: Setting[str | EvalTextFile] = Setting(BUILTIN_EVAL_TEXT, "default")
    if config.eval_text is not None:
        from edgekit.convert import nll

        nll.text_from_file(config.eval_text)  # bad text is bad input, before any work
        eval_text = Setting(_text_file(config.eval_text), by)
    calibration = Setting(
        tuple(_text_file(t) for t in config.calibration_texts),
        by if config.calibration_texts else "default",
    )
    return ConvertPlan(
        recipe=recipe,
        quant=quant,
        prefill_lengths=prefill,
        cache_length=cache,
        lightweight=recipes.resolve(config.lightweight, defaults.lightweight, recipes.DEFAULT_LIGHTWEIGHT, recipe, by),
        min_agreement=min_agreement,
        max_nll_gap=max_nll_gap,
        eval_text=eval_text,
        calibration_texts=calibration,
        format=config.output_format,
        threads=config.threads,
        notes=tuple(notes),
        given_by=by,
    )


def fit_to_weights(plan: ConvertPlan, ckpt: Checkpoint) -> tuple[ConvertPlan, list[str]]:
    """The plan with what `ckpt`'s weights decide, and notes for the user: the Q4_0 grid found
    (when the recipe can keep it), where the tied table splits (when the recipe splits it)."""
    notes = []
    quant = plan.quant.value
    if quant.can_recover_grid:
        # A QAT checkpoint's weights already lie on a 4-bit grid: find it so the quantizer
        # keeps it. (The cache key needs no grid: the grid follows from the hashed files.)
        plan = dataclasses.replace(plan, grid=detect_q4_0(ckpt.path))
        if plan.recover_grid:
            notes.append(
                "weights lie on the Q4_0 grid (a quantization-aware-trained checkpoint): "
                "its 4-bit blocks are recovered, not re-quantized"
            )
    if quant.splits_table:
        from edgekit.convert.split_table import TableShape, split_rows
        from edgekit.convert.vocab import by_use, original_vocab_size

        used = by_use(ckpt.path)
        rows = split_rows(
            TableShape.read(ckpt.path),
            original_vocab_size=original_vocab_size(ckpt.path),
            text_ids=None if used is None else len(used),
        )
        plan = dataclasses.replace(plan, split_rows=rows)
    if plan.calibration_texts.value and plan.split_rows is None:
        notes.append(
            "--calibration-text steers which ids of Gemma 3's split table get 8 bits (--quant int4): "
            "this conversion calibrates nothing, so the text is not used"
        )
    return plan, notes
