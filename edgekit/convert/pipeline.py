"""Hugging Face checkpoint → verified LiteRT artifact: the stages in order, cached, written atomically.

    load_checkpoint(dir) -> Checkpoint              validate the folder, hash its files (checkpoint.py)
    make_plan(ckpt, config) -> ConvertPlan          resolve every setting: caller > recipe > default (plan.py)
    check_quantizable, check_resources, ...         refuse what would fail late (checks.py)
    export(ckpt, plan, work_dir) -> Exported        litert-torch export_hf: export, quantize, bundle (export.py)
    verify(artifact, plan, model, tokenizer, scratch) -> FidelityReport
                                                    measured against the PyTorch reference, judged (verify.py)
    convert(...)                                    all of the above, cached (cache.py), written atomically

litert-torch does the work; edgekit adds checks, settings, provenance and the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from msgspec import UNSET

from edgekit._capture import captured_output, new_log_path, torch_threads
from edgekit._files import remove_stale_temp
from edgekit._versions import versions
from edgekit.artifact import (
    Artifact,
    ConversionRecord,
    FidelityReport,
    Manifest,
    ModelRecord,
    SourceRecord,
    TableSplitRecord,
    manifest_path,
    sha256_file,
)
from edgekit.convert import adapter, vocab
from edgekit.convert.cache import cache_hit, cache_key
from edgekit.convert.checkpoint import Checkpoint, load_checkpoint
from edgekit.convert.checkpoint import load_reference as load_reference  # re-exported: commands and benchmarks
from edgekit.convert.checkpoint import require_convert_extra as require_convert_extra  # import them from here
from edgekit.convert.checks import check_chat_template, check_quantizable, check_resources
from edgekit.convert.config import ConvertConfig
from edgekit.convert.export import StageFn, StageTracker, export
from edgekit.convert.export import bundled_tflite as bundled_tflite  # re-exported for benchmarks
from edgekit.convert.gguf import GgufInfo
from edgekit.convert.plan import ConvertPlan, fit_to_weights, make_plan
from edgekit.convert.verify import verify
from edgekit.errors import ConversionError, EdgekitError, InputError


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertResult:
    """The artifact written, whether it came from the cache, and notes for the user."""

    artifact: Artifact
    cached: bool
    notes: tuple[str, ...]
    log_path: Path | None


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

    tracker = StageTracker(progress)
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
            adapter=UNSET if adapter_info is None else adapter_info.record(),
            vocab=UNSET if trim is None else trim.record(),
        )
    if gguf_info is not None:
        return SourceRecord(
            kind="gguf",
            path=str(gguf_info.path.resolve()),
            sha256=gguf_info.sha256,
            files={gguf_info.path.name: gguf_info.sha256},
            gguf=gguf_info.record(),
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
    tracker: StageTracker,
    log_path: Path | None,
) -> ConvertResult:
    started = time.perf_counter()
    in_memory = not isinstance(source, (str, Path))
    # A trim comes first (the texts checked, the tokenizer refused or the ids chosen, before anything else
    # is done); the trimmed checkpoint is then loaded. With an adapter, its merge is part of the trim's stage.
    tracker.enter("vocab" if config.vocab_from else "load")
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
        tracker.enter("load")
    ckpt, plan, key = _plan_source(src_dir, gguf_info, config, in_memory=in_memory)
    if key is not None and not config.force:
        hit = cache_hit(out, key)
        if hit is not None:
            tracker.leave()
            return ConvertResult(artifact=hit, cached=True, notes=tuple(plan.notes), log_path=None)
    if gguf_info is not None:
        from edgekit.convert import gguf

        gguf.materialize(gguf_info.path, src_dir, info=gguf_info)
        ckpt = load_checkpoint(src_dir)
    assert ckpt is not None
    plan, notes = _checked_plan(ckpt, plan, src_dir, gguf_info)
    if base is not None:  # name the user's base, not our merged or trimmed copy
        notes = [n.replace(str(src_dir), str(base.path)) for n in notes]
    if trim is not None:
        notes.append(
            f"vocabulary trimmed to {len(trim.kept)} of {trim.original_vocab_size} ids "
            f"({trim.required} the tokenizer and chat template need, {trim.filled} pieces of the text's "
            f"writing systems it did not use (--vocab-fill), the rest from the --vocab-from text)"
        )
    check_quantizable(ckpt, plan.quant.value)
    check_resources(ckpt, out.parent, split_table=plan.split_rows is not None)

    staged, table_split = _export_staged(ckpt, plan, config, work, tracker, log_path)
    fidelity_report = None
    if config.verify:
        tracker.enter("verify")
        model, tok = (source, tokenizer) if in_memory else load_reference(ckpt.path)
        fidelity_report = verify(staged, plan, model, tok, work)
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
        plan,
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
) -> tuple[Checkpoint | None, ConvertPlan, str | None]:
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
        plan = make_plan(stand_in, config)
        return None, plan, cache_key(stand_in, plan, config.verify)
    ckpt = load_checkpoint(src_dir)
    plan = make_plan(ckpt, config)
    return ckpt, plan, None if in_memory else cache_key(ckpt, plan, config.verify)


def _checked_plan(
    ckpt: Checkpoint, plan: ConvertPlan, src_dir: Path, gguf_info: GgufInfo | None
) -> tuple[ConvertPlan, list[str]]:
    """The plan fitted to the checkpoint's weights (plan.fit_to_weights), and the notes for the user."""
    notes = list(plan.notes) + check_chat_template(ckpt, plan.recipe)
    if gguf_info is not None:  # name the user's file, not our temp folder
        notes = [n.replace(str(src_dir), str(gguf_info.path)) for n in notes]
    plan, fitted = fit_to_weights(plan, ckpt)
    return plan, notes + fitted


def _export_staged(
    ckpt: Checkpoint, plan: ConvertPlan, config: ConvertConfig, work: Path, tracker: StageTracker, log_path: Path | None
) -> tuple[Path, TableSplitRecord | None]:
    """Export (litert-torch: export, quantize, bundle) into `work`; the finished file there, and the table split."""
    if log_path is None:
        # No captured output, so no upstream progress lines to follow: one stage covers
        # litert-torch's load, export and quantize.
        tracker.enter("export")
    try:
        exported = export(ckpt, plan, work / "export")
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
    plan: ConvertPlan,
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
            family=plan.recipe.family if plan.recipe else None,
            parameter_count=ckpt.parameter_count,
        ),
        settings=plan.settings(),
        versions=versions(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        conversion=conversion,
        fidelity=fidelity,
        quantization=dataclasses.replace(plan.quantization(), table_split=table_split),
        cache_key=key,
        notes=tuple(notes),
    )
