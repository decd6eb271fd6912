"""Every bad input: exit code non-zero, one line on stderr naming the problem, no file at OUT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _break_missing_config(d: Path) -> None:
    (d / "config.json").unlink()


def _break_unsupported_arch(d: Path) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "bert"
    (d / "config.json").write_text(json.dumps(cfg))


def _break_config_json(d: Path) -> None:
    (d / "config.json").write_text("{not json")


def _break_missing_tokenizer(d: Path) -> None:
    (d / "tokenizer.json").unlink()


def _break_truncated_weights(d: Path) -> None:
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1000])


def _break_garbage_weights(d: Path) -> None:
    (d / "model.safetensors").write_bytes(b"\x00" * 3)


def _break_no_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def _break_zero_block(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    w = d / "model.safetensors"
    tensors = load_file(str(w))
    # The default int4 stores the embedding table in 4-bit blocks of 32 (the linear layers
    # are per channel, where only an all-zero row makes a 0.0 scale).
    name = "model.embed_tokens.weight"
    tensors[name][3, 32:64] = 0.0
    save_file(tensors, str(w), metadata={"format": "pt"})


CASES = {
    "no config.json": (_break_missing_config, "has no config.json"),
    "bad config.json": (_break_config_json, "is not valid JSON"),
    "unsupported architecture": (_break_unsupported_arch, "model_type 'bert'"),
    "no tokenizer": (_break_missing_tokenizer, "has no tokenizer"),
    "truncated safetensors": (_break_truncated_weights, "is truncated or corrupt (incomplete metadata"),
    "garbage safetensors": (_break_garbage_weights, "is truncated or corrupt (header too small)"),
    "no weights": (_break_no_weights, "has no *.safetensors"),
    "all-zero block": (
        _break_zero_block,
        "model.embed_tokens.weight has an all-zero block (row 3, columns 32-63)",
    ),
}


def _assert_one_line_failure(proc, expected: str, out: Path) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgekit: error: ")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.edgekit-*")), "temp folder left behind"


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_checkpoint(case: str, tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    breaker, expected = CASES[case]
    d = _copy(tiny_gemma3_dir, tmp_path / "model")
    breaker(d)
    out = tmp_path / "out.litertlm"
    proc = run_cli("convert", str(d), "-o", str(out))
    _assert_one_line_failure(proc, expected, out)


def test_unsupported_architecture_lists_the_supported_ones(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    d = _copy(tiny_gemma3_dir, tmp_path / "model")
    _break_unsupported_arch(d)
    proc = run_cli("convert", str(d), "-o", str(tmp_path / "o.litertlm"))
    assert "gemma3_text, qwen2, qwen3, lfm2" in proc.stderr


def test_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "out.litertlm"
    proc = run_cli("convert", str(tmp_path / "nope"), "-o", str(out))
    _assert_one_line_failure(proc, "does not exist", out)
    assert proc.returncode == 2


def test_unknown_quant_is_a_usage_error(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.litertlm"
    proc = run_cli("convert", str(tiny_gemma3_dir), "--quant", "int3", "-o", str(out))
    assert proc.returncode == 2
    assert "Invalid value for '--quant': 'int3' is not one of" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_extension_must_match_format(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tflite"
    proc = run_cli("convert", str(tiny_gemma3_dir), "--format", "litertlm", "-o", str(out))
    _assert_one_line_failure(proc, "does not end in .litertlm", out)


def test_output_folder_missing(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "out.litertlm"
    proc = run_cli("convert", str(tiny_gemma3_dir), "-o", str(out))
    assert proc.returncode == 2
    assert "output folder" in proc.stderr and "does not exist" in proc.stderr
    assert not out.exists()


def test_output_not_writable(tiny_gemma3_dir: Path) -> None:
    # /proc refuses new files even to root, unlike a chmod'ed folder.
    out = Path("/proc/edgekit-test.litertlm")
    proc = run_cli("convert", str(tiny_gemma3_dir), "-o", str(out))
    assert proc.returncode == 2
    assert "output folder /proc" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_not_enough_memory_is_known_up_front(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit.convert import checks
    from edgekit.convert.checkpoint import load_checkpoint
    from edgekit.errors import InputError

    ckpt = load_checkpoint(tiny_gemma3_dir)
    monkeypatch.setattr(checks, "_mem_available_bytes", lambda: 1024)
    with pytest.raises(InputError, match=r"needs about .* of memory"):
        checks.check_resources(ckpt, tmp_path)


def test_disk_check_counts_the_split_checkpoint(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split table writes a fp32 copy of the checkpoint beside the export: the check asks for it."""
    import collections

    from edgekit.convert import checks
    from edgekit.convert.checkpoint import load_checkpoint
    from edgekit.errors import InputError

    ckpt = load_checkpoint(tiny_gemma3_dir)
    fp32_bytes = ckpt.parameter_count * 4
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda _p: usage(0, 0, fp32_bytes * 5 // 2))
    checks.check_resources(ckpt, tmp_path)  # export + quantized model fit
    with pytest.raises(InputError, match=r"converting needs about .* free in"):
        checks.check_resources(ckpt, tmp_path, split_table=True)


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o.litertlm"), env={"EDGEKIT_DEBUG": "1"})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--eval-text", "/no/such/prose.txt"), "evaluation text /no/such/prose.txt does not exist"),
        (("--eval-text", "SHORT"), "is too short: give at least"),
        (("--max-nll-gap", "-1"), "max NLL gap must be a number of nats/token >= 0, got -1.0"),
    ],
)
def test_bad_fidelity_options(args: tuple[str, ...], expected: str, tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a few words only")
    out = tmp_path / "out.litertlm"
    argv = [str(short) if a == "SHORT" else a for a in args]
    proc = run_cli("convert", str(tiny_gemma3_dir), "-o", str(out), *argv)
    _assert_one_line_failure(proc, expected, out)
    assert proc.returncode == 2


def test_a_broken_recipe_file_is_one_line_naming_it(
    tiny_gemma3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit import cli
    from edgekit.convert import recipes

    converters = tmp_path / "converters"
    converters.mkdir()
    shipped = (recipes.data_dir("converters") / "gemma3.toml").read_text()
    (converters / "gemma3.toml").write_text(shipped.replace('family = "gemma3"\n', ""))
    monkeypatch.setattr(recipes, "data_dir", lambda name: converters)
    out = tmp_path / "out.litertlm"
    code = cli.main(["convert", str(tiny_gemma3_dir), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"edgekit: error: recipe {converters / 'gemma3.toml'}: Object missing required field `family`"
    assert not out.exists()
