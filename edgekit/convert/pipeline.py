"""Hugging Face checkpoint → verified LiteRT artifact, in typed stages.

    load_checkpoint(dir) -> Checkpoint          validate the folder, hash its files (checkpoint.py)
    plan(ckpt, config) -> Plan                  resolve every setting (caller > recipe > default)
    export(ckpt, plan, work_dir) -> Exported    litert-torch export_hf: export, quantize, bundle
    verify(artifact, plan, model, tokenizer, scratch) -> FidelityReport
                                                fidelity.check against the PyTorch reference
    convert(...)                                all of the above, cached, written atomically

litert-torch does the work; edgekit adds checks, settings, provenance and the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgspec import UNSET

from edgekit._capture import captured_output, new_log_path, torch_threads
from edgekit._files import remove_stale_temp
from edgekit._typed import from_data, to_data
from edgekit._versions import CONVERT_DISTRIBUTIONS, versions
from edgekit.artifact import (
    CALLER,
    AdapterSource,
    Artifact,
    ConversionRecord,
    EvalTextFile,
    FidelityReport,
    GgufSource,
    GridRecord,
    Manifest,
    ManifestSettings,
    ModelRecord,
    NllRecord,
    QuantizationRecord,
    SettingRecord,
    SourceRecord,
    TableSplitRecord,
    VocabSource,
    manifest_path,
    sha256_file,
)
from edgekit.convert import adapter, recipes, vocab
from edgekit.convert.checkpoint import Checkpoint, load_checkpoint
from edgekit.convert.checkpoint import load_reference as load_reference  # re-exported: commands and benchmarks
from edgekit.convert.checkpoint import require_convert_extra as require_convert_extra  # import them from here
from edgekit.convert.config import ConvertConfig
from edgekit.convert.gguf import GgufInfo
from edgekit.convert.grid import GridReport, detect_q4_0
from edgekit.convert.recipes import Format, Quant, Recipe, Setting
from edgekit.errors import ConversionError, EdgekitError, FidelityError, InputError

StageFn = Callable[[str, str], None]
"""`progress(stage, event)`: a stage ("load", "export", "quantize", "bundle", "verify")
and "start" or "done". (Not a `ProgressFn`: stages have no count.)"""

# Upstream progress lines that mark our stages, in the order they appear.
_UPSTREAM_MARKERS = (
    ("Load source model", "load"),
    ("Export text prefill-decode model", "export"),
    ("Quantize model", "quantize"),
    ("Export tokenizer", "bundle"),
)
# Estimated peak memory of litert-torch's export per parameter (270M model: ~6 GB).
_EXPORT_BYTES_PER_PARAM = 22


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """Every setting of one conversion, resolved, with where each came from."""

    recipe: Recipe | None
    quant: Setting[Quant]
    prefill_lengths: Setting[tuple[int, ...]]
    cache_length: Setting[int]
    lightweight: Setting[bool]
    min_agreement: Setting[float]
    max_nll_gap: Setting[float | None]
    eval_text: Setting[str | dict[str, str]]
    """"builtin:report", or the caller's text file as {"path", "sha256"}."""
    calibration_texts: Setting[list[dict[str, str]]]
    """The caller's calibration text files, each as {"path", "sha256"}."""
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

    def rules(self) -> list[dict[str, Any]] | None:
        """The exact ai-edge-quantizer recipe this conversion applies (None: no quantization)."""
        quant = self.quant.value
        return quant.rules(recover_grid=self.recover_grid, split_rows=self.split_rows)

    def quantization(self) -> QuantizationRecord:
        """The manifest's `quantization` record: the recipe in words, its exact rules, the grid."""
        quant = self.quant.value
        return QuantizationRecord(
            recipe=self.recipe_name,
            description=quant.description_for(self.split_rows),
            rules=self.rules(),
            grid_recovered=self.recover_grid,
            grid=from_data(self.grid.to_dict(), GridRecord, "grid report") if self.grid is not None else None,
        )

    def settings(self) -> ManifestSettings:
        """The settings as the manifest records them."""
        quant = self.quant.value
        eval_text = self.eval_text.value
        return ManifestSettings(
            quant=SettingRecord(value=quant.value, source=self.quant.source),
            quant_recipe=SettingRecord(value=self.recipe_name, source=self.quant.source),
            prefill_lengths=SettingRecord(value=tuple(self.prefill_lengths.value), source=self.prefill_lengths.source),
            cache_length=SettingRecord(value=self.cache_length.value, source=self.cache_length.source),
            lightweight=SettingRecord(value=self.lightweight.value, source=self.lightweight.source),
            min_agreement=SettingRecord(value=self.min_agreement.value, source=self.min_agreement.source),
            max_nll_gap=SettingRecord(value=self.max_nll_gap.value, source=self.max_nll_gap.source),
            eval_text=SettingRecord(
                value=eval_text if isinstance(eval_text, str) else EvalTextFile(**eval_text),
                source=self.eval_text.source,
            ),
            format=SettingRecord(value=self.format.value, source=self.given_by),
            calibration_texts=SettingRecord(
                value=tuple(EvalTextFile(**t) for t in self.calibration_texts.value),
                source=self.calibration_texts.source,
            ),
        )


