"""Quantization recipes on the real Gemma 3 270M: quality, size, speed. Reproduces docs/benchmarks.md.

Exports the model ONCE with litert-torch (fp32, lightweight, cache 1024, prefill 128, the
settings of `edgekit convert`), then for each candidate recipe, each in its own process:
ai-edge-quantizer applies the recipe's rules to that fp32 model and litert-lm-builder
bundles it with the export's own metadata and tokenizer (what export_hf does after its
export stage; litert_torch/generative/export_hf/core/litert_lm_builder.py, 0.10). For
each artifact:

  gap      engine NLL gap vs fp32 PyTorch, nats/token (edgekit.convert.nll), on the
           built-in "selection" text (recipes are chosen on it); the chosen default and
           int8 also on the disjoint "report" text
  top-1    next-token agreement with PyTorch on the fidelity probes (edgekit.convert.fidelity)
  size     of the .litertlm; quantize time and that process's peak RSS
  speed    litert_lm.Benchmark, 2 threads, 256 prefill / 256 decode tokens, all candidates
           one after another at the end of the run (same run, same machine state)

--qat measures a QAT-like copy instead (the model's 2-D weights snapped to the Q4_0 grid,
edgekit.testing.qat) against ITSELF, with and without the grid recovery the default applies.

    edgekit example gemma3-270m ./gemma3-270m
    .venv/bin/python benchmarks/quant_quality.py ./gemma3-270m [--qat] [--workdir DIR] [--json OUT]

Not part of CI: ~15 minutes and up to ~7 GB of memory on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, benchmarks/ is on sys.path: one LiteRT-LM speed probe for both benchmarks.
from convert_270m import decode_speed

PY = sys.executable
HERE = Path(__file__).resolve()


def _rule(operation: str, bits: int, granularity: str, regex: str = ".*", algorithm: str = "") -> dict[str, Any]:
    """An edgekit rule (edgekit.convert.recipes), with another ai-edge-quantizer algorithm if given."""
    from edgekit.convert.recipes import _rule as edgekit_rule

    rule = edgekit_rule(operation, bits, granularity, regex=regex)
    if algorithm:
        rule["algorithm_key"] = algorithm
    return rule


def candidates(qat: bool) -> dict[str, list[dict[str, Any]] | None]:
    """Name -> ai-edge-quantizer rules. Named ones are edgekit's --quant choices."""
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from edgekit.convert.recipes import LM_HEAD_SCOPE, Quant

    octav = AlgorithmName.OCTAV.value
    if qat:
        return {
            "int4 (grid recovered: the default on a QAT checkpoint)": Quant.INT4.rules(recover_grid=True),
            "int4 without grid recovery": Quant.INT4.rules(),
            "int4-b32 (grid recovered)": Quant.INT4_B32.rules(recover_grid=True),
            "int4-b32 (today's recipe)": Quant.INT4_B32.rules(),
            "int8": Quant.INT8.rules(),
        }
    table_octav = [
        _rule("FULLY_CONNECTED", 8, "CHANNELWISE"),
        _rule("FULLY_CONNECTED", 4, "BLOCKWISE_32", regex=LM_HEAD_SCOPE, algorithm=octav),
        _rule("EMBEDDING_LOOKUP", 4, "BLOCKWISE_32", algorithm=octav),
    ]
    # Table 8-bit, MLP gate/up 4-bit: the biggest INT8-table recipe under 260 MB. litert-torch
    # names the prefill graph's up_proj "gate_proj" (measured), so the rule must take both.
    table8_gate_up4 = [
        _rule("*", 8, "CHANNELWISE"),
        _rule("FULLY_CONNECTED", 4, "BLOCKWISE_32", regex="Linear_gate_proj|Linear_up_proj"),
    ]
    return {
        "fp32": None,
        "int8": Quant.INT8.rules(),
        "int4 (table INT4 b32, linear INT8)": Quant.INT4.rules(),
        "int4 with OCTAV on the table": table_octav,
        "table INT8, MLP gate/up INT4 b32": table8_gate_up4,
        "int4-b32 (today's recipe)": Quant.INT4_B32.rules(),
        "int4-b64": Quant.INT4_B64.rules(),
    }


