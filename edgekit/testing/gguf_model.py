"""A tiny Gemma 3 GGUF made by llama.cpp's own tools, to drive real llama.cpp binaries in tests.

    make_tiny_gemma3_gguf(out_path, outtype="f32") -> Path

It writes edgekit's tiny example checkpoint (`edgekit.convert.example`: random weights, the
byte-level BPE tokenizer, the Gemma chat template), converts it with the
`convert_hf_to_gguf.py` of the llama.cpp source that `scripts/build-llama-cpp` unpacks
(run with that source's gguf-py first on sys.path) and, for the llama-quantize types,
quantizes the f32 GGUF with that build's `llama-quantize`. The GGUF carries the chat
template as `tokenizer.chat_template`.

The converter only accepts BPE tokenizers whose pre-tokenizer hash it knows; the example
tokenizer is new, so the conversion falls back to "gpt-2" (llama.cpp's name for the GPT-2
split regex, src/llama-vocab.cpp), which is what `pre_tokenizers.ByteLevel(add_prefix_space=False)`
applies.

The tiny shape (hidden 64, ffn 128, head_dim 32) fits the 32-wide blocks of Q4_0/Q4_1/Q5_0/
Q5_1/Q8_0; the 256-wide K-quants fall back to other types tensor by tensor.

Needs the `convert` extra (torch, transformers, tokenizers) and `scripts/build-llama-cpp`
run first (its source for the converter, its bin dir for llama-quantize); or point
`LLAMA_CPP_SRC` at a llama.cpp source folder and `LLAMA_CPP_BIN` at a bin dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from edgekit.errors import DependencyError, InputError

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANTIZE_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1")

_REPO = Path(__file__).resolve().parents[2]
_CACHE = _REPO / ".cache" / "llama.cpp"
_SRC = _CACHE / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"

# Runs convert_hf_to_gguf.py as __main__ with its own gguf-py and the gpt2 fallback.
_CONVERT = """
import runpy, sys
src = sys.argv[1]
sys.path[:0] = [src + "/gguf-py", src]
import conversion.base as base
known = base.TextModel.get_vocab_base_pre
def pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"
base.TextModel.get_vocab_base_pre = pre
sys.argv = [src + "/convert_hf_to_gguf.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

_CHAT_TEMPLATE = """
import sys
sys.path.insert(0, sys.argv[1] + "/gguf-py")
from gguf import GGUFReader
field = GGUFReader(sys.argv[2]).fields.get("tokenizer.chat_template")
sys.stdout.write(field.contents() if field is not None else "")
"""


def llama_cpp_src() -> Path:
    """The llama.cpp source folder (with convert_hf_to_gguf.py and gguf-py) to convert with."""
    src = Path(os.environ.get("LLAMA_CPP_SRC") or _SRC)
    if not (src / "convert_hf_to_gguf.py").is_file() or not (src / "gguf-py").is_dir():
        raise DependencyError(
            f"no llama.cpp source with convert_hf_to_gguf.py and gguf-py at {src}: "
            "run scripts/build-llama-cpp (or set LLAMA_CPP_SRC)"
        )
    return src


def llama_cpp_bin() -> Path:
    """The bin dir of a llama.cpp build (scripts/build-llama-cpp), for llama-quantize."""
    env = os.environ.get("LLAMA_CPP_BIN")
    candidates = [Path(env)] if env else sorted(_CACHE.glob("build-*/bin"))
    for candidate in candidates:
        if (candidate / "llama-quantize").is_file():
            return candidate
    where = env or f"{_CACHE}/build-*/bin"
    raise DependencyError(f"no llama-quantize in {where}: run scripts/build-llama-cpp (or set LLAMA_CPP_BIN)")


def gguf_chat_template(path: Path | str) -> str:
    """The `tokenizer.chat_template` of GGUF file `path` ("" if it has none), read with the source's gguf-py."""
    out = subprocess.run(
        [sys.executable, "-c", _CHAT_TEMPLATE, str(llama_cpp_src()), str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def make_tiny_gemma3_gguf(out_path: Path | str, outtype: str = "f32") -> Path:
    """Write the tiny example Gemma 3 model as a GGUF of `outtype` to `out_path`; returns it.

    `outtype`: one of CONVERTER_TYPES (written by convert_hf_to_gguf.py) or QUANTIZE_TYPES
    (an f32 GGUF quantized by llama-quantize). Raises DependencyError without the llama.cpp
    source (or, for QUANTIZE_TYPES, its build)."""
    from edgekit.convert.example import TINY, write_example_model

    outtype = outtype.lower()
    if outtype not in CONVERTER_TYPES + QUANTIZE_TYPES:
        raise InputError(f"outtype must be one of {', '.join(CONVERTER_TYPES + QUANTIZE_TYPES)}, not {outtype!r}")
    out_path = Path(out_path)
    src = llama_cpp_src()
    quantize = llama_cpp_bin() / "llama-quantize" if outtype in QUANTIZE_TYPES else None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-gemma3-gguf-") as tmp_name:
        tmp = Path(tmp_name)
        hf = write_example_model(tmp / "hf", TINY)
        converted = tmp / f"model-{'f32' if quantize else outtype}.gguf"
        _run(
            [
                sys.executable,
                "-c",
                _CONVERT,
                str(src),
                str(hf),
                "--outfile",
                str(converted),
                "--outtype",
                "f32" if quantize else outtype,
            ],
            "convert_hf_to_gguf.py",
        )
        final = converted
        if quantize is not None:
            final = tmp / f"model-{outtype}.gguf"
            env = {**os.environ, "LD_LIBRARY_PATH": str(quantize.parent)}
            _run([str(quantize), str(converted), str(final), outtype.upper()], "llama-quantize", env)
        if "<start_of_turn>" not in gguf_chat_template(final):
            raise RuntimeError(f"{final} has no Gemma chat template under tokenizer.chat_template")
        os.replace(final, out_path)
    return out_path