def plan(ckpt: Checkpoint, config: ConvertConfig) -> Plan:
    """Resolve the settings of converting `ckpt` as `config` asks (caller > recipe > default)."""
    recipe = recipes.recipe_for(ckpt.model_type)
    notes = []
    if recipe is None:
        notes.append(f"no edgekit recipe for model_type {ckpt.model_type!r}: converting with generic defaults")
    by = config.given_by
    quant = recipes.resolve("quant", config.quant, recipe, by)
    prefill = recipes.resolve("prefill_lengths", config.prefill_lengths, recipe, by)
    cache = recipes.resolve("cache_length", config.cache_length, recipe, by)
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
        from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT

        if config.min_agreement is None:
            min_agreement = Setting(RANDOM_WEIGHTS_MIN_AGREEMENT, "random-weights")
        if config.max_nll_gap is None:
            max_nll_gap = Setting(None, "random-weights")
    eval_text: Setting[str | dict[str, str]]
    if config.eval_text is not None:
        from edgekit.convert import nll

        nll.text_from_file(config.eval_text)  # bad text is bad input, before any work
        eval_text = Setting({"path": str(config.eval_text.resolve()), "sha256": sha256_file(config.eval_text)}, by)
    else:
        eval_text = Setting("builtin:report", "default")
    calibration = Setting(
        [{"path": str(t.resolve()), "sha256": sha256_file(t)} for t in config.calibration_texts],
        by if config.calibration_texts else "default",
    )
    return Plan(
        recipe=recipe,
        quant=quant,
        prefill_lengths=prefill,
        cache_length=cache,
        lightweight=recipes.resolve("lightweight", config.lightweight, recipe, by),
        min_agreement=min_agreement,
        max_nll_gap=max_nll_gap,
        eval_text=eval_text,
        calibration_texts=calibration,
        format=config.output_format,
        threads=config.threads,
        notes=tuple(notes),
        given_by=by,
    )


def check_chat_template(ckpt: Checkpoint, recipe: Recipe | None) -> list[str]:
    """Notes where the checkpoint's tokenizer lacks what the recipe expects of its chat template."""
    if recipe is None or not recipe.turn_markers:
        return []
    texts = []
    for name in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        if (ckpt.path / name).is_file():
            texts.append((ckpt.path / name).read_text(errors="replace"))
    joined = "\n".join(texts)
    if "chat_template" not in joined and not (ckpt.path / "chat_template.jinja").is_file():
        return [f"{ckpt.path} has no chat template: LiteRT-LM will feed prompts without turn markers"]
    missing = [m for m in recipe.turn_markers if m not in joined]
    if missing:
        return [f"the chat template does not mention {', '.join(missing)}, which {recipe.family} models expect"]
    return []