def run_measured(argv: list[str], log: Path) -> dict[str, float]:
    """Run argv as a child; wall time and that child's own peak RSS (from wait4)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({log}): {shlex.join(argv)}\n" + log.read_text()[-3000:])
    return {"wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2)}


def export_fp32(model: Path, out: Path) -> None:
    """Child: litert-torch export as edgekit convert runs it, without quantization, temporaries kept."""
    import torch
    from litert_torch.generative.export_hf import export as export_hf

    torch.set_num_threads(2)
    export_hf.export(
        model=str(model),
        output_dir=str(out),
        prefill_lengths=[128],
        cache_length=1024,
        quantization_recipe="none",
        keep_temporary_files=True,
        bundle_litert_lm=True,
        experimental_lightweight_conversion=True,
    )


def quantize_and_bundle(export_dir: Path, rules_file: Path, out: Path) -> None:
    """Child: ai-edge-quantizer with the rules, then the bundle with the export's metadata and tokenizer."""
    import litert_lm_builder as lb
    from ai_edge_quantizer import quantizer

    tflite = out.with_suffix(".tflite")
    q = quantizer.Quantizer(str(export_dir / "model.tflite"))
    q.load_quantization_recipe(str(rules_file))
    q.quantize().export_model(str(tflite), overwrite=True)
    builder = lb.LitertLmFileBuilder()
    builder.add_system_metadata(lb.Metadata(key="Authors", value="ODML", dtype=lb.DType.STRING))
    builder.add_llm_metadata(str(export_dir / "llm_metadata.pb"))
    builder.add_executor_metadata(str(export_dir / "executor_metadata.pb"))
    builder.add_hf_tokenizer(str(export_dir / "tokenizer.json"))
    builder.add_tflite_model(str(tflite), lb.TfLiteModelType.PREFILL_DECODE)
    with open(out, "wb") as f:
        builder.build(f)
    tflite.unlink()


