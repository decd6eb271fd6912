"""A converted model file and the manifest that travels beside it (`<artifact>.json`).

The manifest records what the file is (sha256, size, format), where it came from (the
per-file sha256 of the source checkpoint), how it was made (every setting with where its
value came from, tool versions) and how well it agrees with the PyTorch reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar

from msgspec import UNSET, UnsetType

from edgekit._files import atomic_write_text
from edgekit._typed import from_data, to_data, to_json
from edgekit.errors import InputError

MANIFEST_SCHEMA_VERSION = 1
T = TypeVar("T")

CALLER = "caller"
"""Setting source: Python code gave the value (a ConvertConfig field)."""
FLAG = "flag"
"""Setting source: the CLI's user gave the value (an option of `edgekit convert`). Manifests
written before "caller" existed say "flag" for values Python code gave too."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at `path`."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest_path(artifact_path: Path) -> Path:
    """Where the manifest of `artifact_path` lives: the same name plus `.json`."""
    return artifact_path.with_name(artifact_path.name + ".json")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SettingRecord(Generic[T]):
    """One conversion setting and where its value came from: "caller" (Python code) or "flag"
    (a CLI option), "recipe:<family>", "default", "random-weights"."""

    value: T
    source: str

    @property
    def given(self) -> bool:
        """True when the user gave the value (not a recipe or a default)."""
        return self.source in (CALLER, FLAG)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalTextFile:
    """A user's evaluation text for the NLL gap: its resolved path and sha256."""

    path: str
    sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ManifestSettings:
    """Every setting of the conversion (docs/manifest.md). Settings an older edgekit did not
    record are None."""

    quant: SettingRecord[str]
    prefill_lengths: SettingRecord[tuple[int, ...]]
    cache_length: SettingRecord[int]
    quant_recipe: SettingRecord[str | None] | None = None
    lightweight: SettingRecord[bool] | None = None
    min_agreement: SettingRecord[float] | None = None
    max_nll_gap: SettingRecord[float | None] | None = None
    eval_text: SettingRecord[str | EvalTextFile] | None = None
    """"builtin:report", or a file the caller gave."""
    format: SettingRecord[str] | None = None
    calibration_texts: SettingRecord[tuple[EvalTextFile, ...]] | None = None
    """The app's own texts that chose the 8-bit ids of a split table (empty: the model's own samples)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class GgufSource:
    """What a GGUF source file said about itself."""

    architecture: str
    name: str | None
    size_bytes: int
    tensor_types: dict[str, int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdapterSource:
    """The LoRA adapter merged into the source before export (--adapter)."""

    path: str
    files: dict[str, str]
    rank: int
    target_modules: tuple[str, ...]
    base_model: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class VocabTextFile:
    """One --vocab-from file: its path and sha256."""

    path: str
    sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class VocabSource:
    """The vocabulary trimmed to the app's text before export (--vocab-from; edgekit.convert.vocab)."""

    kept_ids: int
    """Ids kept: the trimmed model's vocab_size (new id = the kept old ids' order)."""
    kept_ids_sha256: str
    """sha256 over the kept old ids as JSON ("[0, 1, 2, ...]")."""
    original_vocab_size: int
    original_vocab_sha256: str
    required_ids: int
    """Ids kept whatever the text: added/special tokens, chat template, byte pieces, their merge trees."""
    text_ids: int
    """Distinct ids the texts tokenize to with the original tokenizer."""
    min_count: int
    target_size: int | None
    texts: tuple[VocabTextFile, ...]
    filled_ids: int = 0
    """Ids added beyond the texts' own by vocab.fill_order (0 in manifests made before it)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceRecord:
    """Where the artifact came from: kind ("checkpoint_dir", "in_memory", "gguf"), path, the
    sha256 over the source's files and each file's sha256. A GGUF source also records its
    header and the files transformers materialised from it (as converted); a source with an
    adapter records the adapter and the files of the merged model (as converted); one with a
    trimmed vocabulary (--vocab-from) records what was kept and the files of the trimmed model."""

    kind: str
    path: str | None
    sha256: str
    files: dict[str, str]
    gguf: GgufSource | UnsetType = UNSET
    materialized_files: dict[str, str] | UnsetType = UNSET
    adapter: AdapterSource | UnsetType = UNSET
    vocab: VocabSource | UnsetType = UNSET


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelRecord:
    """The source model: transformers' model_type, edgekit's recipe family (None: no recipe)."""

    model_type: str
    family: str | None
    parameter_count: int | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversionRecord:
    """How the conversion went: wall time and per-stage times (s), peak RSS (MB), its log."""

    wall_time_s: float
    peak_rss_mb: float
    stage_times_s: dict[str, float]
    log: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridRecord:
    """Whether the checkpoint's weights lie on the Q4_0 grid (a quantization-aware-trained one)."""

    grid: str
    block_size: int
    detected: bool
    tensors_on_grid: int
    tensors_off_grid: tuple[str, ...]
    blocks: int
    negative_scale_blocks: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class TableSplitRecord:
    """A tied embedding/output table stored as two halves of different precision (split_table)."""

    rows_8bit: int
    rows_4bit: int
    ranking: str
    """How the ids of the 8-bit half were chosen, in words."""
    ids_8bit_sha256: str
    """sha256 of the sorted JSON list of the 8-bit half's token ids."""