def check_quantizable(ckpt: Checkpoint, quant: Quant) -> None:
    """Refuse weights the quantizer would turn into a 0.0 scale (an all-zero block or row).

    XNNPACK rejects such a model at run time ("unsupported scale value (0.000000)"); we
    do not change the user's weights, we name the tensor.
    """
    if quant is Quant.FP32:
        return
    from safetensors import safe_open

    for weights in sorted(ckpt.path.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is no dict)
                tensor = f.get_tensor(name)
                if tensor.dim() != 2 or not name.endswith("weight"):
                    continue
                cols = tensor.shape[1]
                block = quant.block_size or (32 if quant is Quant.INT4 and "embed" in name else cols)
                if cols % block:
                    continue
                zero = (tensor.reshape(-1, block) == 0).all(dim=-1)
                if bool(zero.any()):
                    first = int(zero.nonzero()[0, 0])
                    row, col = divmod(first * block, cols)
                    what = f"block (row {row}, columns {col}-{col + block - 1})" if block < cols else f"row {row}"
                    raise InputError(
                        f"tensor {name} has an all-zero {what}, which --quant {quant.value} turns into a "
                        f"0.0 scale that XNNPACK rejects at run time: train or fill those weights, or "
                        f"use --quant fp32",
                        path=weights,
                    )


def check_resources(ckpt: Checkpoint, out_dir: Path, *, split_table: bool = False) -> None:
    """Fail early when memory or disk clearly cannot hold the conversion.

    Disk, in `out_dir` (the work folder sits beside the output): the fp32 export and
    the quantized model, plus a fp32 copy of the checkpoint when `split_table`
    (split_table.prepare writes the split checkpoint there).
    """
    need_ram = ckpt.parameter_count * _EXPORT_BYTES_PER_PARAM
    available = _mem_available_bytes()
    if available is not None and need_ram > available:
        raise InputError(
            f"converting {ckpt.parameter_count / 1e6:.0f}M parameters needs about {need_ram / 2**30:.1f} GiB "
            f"of memory and {available / 2**30:.1f} GiB is available: close other programs or use a bigger machine"
        )
    need_disk = ckpt.parameter_count * 4 * (3 if split_table else 2)
    free = shutil.disk_usage(out_dir).free
    if need_disk > free:
        raise InputError(
            f"converting needs about {need_disk / 2**30:.1f} GiB free in {out_dir} and "
            f"{free / 2**30:.1f} GiB is free: free space or choose another output folder"
        )


def _mem_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _StageTracker:
    """Turns upstream's progress lines into our stage events and stage timings."""

    def __init__(self, progress: StageFn | None) -> None:
        self._progress = progress
        self._text = ""
        self._seen: set[str] = set()
        self.current: str | None = None
        self._started = 0.0
        self.times_s: dict[str, float] = {}

    def enter(self, stage: str) -> None:
        if stage == self.current or stage in self.times_s:
            return
        self.leave()
        self.current, self._started = stage, time.perf_counter()
        if self._progress:
            self._progress(stage, "start")

    def leave(self) -> None:
        if self.current is not None:
            self.times_s[self.current] = round(time.perf_counter() - self._started, 3)
            if self._progress:
                self._progress(self.current, "done")
            self.current = None

    def feed(self, text: str) -> None:
        # Upstream's rich console wraps long lines anywhere: match on whitespace-folded text.
        self._text = " ".join((self._text[-400:] + text).split())
        for marker, stage in _UPSTREAM_MARKERS:
            if stage not in self._seen and f"> {marker}" in self._text:
                self._seen.add(stage)
                self.enter(stage)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Exported:
    """What litert-torch wrote: the bundle (None for --format tflite) and the TFLite model in it."""

    tflite_path: Path
    bundle_path: Path | None
    table_split: TableSplitRecord | None = None
    """How the tied table was split for the export (split_table); None: it was not."""


