"""`edgekit eval`: the NLL gap of any `.litertlm` against the fp32 PyTorch model of a checkpoint.

    evaluate(artifact, reference) -> EvalResult   nll.measure, judged by floors.judge

The artifact's manifest, when it describes this very file, sizes the windows to its KV cache,
names its recipe, says whether its vocabulary was trimmed (then each side scores its own
tokenization) and which LoRA adapter to merge into the reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from msgspec import UNSET

from edgekit.artifact import Artifact, Manifest, NllGap, sha256_file
from edgekit.convert import adapter
from edgekit.convert.checkpoint import load_checkpoint, load_reference, require_convert_extra
from edgekit.convert.floors import judge
from edgekit.convert.nll import EvalText, measure
from edgekit.convert.recipes import Quant
from edgekit.convert.windows import context_room
from edgekit.errors import EdgekitError, InputError


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalResult:
    """`edgekit eval`: one artifact's NLL gap against a reference checkpoint."""

    artifact: str
    artifact_sha256: str
    recipe: str | None
    """The artifact's quantization in plain words, from its manifest (None without one)."""
    reference: str
    gap: NllGap
    adapter: str | None = None
    """The LoRA adapter folder merged into the reference (None: the reference as it is)."""

    def json_view(self) -> EvalJson:
        """What `edgekit eval --json` prints (through _typed.to_data): these fields, the gap as `nll`."""
        return EvalJson(
            artifact=self.artifact,
            artifact_sha256=self.artifact_sha256,
            recipe=self.recipe,
            reference=self.reference,
            adapter=self.adapter,
            nll=self.gap,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalJson:
    """`edgekit eval --json`'s document: an EvalResult with its gap under the key `nll`."""

    artifact: str
    artifact_sha256: str
    recipe: str | None
    reference: str
    adapter: str | None
    nll: NllGap


EVAL_MAX_TOKENS = 2048
"""Scored tokens per `edgekit eval` by default (about half a minute for a 270M INT4 model on 2 cores)."""


def evaluate(
    artifact: Path | str,
    reference: Path | str,
    *,
    text: EvalText | None = None,
    max_tokens: int = EVAL_MAX_TOKENS,
    threads: int | None = None,
    max_nll_gap: float | None = None,
    adapter_dir: Path | str | None = None,
) -> EvalResult:
    """NLL gap of `.litertlm` file `artifact` vs the fp32 PyTorch model of checkpoint folder `reference`.

    Works for any `.litertlm` (edgekit's or a third party's) whose tokenizer matches the
    reference's. Needs edgekit[convert] for the reference. FidelityError if the gap passes
    `max_nll_gap`. With `adapter_dir` (a LoRA adapter folder), or when the artifact's
    manifest records the adapter it was converted with, the reference is the base with
    that adapter merged (PEFT), as convert verified it.
    """
    artifact, reference = Path(artifact), Path(reference)
    if not artifact.is_file():
        raise InputError(f"artifact {artifact} does not exist", path=artifact)
    with open(artifact, "rb") as f:
        magic = f.read(8)
    if not magic.startswith(b"LITERTLM"):
        raise InputError(
            f"{artifact} is not a .litertlm bundle (the NLL gap runs the LiteRT-LM engine): "
            f"convert with --format litertlm",
            path=artifact,
        )
    require_convert_extra()
    load_checkpoint(reference)  # names whatever is wrong with the folder
    recipe = None
    digest = sha256_file(artifact)
    try:
        manifest = Artifact.load(artifact).manifest
    except EdgekitError:
        manifest = None
    if manifest is not None and manifest.sha256 != digest:
        manifest = None  # a stale manifest describes another file
    max_window_tokens, max_context_tokens = 512, None
    trimmed = False
    if manifest is not None:
        trimmed = manifest.source.vocab is not UNSET
        cache_length = manifest.settings.cache_length.value
        max_window_tokens = min(max_window_tokens, cache_length)
        max_context_tokens = context_room(cache_length, manifest.settings.prefill_lengths.value)
        quant = manifest.settings.quant.value
        try:
            recipe = manifest.quantization.description if manifest.quantization else Quant(quant).description
        except ValueError:
            recipe = str(quant)
    merge = _reference_adapter(artifact, manifest, reference, None if adapter_dir is None else Path(adapter_dir))
    model, tokenizer = load_reference(reference)
    if merge is not None:
        model = adapter.merged(model, merge)
    gap = measure(
        artifact,
        model,
        text=text,
        max_tokens=max_tokens,
        threads=threads,
        reference_tokenizer=tokenizer,
        max_window_tokens=max_window_tokens,
        max_context_tokens=max_context_tokens,
        own_tokenization=trimmed,
    )
    return EvalResult(
        artifact=str(artifact),
        artifact_sha256=digest,
        recipe=recipe,
        reference=str(reference),
        gap=judge(gap, max_nll_gap=max_nll_gap),
        adapter=None if merge is None else str(merge.path),
    )


def _reference_adapter(
    artifact: Path, manifest: Manifest | None, reference: Path, given: Path | None
) -> adapter.AdapterInfo | None:
    """The adapter to merge into the reference, None for none: `given`, else the one the
    manifest records, if its folder still holds the files converted."""
    recorded = None if manifest is None else manifest.source.adapter
    if given is not None:
        return adapter.check(given, reference)
    if recorded is None or recorded is UNSET:
        return None
    folder = Path(recorded.path)
    if not folder.is_dir():
        raise InputError(
            f"{artifact} was converted with LoRA adapter {folder}, which is gone: pass --adapter DIR "
            f"(its files' sha256 are in the manifest) so that the reference is the merged model"
        )
    info = adapter.check(folder, reference)
    if info.files != dict(recorded.files):
        changed = sorted(n for n in set(info.files) | set(recorded.files) if info.files.get(n) != recorded.files.get(n))
        raise InputError(
            f"adapter {folder} changed since {artifact} was converted ({', '.join(changed)}): "
            f"pass --adapter DIR of the adapter it was converted with"
        )
    return info