# One rule of an ai-edge-quantizer 0.10 recipe, as edgekit writes it (recipes.py `_rule`):
# `recipe_manager.OpQuantizationRecipe` (regex, operation, algorithm_key, op_config) with
# `qtyping.OpQuantizationConfig.to_dict()` and `qtyping.TensorQuantizationConfig.to_dict()`
# nested in it, enums as their values. The quantizer types a recipe as `list[dict[str, Any]]`
# (qtyping.ModelQuantizationRecipe); these name the keys edgekit sets, no more (no
# activation_tensor_config: edgekit's recipes quantize weights only).


class WeightTensorConfig(TypedDict):
    """How a rule quantizes an op's weight tensor (qtyping.TensorQuantizationConfig)."""

    num_bits: int
    symmetric: bool
    granularity: str
    """qtyping.QuantGranularity: "CHANNELWISE", "BLOCKWISE_32", ..."""
    dtype: str
    """qtyping.TensorDataType: "INT"."""


class OpConfig(TypedDict):
    """How a rule quantizes the ops it matches (qtyping.OpQuantizationConfig)."""

    weight_tensor_config: WeightTensorConfig
    compute_precision: str
    """qtyping.ComputePrecision: "INTEGER" (dynamic range: activations quantized on the fly)."""
    explicit_dequantize: bool
    skip_checks: bool
    min_weight_elements: int


class QuantRule(TypedDict):
    """One rule of an ai-edge-quantizer recipe (recipe_manager.OpQuantizationRecipe): the ops
    whose name matches `regex` and whose type is `operation` ("*": any) get `op_config`."""

    regex: str
    operation: str
    algorithm_key: str
    """algorithm_manager.AlgorithmName: "min_max_uniform_quantize", "dequantized_weight_recovery"."""
    op_config: OpConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantizationRecord:
    """The quantization applied: the recipe's name and words, its exact ai-edge-quantizer rules
    (that library's own recipe format, kept as it is; None: no quantization), the grid, and
    how the tied table was split (edgekit.convert.split_table; None: it was not)."""

    recipe: str | None
    description: str
    rules: list[QuantRule] | None
    grid_recovered: bool = False
    grid: GridRecord | None = None
    table_split: TableSplitRecord | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalTextRecord:
    """Which text an NLL gap was measured on: the built-in one (files inside a pinned package,
    each with its sha256) or a user's file (its path and sha256)."""

    name: str
    """"builtin:report", "builtin:selection" or "file:<file name>"."""
    kind: str
    """"package" (the built-in text) or "file"."""
    package: str | UnsetType = UNSET
    """The package the built-in text is read from, with its version ("gensim==4.4.0")."""
    section: str | UnsetType = UNSET
    files: dict[str, str] | UnsetType = UNSET
    """The built-in text's files inside the package, each with its sha256."""
    languages: tuple[str, ...] | UnsetType = UNSET
    path: str | UnsetType = UNSET
    """A user's file, resolved."""
    sha256: str | UnsetType = UNSET