def export(ckpt: Checkpoint, the_plan: Plan, work_dir: Path) -> Exported:
    """Run litert-torch's export_hf on `ckpt` into `work_dir` (export, quantize, bundle)."""
    from litert_torch.generative.export_hf import export as export_hf

    bundle = the_plan.format is Format.LITERTLM
    rules = the_plan.rules()
    recipe_arg = "none"
    if rules is not None:
        # export_hf passes a path ending in .json to ai-edge-quantizer's load_quantization_recipe
        # (litert_torch/generative/export_hf/core/export_lib.py quantize_model, 0.10).
        work_dir.mkdir(parents=True, exist_ok=True)
        recipe_file = work_dir / "quant_recipe.json"
        recipe_file.write_text(json.dumps(rules, indent=1))
        recipe_arg = str(recipe_file)
    model_dir, model_class, table_split = ckpt.path, None, None
    if the_plan.split_rows is not None:
        from edgekit.convert import split_table

        model_dir, model_class, table_split = split_table.prepare(
            ckpt.path,
            work_dir.with_name("split-checkpoint"),
            the_plan.split_rows,
            calibration=[Path(t["path"]) for t in the_plan.calibration_texts.value],
        )
    export_hf.export(
        model=str(model_dir),
        auto_model_override=model_class,
        output_dir=str(work_dir),
        prefill_lengths=list(the_plan.prefill_lengths.value),
        cache_length=the_plan.cache_length.value,
        quantization_recipe=recipe_arg,
        keep_temporary_files=True,
        bundle_litert_lm=bundle,
        experimental_lightweight_conversion=the_plan.lightweight.value,
    )
    tflite = work_dir / ("model_quantized.tflite" if rules is not None else "model.tflite")
    litertlm = work_dir / "model.litertlm"
    if not tflite.is_file() or (bundle and not litertlm.is_file()):
        raise ConversionError("litert-torch finished without writing the model", stage="export")
    return Exported(tflite_path=tflite, bundle_path=litertlm if bundle else None, table_split=table_split)


def bundled_tflite(bundle: Path, into: Path) -> Path:
    """Unpack the prefill/decode TFLite model out of a `.litertlm` bundle into folder `into`."""
    from litert_lm_builder import litertlm_builder

    litertlm_builder.unpack(str(bundle), str(into))
    found = sorted(into.glob("*prefill_decode*.tflite"))
    if not found:
        raise FidelityError("the bundle holds no prefill/decode TFLite model")
    return found[0]


def verify(artifact_path: Path, the_plan: Plan, model: Any, tokenizer: Any, scratch: Path) -> FidelityReport:
    """Fidelity of the file at `artifact_path` (as it will be delivered) against `model`.

    Two measurements, both recorded: next-token top-1 agreement (fidelity.check) and, for a
    `.litertlm`, the engine-level NLL gap on held-out prose (nll.measure). Either below
    its floor raises FidelityError naming both figures.
    """
    from edgekit.convert import fidelity, nll

    if the_plan.format is Format.LITERTLM:
        tflite, bundle = bundled_tflite(artifact_path, scratch / "unpacked"), artifact_path
    else:
        tflite, bundle = artifact_path, None
    floor = the_plan.min_agreement.value
    report = fidelity.check(
        tflite_path=tflite,
        bundle_path=bundle,
        model=model,
        tokenizer=tokenizer,
        min_top1_agreement=0.0,
        threads=the_plan.threads,
    )
    ceiling = the_plan.max_nll_gap.value
    gap = None
    if bundle is not None:
        text_setting = the_plan.eval_text.value
        text = nll.text_from_file(text_setting["path"]) if isinstance(text_setting, dict) else nll.builtin_text()
        gap = nll.measure(
            bundle,
            model,
            text=text,
            threads=the_plan.threads,
            max_window_tokens=min(512, the_plan.cache_length.value),
            max_context_tokens=nll.context_room(the_plan.cache_length.value, the_plan.prefill_lengths.value),
        )
    top1_ok = report.top1_agreement >= floor
    gap_ok = gap is None or ceiling is None or gap.gap_nats_per_token <= ceiling
    nll_record = None
    if gap is not None:
        nll_record = from_data(gap.to_dict() | {"max_nll_gap": ceiling, "passed": gap_ok}, NllRecord, "NLL gap")
    result = dataclasses.replace(report, min_top1_agreement=floor, nll=nll_record, passed=top1_ok and gap_ok)
    if not result.passed:
        quant = the_plan.quant.value
        failed = []
        if not top1_ok:
            failed.append(f"top-1 agreement {report.top1_agreement:.1%} < {floor:.0%}")
        if not gap_ok and gap is not None:
            failed.append(f"NLL gap {gap.gap_nats_per_token:+.3f} nats/token > {ceiling:.2f}")
        raise FidelityError(
            f"{quant.description_for(the_plan.split_rows)}: {' and '.join(failed)} vs PyTorch (max logit error "
            f"{report.max_abs_logit_error:.3g}): the conversion loses too much; try a higher-precision "
            f"--quant, or pass --min-agreement/--max-nll-gap if this model is untrained or you accept the loss"
        )
    return result


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertResult:
    """The artifact written, whether it came from the cache, and notes for the user."""

    artifact: Artifact
    cached: bool
    notes: tuple[str, ...]
    log_path: Path | None