def quality(artifact: Path, tflite_dir: Path, model: Any, tokenizer: Any, report: bool) -> dict[str, Any]:
    from edgekit.convert import fidelity, nll
    from edgekit.convert.pipeline import bundled_tflite

    figures: dict[str, Any] = {}
    sel = nll.measure(artifact, model, text=nll.builtin_text(nll.Section.SELECTION), threads=2)
    figures["gap_selection"] = round(sel.gap_nats_per_token, 3)
    figures["gap_selection_stderr"] = round(sel.gap_stderr, 3)
    figures["tokens_selection"] = sel.tokens
    if report:
        rep = nll.measure(artifact, model, text=nll.builtin_text(nll.Section.REPORT), threads=2)
        figures["gap_report"] = round(rep.gap_nats_per_token, 3)
        figures["gap_report_stderr"] = round(rep.gap_stderr, 3)
    check = fidelity.check(
        tflite_path=bundled_tflite(artifact, tflite_dir),
        bundle_path=artifact,
        model=model,
        tokenizer=tokenizer,
        threads=2,
    )
    figures["top1"] = round(check.top1_agreement, 3)
    figures["max_logit_error"] = round(check.max_abs_logit_error, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", help="the real Gemma 3 270M: edgekit example gemma3-270m DIR")
    parser.add_argument("--qat", action="store_true", help="measure a QAT-like copy (Q4_0 grid) against itself")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--only", default=None, help="candidate names separated by ';' (default: all)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "export":
            export_fp32(Path(rest[0]), Path(rest[1]))
        else:
            quantize_and_bundle(Path(rest[0]), Path(rest[1]), Path(rest[2]))
        return
    if args.model is None:
        parser.error("give the model folder: edgekit example gemma3-270m DIR makes it")

    import torch

    from edgekit.convert.pipeline import load_reference

    torch.set_num_threads(2)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgekit-quant-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    source = args.model.resolve()
    if args.qat:
        from edgekit.testing.qat import write_qat_like

        source = write_qat_like(source, work / "qat-like")
    export_dir = work / "export"
    cmd = [PY, str(HERE), "--child"]
    if (export_dir / "model.tflite").is_file() and (work / "export.json").is_file():
        export_fig = json.loads((work / "export.json").read_text())  # same --workdir: export once
    else:
        print(f"exporting {source} once (fp32) …", flush=True)
        export_fig = run_measured([*cmd, "export", str(source), str(export_dir)], work / "export.log")
        (work / "export.json").write_text(json.dumps(export_fig))
    chosen = next(iter(candidates(args.qat))) if args.qat else "int4 (table INT4 b32, linear INT8)"
    model, tokenizer = load_reference(source)
    rows: dict[str, dict[str, Any]] = {}
    done_file = work / "rows.json"  # rows measured by an earlier run in this --workdir: resume
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    for i, (name, rules) in enumerate(candidates(args.qat).items()):
        if args.only and name not in args.only.split(";"):
            continue
        artifact = work / f"c{i}.litertlm"
        if name in done and artifact.is_file():
            rows[name] = {"rules": rules, **done[name]}
            continue
        row: dict[str, Any] = {"rules": rules}
        if rules is None:
            shutil.copyfile(export_dir / "model.litertlm", artifact)
        else:
            rules_file = work / f"c{i}.json"
            rules_file.write_text(json.dumps(rules))
            print(f"[{name}] quantize + bundle", flush=True)
            fig = run_measured([*cmd, "quantize", str(export_dir), str(rules_file), str(artifact)], work / f"c{i}.log")
            row["quantize_s"], row["quantize_peak_rss_gb"] = fig["wall_s"], fig["peak_rss_gb"]
        row["size_mb"] = round(artifact.stat().st_size / 1e6, 1)
        print(f"[{name}] quality", flush=True)
        report = name == chosen or name == "int8"
        row.update(quality(artifact, work / f"c{i}-unpacked", model, tokenizer, report))
        row["artifact"] = str(artifact)
        rows[name] = row
        print(f"[{name}] {json.dumps({k: v for k, v in row.items() if k != 'rules'})}", flush=True)
        done[name] = {k: v for k, v in row.items() if k != "rules"}
        done_file.write_text(json.dumps(done, indent=1))
    (work / "xnnpack").mkdir(exist_ok=True)
    for name, row in rows.items():
        print(f"[{name}] speed", flush=True)
        row.update(decode_speed(Path(row["artifact"]), work / "xnnpack"))
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "model": str(args.model),
        "qat_like": args.qat,
        "export": export_fig,
        "chosen_default": chosen,
        "candidates": rows,
        "command": shlex.join([Path(PY).name, "benchmarks/quant_quality.py", *sys.argv[1:]]),
    }
    print()
    ref = "the QAT-like checkpoint itself" if args.qat else "fp32 PyTorch"
    print(f"NLL gap vs {ref}, nats/token (selection text; report text where measured)")
    print("| recipe | size MB | gap sel. | gap report | top-1 | decode tok/s | prefill tok/s | quantize s / GB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        rep = f"{r['gap_report']:+.3f}" if "gap_report" in r else "—"
        qfig = f"{r['quantize_s']} / {r['quantize_peak_rss_gb']}" if "quantize_s" in r else "—"
        print(
            f"| {name} | {r['size_mb']} | {r['gap_selection']:+.3f} ±{r['gap_selection_stderr']} | {rep} | "
            f"{r['top1']:.0%} | {r['decode_tok_s']} | {r['prefill_tok_s']} | {qfig} |"
        )
    print(f"export once: {export_fig['wall_s']} s, peak RSS {export_fig['peak_rss_gb']} GB")
    print(f"reproduce: {result['command']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