@dataclasses.dataclass(frozen=True, kw_only=True)
class NllGap:
    """The engine-level NLL gap on held-out prose: mean per-token negative log-likelihood of the
    artifact and of the fp32 reference, in nats (edgekit.convert.nll.measure), as the manifest records it.

    `max_nll_gap` and `passed` are the verdict of edgekit.convert.floors.judge: both None in a gap
    straight from nll.measure (measured, not judged). A judged gap with `max_nll_gap` None had no
    ceiling; `passed` is then true."""

    artifact_nll: float
    reference_nll: float
    gap_nats_per_token: float
    gap_stderr: float
    """Standard error of the gap from the per-token differences (a rough ± for comparing recipes)."""
    tokens: int
    windows: int
    text: EvalTextRecord
    max_nll_gap: float | None = None
    passed: bool | None = None
    perplexity_ratio: float
    """exp(gap): how many times more perplexed the artifact is than the reference."""
    engine_scoring: str | None = None
    """How the engine was made to score exactly ("exact", or "drops-second-to-last": litert-lm-api 0.18.1,
    corrected by prefilling the last prompt token twice); None in manifests written before the correction."""
    bytes: int | None = None
    """UTF-8 bytes of the scored continuations (the same text for both sides); the figures below are None
    in manifests written before them."""
    artifact_bits_per_byte: float | None = None
    """Total engine NLL over the scored continuations / their UTF-8 bytes / ln 2."""
    reference_bits_per_byte: float | None = None
    bits_per_byte_gap: float | None = None
    """Artifact minus reference bits per byte."""
    artifact_tokens_per_byte: float | None = None
    reference_tokens_per_byte: float | None = None
    artifact_byte_fallback_share: float | None = None
    """Share of the scored bytes the artifact's tokenizer wrote as byte pieces (byte_fallback's <0xNN>, or a
    byte-level BPE's 256 one-byte base symbols); None when the bundle's tokenizer is not a tokenizer.json."""
    reference_byte_fallback_share: float | None = None
    same_tokenizer: bool = True
    """False for an artifact whose vocabulary was trimmed (--vocab-from): each side scored its own
    tokenization of the same text; the gap is then (total artifact NLL - total reference NLL) / artifact
    tokens, and bits per byte is the comparable figure."""
    reference_tokens: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class FidelityReport:
    """Agreement of the artifact with the PyTorch reference; floats are fractions 0..1.
    `nll`: the NLL gap (`.litertlm` only); `passed`: every measured figure within its floor.

    `min_top1_agreement` and `passed` are the verdict of edgekit.convert.floors.judge: None in a
    report straight from fidelity.check (measured, not judged); a manifest's report is judged."""

    top1_agreement: float
    max_abs_logit_error: float
    mean_abs_logit_error: float
    greedy_agreement: float
    greedy_steps: int
    positions: int
    engine_generated_tokens: int | None
    engine_text: str | None
    min_top1_agreement: float | None = None
    passed: bool | None = None
    nll: NllGap | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as stored in the manifest (no `nll` key when there is none)."""
        data: dict[str, Any] = to_data(self)
        if self.nll is None:
            del data["nll"]
        return data


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    """Provenance and fidelity record of one artifact. See docs/manifest.md for every key."""

    sha256: str
    size_bytes: int
    format: str
    source: SourceRecord
    model: ModelRecord
    settings: ManifestSettings
    versions: dict[str, str | None]
    created: str
    conversion: ConversionRecord
    fidelity: FidelityReport | None = None
    quantization: QuantizationRecord | None = None
    cache_key: str | None = None
    notes: tuple[str, ...] = ()
    schema_version: int = MANIFEST_SCHEMA_VERSION

    def to_data(self) -> dict[str, Any]:
        """The manifest as plain JSON data (what `to_json` writes)."""
        data: dict[str, Any] = to_data(self)
        if self.fidelity is not None:
            data["fidelity"] = self.fidelity.to_dict()
        return data

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        return to_json(self.to_data())

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse and validate manifest JSON; InputError (one line, naming the first bad field)
        for anything that is not one. Every schema-1 manifest reads."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("manifest is not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > MANIFEST_SCHEMA_VERSION:
            raise InputError(
                f"manifest schema_version {version!r} is not one this edgekit reads "
                f"(<= {MANIFEST_SCHEMA_VERSION}): upgrade edgekit"
            )
        return from_data(data, cls, "manifest is not valid")

    def write(self, artifact_path: Path) -> Path:
        """Write the manifest beside `artifact_path` atomically; returns its path."""
        path = manifest_path(artifact_path)
        atomic_write_text(path, self.to_json())
        return path


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A model file (`.litertlm` or `.tflite`) and its manifest, if it has one."""

    path: Path
    manifest: Manifest | None

    @property
    def sha256(self) -> str:
        """The sha256 the manifest records; computes it from the file when there is no manifest."""
        if self.manifest is not None:
            return self.manifest.sha256
        return sha256_file(self.path)

    @classmethod
    def load(cls, path: Path | str) -> Artifact:
        """Open an artifact and its manifest (absent manifest = provenance unknown)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"artifact {path} does not exist or is not a file", path=path)
        mpath = manifest_path(path)
        if not mpath.is_file():
            return cls(path=path, manifest=None)
        try:
            manifest = Manifest.from_json(mpath.read_text())
        except InputError as exc:
            raise InputError(f"{mpath}: {exc}; re-convert the model or remove the manifest", path=mpath) from exc
        return cls(path=path, manifest=manifest)

    def verify(self) -> str:
        """Check the file against its manifest's sha256 and size; returns the sha256."""
        actual = sha256_file(self.path)
        if self.manifest is None:
            return actual
        size = self.path.stat().st_size
        # Name the field that differs: equal sha256s beside each other say nothing.
        differs = []
        if size != self.manifest.size_bytes:
            differs.append(f"size {size} bytes, manifest says {self.manifest.size_bytes}")
        if actual != self.manifest.sha256:
            differs.append(f"sha256 {actual[:12]}…, manifest says {self.manifest.sha256[:12]}…")
        if differs:
            which = "" if actual != self.manifest.sha256 else "; its sha256 matches, so the manifest was edited"
            raise InputError(
                f"{self.path} does not match its manifest ({'; '.join(differs)}{which}): "
                "the file or its manifest was changed; re-convert it",
                path=self.path,
            )
        return actual