# What cache_key hashes, versioned: bump it when a field changes meaning or goes, so a key
# made before misses the cache. 2: the device transports' versions (adbutils, adb-shell) left
# the key (1 had them, and no "format" field).
CACHE_KEY_FORMAT = 2


def cache_key(ckpt: Checkpoint, the_plan: Plan, verify_on: bool) -> str:
    """Hash of the source files, the resolved settings and the versions of the tools that convert.

    The device transports' versions are not in it: an adb library upgrade changes no artifact.
    """
    payload = {
        "format": CACHE_KEY_FORMAT,
        "files": ckpt.files,
        "settings": to_data(the_plan.settings()),
        "verify": verify_on,
        "versions": versions(CONVERT_DISTRIBUTIONS),
        # int4 splits a Gemma 3 table (split_table) since this key field appeared: an int4
        # artifact made before, with the whole table at 4 bits, must not be a cache hit.
        "table_split": the_plan.quant.value.splits_table,
    }
    if (ckpt.path / vocab.MARKER).is_file():
        # A trimmed vocabulary's 8-bit half was half its ids before this key field appeared
        # (split_table.split_rows): such an artifact must not be a cache hit.
        payload["trimmed_split"] = "the text's ids first, at 8 bits"
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _cache_hit(out: Path, key: str) -> Artifact | None:
    if not out.is_file() or not manifest_path(out).is_file():
        return None
    try:
        artifact = Artifact.load(out)
        if artifact.manifest is None or artifact.manifest.cache_key != key:
            return None
        artifact.verify()
    except EdgekitError:
        return None
    return artifact


def _last_error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip().rstrip(":")


def convert(
    source: Path | str | Any,
    config: ConvertConfig,
    *,
    tokenizer: Any = None,
    progress: StageFn | None = None,
    capture_output: bool = False,
    set_torch_threads: bool = False,
) -> ConvertResult:
    """Convert a Hugging Face checkpoint folder (or an in-memory model + `tokenizer`) to `config.output`.

    The output appears only when complete and verified (written to a temp file in the same
    folder, then renamed); its manifest is written beside it. Converting unchanged input
    with unchanged settings returns the existing file at once unless `config.force`.
    In-memory models are saved to a temp folder first and never cached.

    Process-wide state is left alone unless the caller opts in (the CLI does both):
    `capture_output` sends fd 1 and 2 (what litert-torch, TensorFlow and the runtimes
    print, from every thread) into a log in edgekit's cache for the duration, named in the
    manifest and in errors, and lets `progress` hear upstream's own stages (quantize);
    `config.verbose` then echoes the log to stderr. `set_torch_threads` applies
    `config.threads` to torch's process-wide thread count for the duration and restores
    it after; without it `config.threads` sets only the LiteRT interpreter's and engine's
    threads in the fidelity check.
    """
    require_convert_extra()
    out = config.output.resolve() if config.output.is_absolute() else Path.cwd() / config.output
    out_dir = out.parent
    if not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} does not exist: create it first", path=out_dir)
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise InputError(f"output folder {out_dir} is not writable: choose another -o", path=out_dir)
    if out.is_dir():
        raise InputError(
            f"output {out} is a folder: give a file name ending in {config.output_format.suffix}", path=out
        )

    in_memory = not isinstance(source, (str, Path))
    if in_memory and tokenizer is None:
        raise InputError("an in-memory model needs its tokenizer: convert(model, config, tokenizer=tok)")

    tracker = _StageTracker(progress)
    # A convert killed with SIGKILL (or by the OOM killer) cannot remove its work folder:
    # the next convert to the same -o removes those of ours untouched for a day.
    work_prefix = f".{out.name}.edgekit-"
    remove_stale_temp(out_dir, work_prefix)
    try:
        work = Path(tempfile.mkdtemp(prefix=work_prefix, dir=out_dir))
    except OSError as exc:
        raise InputError(f"cannot write in output folder {out_dir} ({exc.strerror}): choose another -o") from exc
    log_path = new_log_path("convert") if capture_output else None
    try:
        with contextlib.ExitStack() as scope:
            if log_path is not None:
                scope.enter_context(captured_output(log_path, tracker.feed, echo=config.verbose))
            if set_torch_threads:
                scope.enter_context(torch_threads(config.threads))
            return _convert_in(source, tokenizer, config, out, work, tracker, log_path)
    finally:
        tracker.current = None
        shutil.rmtree(work, ignore_errors=True)


