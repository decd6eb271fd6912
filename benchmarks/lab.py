"""A two-artifact campaign on a lab of emulated phones: in parallel, against the same runs one after another.

Four emulated phones (edgekit.testing) behind two real adb servers (the adb adbutils ships),
two phones on each. Artifacts A and B are the tiny example model converted twice (int4 and
int8), or the files given. Parallel: one `edgekit battery-bench --adb-server S1
--adb-server S2 --device all A B` (A, B on every phone, the phones at once). One after
another: one battery-bench per phone and artifact, each naming its phone as
HOST:PORT/SERIAL. Both without cool-down. Prints the wall time of each, their ratio, and
the host's own CPU per phone (edgekit and what it waited for, plus the adb servers; see
benchmarks/lab_host_cpu.py for what is counted), and the command that reproduces them.

    .venv/bin/python benchmarks/lab.py [--phones 4] [--conversations 2] [--turn-s 1.0] [A B]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lab_host_cpu import run  # run as a script: benchmarks/ is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="*", type=Path, help="[default: the tiny model as int4 and int8]")
    parser.add_argument("--phones", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--turn-s", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-lab-"))
    try:
        artifacts = list(args.artifacts)
        if not artifacts:
            from edgekit.convert import ConvertConfig, Quant, convert
            from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT, write_example_model

            model = write_example_model(work / "tiny")
            for quant in (Quant.INT4, Quant.INT8):
                config = ConvertConfig(
                    output=work / f"tiny-{quant.value}.litertlm",
                    quant=quant,
                    min_agreement=RANDOM_WEIGHTS_MIN_AGREEMENT,
                )
                artifacts.append(convert(model, config).artifact.path)
        together = run(args.phones, artifacts, work / "parallel", args.conversations, args.turn_s)
        apart = run(args.phones, artifacts, work / "sequential", args.conversations, args.turn_s, one_by_one=True)
        runs = args.phones * len(artifacts)
        print(
            f"{args.phones} phones on 2 adb servers, {len(artifacts)} artifacts ({runs} runs of "
            f"{args.conversations} conversations, {args.turn_s} s a turn on the phones):"
        )
        for name, f in (("parallel (--device all A B)", together), ("one after another", apart)):
            print(
                f"  {name}: wall {f['wall_s']} s; host CPU {f['host_cpu_s_per_phone']} s per phone "
                f"({f['host_core_share_per_phone']:.1%} of one core)  {json.dumps(f)}"
            )
        print(f"  wall time, parallel / one after another: {together['wall_s'] / apart['wall_s']:.2f}")
        print(f"reproduce: {shlex.join([sys.executable, *sys.argv])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