def _checked_adapter(
    src_dir: Path, gguf_info: GgufInfo | None, adapter_dir: Path, *, in_memory: bool
) -> tuple[Checkpoint, adapter.AdapterInfo]:
    """The base checkpoint and the adapter to merge into it; InputError if they do not fit."""
    if gguf_info is not None or in_memory:
        raise InputError(
            "--adapter merges a LoRA adapter into a Hugging Face checkpoint folder: give the base "
            "as that folder (`edgekit example gemma3-270m DIR` writes the trained Gemma 3 270M as one)"
        )
    base = load_checkpoint(src_dir)  # the base's own faults first
    return base, adapter.check(adapter_dir, src_dir)


def _source_record(
    ckpt: Checkpoint,
    gguf_info: GgufInfo | None,
    in_memory: bool,
    *,
    base: Checkpoint | None = None,
    adapter_info: adapter.AdapterInfo | None = None,
    trim: vocab.Trim | None = None,
) -> SourceRecord:
    if base is not None:
        return SourceRecord(
            kind="checkpoint_dir",
            path=str(base.path.resolve()),
            sha256=base.source_sha256,
            files=base.files,
            # The model as converted: PEFT's merge of the two, its vocabulary trimmed.
            materialized_files=ckpt.files,
            adapter=UNSET if adapter_info is None else from_data(adapter_info.to_dict(), AdapterSource, "adapter"),
            vocab=UNSET if trim is None else from_data(trim.to_dict(), VocabSource, "vocabulary trim"),
        )
    if gguf_info is not None:
        info = gguf_info.to_dict()
        return SourceRecord(
            kind="gguf",
            path=str(gguf_info.path.resolve()),
            sha256=gguf_info.sha256,
            files={gguf_info.path.name: gguf_info.sha256},
            gguf=from_data(
                {k: info[k] for k in ("architecture", "name", "size_bytes", "tensor_types")}, GgufSource, "GGUF header"
            ),
            # What transformers' GGUF loader made of it (fp32), as converted.
            materialized_files=ckpt.files,
        )
    return SourceRecord(
        kind="in_memory" if in_memory else "checkpoint_dir",
        path=None if in_memory else str(ckpt.path.resolve()),
        sha256=ckpt.source_sha256,
        files=ckpt.files,
    )


def _convert_in(
    source: Any,
    tokenizer: Any,
    config: ConvertConfig,
    out: Path,
    work: Path,
    tracker: _StageTracker,
    log_path: Path | None,
) -> ConvertResult:
    started = time.perf_counter()
    in_memory = not isinstance(source, (str, Path))
    tracker.enter("load")
    src_dir, gguf_info = _source_dir(source, tokenizer, work)
    base, adapter_info, trim = None, None, None
    texts = vocab.read_texts(config.vocab_from)  # bad text is bad input, before any work
    if config.adapter is not None:
        base, adapter_info = _checked_adapter(src_dir, gguf_info, config.adapter, in_memory=in_memory)
        src_dir = adapter.write_merged(base.path, adapter_info, work / "merged")
    if texts:
        if gguf_info is not None or in_memory:
            raise InputError(
                "--vocab-from trims a Hugging Face checkpoint folder: give the model as that folder "
                "(`edgekit example gemma3-270m DIR` writes the trained Gemma 3 270M as one)"
            )
        untrimmed = load_checkpoint(src_dir)
        base = base or untrimmed
        trim = vocab.select(
            src_dir,
            untrimmed.model_type,
            texts,
            min_count=config.vocab_min_count or 1,
            target_size=config.vocab_size,
            fill=config.vocab_fill,
        )
        src_dir = vocab.write_trimmed(src_dir, trim, work / "trimmed")
    ckpt, the_plan, key = _plan_source(src_dir, gguf_info, config, in_memory=in_memory)
    if key is not None and not config.force:
        hit = _cache_hit(out, key)
        if hit is not None:
            tracker.leave()
            return ConvertResult(artifact=hit, cached=True, notes=tuple(the_plan.notes), log_path=None)
    if gguf_info is not None:
        from edgekit.convert import gguf

        gguf.materialize(gguf_info.path, src_dir, info=gguf_info)
        ckpt = load_checkpoint(src_dir)
    assert ckpt is not None
    the_plan, notes = _checked_plan(ckpt, the_plan, src_dir, gguf_info)
    if base is not None:  # name the user's base, not our merged or trimmed copy
        notes = [n.replace(str(src_dir), str(base.path)) for n in notes]
    if trim is not None:
        notes.append(
            f"vocabulary trimmed to {len(trim.kept)} of {trim.original_vocab_size} ids "
            f"({trim.required} the tokenizer and chat template need, {trim.filled} pieces of the text's "
            f"writing systems it did not use (--vocab-fill), the rest from the --vocab-from text)"
        )
    check_quantizable(ckpt, the_plan.quant.value)
    check_resources(ckpt, out.parent, split_table=the_plan.split_rows is not None)

    staged, table_split = _export_staged(ckpt, the_plan, config, work, tracker, log_path)
    fidelity_report = None
    if config.verify:
        tracker.enter("verify")
        model, tok = (source, tokenizer) if in_memory else load_reference(ckpt.path)
        fidelity_report = verify(staged, the_plan, model, tok, work)
        tracker.leave()
    else:
        notes.append("fidelity check skipped (--no-verify): nothing proves this artifact computes the right thing")
    conversion = ConversionRecord(
        wall_time_s=round(time.perf_counter() - started, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        stage_times_s=dict(tracker.times_s),
        log=None if log_path is None else str(log_path),
    )

    manifest = _manifest(
        staged,
        ckpt,
        the_plan,
        config,
        source=_source_record(ckpt, gguf_info, in_memory, base=base, adapter_info=adapter_info, trim=trim),
        key=key,
        conversion=conversion,
        fidelity=fidelity_report,
        table_split=table_split,
        notes=notes,
    )
    # An old manifest must never describe the new file, not even for a moment.
    manifest_path(out).unlink(missing_ok=True)
    os.replace(staged, out)
    manifest.write(out)
    return ConvertResult(
        artifact=Artifact(path=out, manifest=manifest), cached=False, notes=tuple(notes), log_path=log_path
    )


def _source_dir(source: Any, tokenizer: Any, work: Path) -> tuple[Path, GgufInfo | None]:
    """The checkpoint folder to convert and, for a GGUF file, its header (materialized later, on a cache miss)."""
    if not isinstance(source, (str, Path)):  # an in-memory model
        src_dir = work / "source"
        source.save_pretrained(src_dir)
        tokenizer.save_pretrained(src_dir)
        return src_dir, None
    if Path(source).is_file():
        from edgekit.convert import gguf

        if not gguf.is_gguf(Path(source)):
            raise InputError(
                f"{source} is a file but no GGUF: give a Hugging Face checkpoint folder or a .gguf file",
                path=Path(source),
            )
        return work / "source", gguf.gguf_info(source)
    return Path(source), None


def _plan_source(
    src_dir: Path, gguf_info: GgufInfo | None, config: ConvertConfig, *, in_memory: bool
) -> tuple[Checkpoint | None, Plan, str | None]:
    """(the loaded checkpoint, None for a GGUF not materialized yet; the plan; the cache key, None: never cached)."""
    if gguf_info is not None:
        # Settings and the cache key come from the GGUF itself: an unchanged file is a
        # cache hit without loading it.
        stand_in = Checkpoint(
            path=gguf_info.path,
            model_type=gguf_info.model_type,
            files={gguf_info.path.name: gguf_info.sha256},
            parameter_count=0,
        )
        the_plan = plan(stand_in, config)
        return None, the_plan, cache_key(stand_in, the_plan, config.verify)
    ckpt = load_checkpoint(src_dir)
    the_plan = plan(ckpt, config)
    return ckpt, the_plan, None if in_memory else cache_key(ckpt, the_plan, config.verify)


def _checked_plan(
    ckpt: Checkpoint, the_plan: Plan, src_dir: Path, gguf_info: GgufInfo | None
) -> tuple[Plan, list[str]]:
    """The plan with the checkpoint's Q4_0 grid found (when the recipe can keep it), and the notes for the user."""
    notes = list(the_plan.notes) + check_chat_template(ckpt, the_plan.recipe)
    if gguf_info is not None:  # name the user's file, not our temp folder
        notes = [n.replace(str(src_dir), str(gguf_info.path)) for n in notes]
    if the_plan.quant.value.can_recover_grid:
        # A QAT checkpoint's weights already lie on a 4-bit grid: find it so the quantizer
        # keeps it. (The cache key needs no grid: the grid follows from the hashed files.)
        the_plan = dataclasses.replace(the_plan, grid=detect_q4_0(ckpt.path))
        if the_plan.recover_grid:
            notes.append(
                "weights lie on the Q4_0 grid (a quantization-aware-trained checkpoint): "
                "its 4-bit blocks are recovered, not re-quantized"
            )
    if the_plan.quant.value.splits_table:
        from edgekit.convert.split_table import split_rows
        from edgekit.convert.vocab import by_use, original_vocab_size

        config = json.loads((ckpt.path / "config.json").read_text())
        used = by_use(ckpt.path)
        rows = split_rows(
            config, original_vocab_size=original_vocab_size(ckpt.path), text_ids=None if used is None else len(used)
        )
        the_plan = dataclasses.replace(the_plan, split_rows=rows)
    if the_plan.calibration_texts.value and the_plan.split_rows is None:
        notes.append(
            "--calibration-text steers which ids of Gemma 3's split table get 8 bits (--quant int4): "
            "this conversion calibrates nothing, so the text is not used"
        )
    return the_plan, notes


def _export_staged(
    ckpt: Checkpoint, the_plan: Plan, config: ConvertConfig, work: Path, tracker: _StageTracker, log_path: Path | None
) -> tuple[Path, TableSplitRecord | None]:
    """Export (litert-torch: export, quantize, bundle) into `work`; the finished file there, and the table split."""
    if log_path is None:
        # No captured output, so no upstream progress lines to follow: one stage covers
        # litert-torch's load, export and quantize.
        tracker.enter("export")
    try:
        exported = export(ckpt, the_plan, work / "export")
    except EdgekitError:
        raise
    except Exception as exc:  # litert-torch raises anything; translate at the edge
        where = f"full log: {log_path}" if log_path is not None else "its output is above"
        raise ConversionError(
            f"litert-torch failed while exporting ({_last_error_line(exc)}); {where}",
            stage=tracker.current or "export",
        ) from exc
    tracker.enter("bundle")
    staged = work / f"artifact{config.output_format.suffix}"
    os.replace(exported.bundle_path or exported.tflite_path, staged)
    tracker.leave()
    return staged, exported.table_split


def _manifest(
    staged: Path,
    ckpt: Checkpoint,
    the_plan: Plan,
    config: ConvertConfig,
    *,
    source: SourceRecord,
    key: str | None,
    conversion: ConversionRecord,
    fidelity: FidelityReport | None,
    table_split: TableSplitRecord | None,
    notes: list[str],
) -> Manifest:
    """The manifest of the finished file `staged`."""
    return Manifest(
        sha256=sha256_file(staged),
        size_bytes=staged.stat().st_size,
        format=config.output_format.value,
        source=source,
        model=ModelRecord(
            model_type=ckpt.model_type,
            family=the_plan.recipe.family if the_plan.recipe else None,
            parameter_count=ckpt.parameter_count,
        ),
        settings=the_plan.settings(),
        versions=versions(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        conversion=conversion,
        fidelity=fidelity,
        quantization=dataclasses.replace(the_plan.quantization(), table_split=table_split),
        cache_key=key,
        notes=tuple(notes),
    )
