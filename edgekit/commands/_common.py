"""What the commands share: the --device/--adb-server/--transport options and the renderers
of results that more than one command prints (the consoles: `commands.output.Output`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from msgspec import UnsetType
from rich import filesize

from edgekit.convert.recipes import Quant
from edgekit.device import AdbServer, Transport

if TYPE_CHECKING:
    from edgekit.artifact import NllGap
    from edgekit.bench.result import BenchResult
    from edgekit.bench.validity import ValidityFlag
    from edgekit.commands.output import Output
    from edgekit.convert.pipeline import ConvertResult

F = TypeVar("F", bound=Callable[..., Any])


def device_option(*, several: str) -> Callable[[F], F]:
    """`--device`, repeatable; `several` says what happens with more than one device."""
    return click.option(
        "--device",
        "devices",
        multiple=True,
        metavar="SERIAL",
        help="adb serial (looked up on every --adb-server), HOST:PORT/SERIAL (that serial on the adb server "
        "at HOST:PORT), HOST:PORT (network adbd or a device farm's remote adb), 'all' (every device ready on "
        f"every adb server), or 'local' (this computer). Repeat for several; {several}.  "
        "[default: the one attached phone]",
    )


def _parse_servers(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[AdbServer, ...]:
    return tuple(dict.fromkeys(AdbServer.parse(v) for v in values))


adb_server_option = click.option(
    "--adb-server",
    "adb_servers",
    multiple=True,
    metavar="HOST:PORT",
    callback=_parse_servers,
    help="An adb server to find devices on (another host's, a device farm's); repeat for several. "
    "[default: adb's own: $ADB_SERVER_SOCKET (tcp:HOST:PORT), else $ANDROID_ADB_SERVER_ADDRESS and "
    "$ANDROID_ADB_SERVER_PORT, else localhost:5037]",
)
"""`--adb-server HOST:PORT`, repeatable: a tuple of AdbServer (empty: adb's default server)."""


transport_option = click.option(
    "--transport",
    type=click.Choice([t.value for t in Transport]),
    default=Transport.ADB.value,
    show_default=True,
    help="adb: through the adb server (USB, adb tcpip, wireless debugging). direct: straight to the "
    "phone's adbd over TCP, no server (--device HOST:PORT).",
)
"""`--transport adb|direct`."""


def remember_runner_of(given: Path | None, runtimes: set[str]) -> None:
    """After a deploy that ran the runner resolved from `given` (--runner, else
    $EDGEKIT_RUNNER, else the cache) for each of `runtimes`: that runner is the one a later
    command without --runner finds. The CLI's choice: the library never writes the cache."""
    from edgekit.runners import remember_runner, resolve_runner

    for runtime in sorted(runtimes):
        if (runner := resolve_runner(given, runtime)) is not None:
            remember_runner(runner, runtime)


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB' (rich.filesize.decimal: decimal units, as file managers show)."""
    return filesize.decimal(n)


# Renderers shared by several commands.


def render_conversion(result: ConvertResult, output: Output) -> None:
    """Human summary of a ConvertResult on stdout, its notes on stderr."""
    manifest = result.artifact.manifest
    assert manifest is not None  # convert() always writes one
    s = manifest.settings
    out = output
    verb = "up to date (cached, same input and settings)" if result.cached else "wrote"
    out.print(f"{verb} {result.artifact.path} ({human_bytes(manifest.size_bytes)}, sha256 {manifest.sha256[:12]}…)")
    recipe = s.quant_recipe.value if s.quant_recipe is not None else None
    out.print(
        f"  quant {s.quant.value} ({recipe or 'no quantization'}, {s.quant.source})"
        f" · cache {s.cache_length.value} ({s.cache_length.source})"
        f" · prefill {','.join(map(str, s.prefill_lengths.value))} ({s.prefill_lengths.source})"
    )
    quantization = manifest.quantization
    if quantization and quantization.rules:
        recovered = "; the checkpoint's Q4_0 grid recovered" if quantization.grid_recovered else ""
        out.print(f"  weights: {quantization.description}{recovered}")
    fid = manifest.fidelity
    if fid:
        engine = (
            f", engine generated {fid.engine_generated_tokens} tokens"
            if fid.engine_generated_tokens is not None
            else ""
        )
        floor_source = s.min_agreement.source if s.min_agreement is not None else None
        out.print(
            f"  fidelity vs PyTorch: top-1 agreement {fid.top1_agreement:.1%}"
            f" (floor {fid.min_top1_agreement:.0%}{' for random weights' if floor_source == 'random-weights' else ''})"
            f", logit error max {fid.max_abs_logit_error:.3g} mean {fid.mean_abs_logit_error:.3g}"
            f", greedy {round(fid.greedy_agreement * fid.greedy_steps)}/{fid.greedy_steps} steps{engine}"
        )
        if fid.nll:
            words = quantization.description if quantization else quant_words(s.quant.value)
            out.print("  " + nll_line(fid.nll, words))
    conv = manifest.conversion
    out.print(
        f"  converted in {conv.wall_time_s:.1f} s, peak RSS {conv.peak_rss_mb:.0f} MB;"
        f" manifest {result.artifact.path}.json"
    )
    for note in result.notes:
        output.note(note)


def quant_words(quant: str) -> str:
    """The recipe named by `quant` in plain words ("INT8 weights per channel"), or the name itself."""
    try:
        return Quant(quant).description
    except ValueError:
        return quant


def nll_line(gap: NllGap, recipe_words: str) -> str:
    """One line: the NLL gap of an artifact, e.g. "INT8 weights per channel: +0.061 nats/token vs fp32 …"."""
    ceiling = gap.max_nll_gap
    judged = f", floor {ceiling:.2f}" if ceiling is not None else ", not judged"
    return (
        f"{recipe_words}: {gap.gap_nats_per_token:+.3f} nats/token vs fp32 PyTorch on {gap.tokens} tokens "
        f"of {gap.text.name} (±{gap.gap_stderr:.3f}, perplexity x{gap.perplexity_ratio:.3f}{judged})"
    )


def bpb_line(gap: NllGap) -> str:
    """One line: bits per byte of both sides, tokens per byte, byte-fallback share (or why they are absent)."""
    if gap.artifact_bits_per_byte is None or gap.reference_bits_per_byte is None or not gap.bytes:
        return "  bits per byte: not measured (scored before edgekit measured it)"

    def share(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    how = "the same tokens" if gap.same_tokenizer else "each its own tokenization (trimmed vocabulary)"
    return (
        f"  bits per byte: artifact {gap.artifact_bits_per_byte:.4f}, PyTorch fp32 {gap.reference_bits_per_byte:.4f} "
        f"({gap.artifact_bits_per_byte - gap.reference_bits_per_byte:+.4f}) over {gap.bytes} bytes, {how}; "
        f"tokens per byte {gap.artifact_tokens_per_byte:.3f} vs {gap.reference_tokens_per_byte:.3f}; "
        f"byte fallback {share(gap.artifact_byte_fallback_share)} vs {share(gap.reference_byte_fallback_share)}"
    )


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def _where(flag: ValidityFlag) -> str:
    window, t = flag.window, flag.t_s
    if window and t is not None:
        return f" ({window}, {t:.1f} s)"
    return f" ({window})" if window else ""


def render_summary(result: BenchResult, path: Path | None) -> list[str]:
    """The human summary of a BenchResult (every figure labelled simulated when it is)."""

    s = result.summary
    sim = " (simulated)" if result.simulated else ""
    w = result.workload
    turns = sum(c.turns for c in w.conversations)
    lines = [
        f"battery-bench {result.run_id}: {w.name} v{w.version} ({len(w.conversations)} conversations, "
        f"{turns} turns) on {result.device.model or result.device.serial}{sim}"
        + ("" if result.complete else " — FAILED (incomplete)")
        + (" — FAILED (degenerate answers: no speed figure)" if result.degenerate else "")
        + (" — FAILED (turns refused: the context is too small)" if result.refused_turns else ""),
    ]
    if result.simulated:
        lines.append(
            f"  SIMULATED: {result.device.emulator or 'an emulated device'} has no real battery; "
            "every figure below is simulated"
        )
    lines.append(
        f"  decode {_fmt(s.decode_tokens_per_s, '.1f')} tok/s · prefill {_fmt(s.prefill_tokens_per_s, '.1f')} "
        f"tok/s · time to first token median {_fmt(s.ttft_s_median, '.3f', ' s')} · {s.output_tokens} output "
        f"tokens in {_fmt(s.duration_s, '.1f', ' s')}{sim}"
    )
    runner = result.runner
    if runner.protocol:
        runtime = runner.runtime_text()
        lines.append(
            f"  runner: {runtime + '; ' if runtime else ''}{runner.protocol.replace('_', '-')} protocol; "
            f"time to first token from the {runner.ttft_source or None}"
        )
        if not isinstance(runner.probe, UnsetType) and runner.probe.build_options:
            lines.append(f"  runtime build: {runner.probe.build_options}")
        for note in runner.conditions or ():
            lines.append(f"  runner condition: {note}")
    lines += _battery_lines(result, sim)
    for flag in result.validity:
        lines.append(f"  {'VOID' if flag.voids else 'flag'} [{flag.code}]{_where(flag)}: {flag.message}")
    if path is not None:
        lines.append(f"  result: {path}")
    return lines


def _battery_lines(result: BenchResult, sim: str) -> list[str]:
    """The battery headline (or why there is none), energy and the idle baseline subtracted."""
    from edgekit.bench.result import figure

    lines: list[str] = []
    pct = figure(result, "battery_pct_per_25_conversations")
    charge = figure(result, "workload_charge_mah")
    if charge.value is None:
        voids = [f for f in result.validity if f.voids]
        if result.exit_code() == 0:  # a device with no battery counters: a speed-only run
            why = "; ".join(f.message for f in voids) or "no battery counters"
            lines.append(f"  battery: not measured — {why}")
        else:
            why = "; ".join(f"[{f.code}]{_where(f)} {f.message}" for f in voids) or "no valid battery figure"
            lines.append(f"  battery: VOID — {why}")
    else:
        interval = "" if pct.low is None or pct.high is None else f" (95% interval {pct.low:.3f}–{pct.high:.3f}%)"
        headline = (
            f"  battery: {_fmt(pct.value, '.3f', '%')} of design capacity per 25 conversations{interval}{sim} "
            f"[{pct.basis}]"
        )
        lines.append(headline)
        full = figure(result, "battery_pct_of_full_charge_per_25_conversations")
        energy = figure(result, "workload_energy_mwh")
        mj = figure(result, "mj_per_output_token")
        lines.append(
            f"  {_fmt(full.value, '.3f', '%')} of today's full charge (charge_full) · {charge.value:.2f} mAh · "
            f"{_fmt(energy.value, '.2f', ' mWh')} · {_fmt(mj.value, '.1f')} mJ/output token{sim}"
        )
        p = result.power
        if p.baseline_current_ma is not None:
            after = p.baseline_after_current_ma
            drift = "" if after is None else f", {after:.1f} mA after (drift {p.baseline_drift_ma or 0.0:+.1f} mA)"
            lines.append(
                f"  idle baseline subtracted: {p.baseline_current_ma:.1f} mA before{drift} · "
                f"{p.baseline_power_mw or 0.0:.0f} mW{sim}"
            )
        if p.conventions:
            lines.append(f"  current_now: {p.conventions.basis}")
    return lines


def render_aggregate(result: BenchResult) -> list[str]:
    """With --repeat: the mean, sd and 95% interval of the headline figures over the valid runs."""
    lines = []
    for key in ("battery_pct_per_25_conversations", "decode_tokens_per_s", "ttft_s_median"):
        a = (result.aggregate or {}).get(key)
        if a is None:
            continue
        if a.mean is None:
            lines.append(f"  {key}: no valid run of {a.runs}")
        elif a.ci95_low is None or a.ci95_high is None or a.stddev is None:
            lines.append(f"  {key}: {a.mean:.4g} from 1 valid run of {a.runs}: no interval")
        else:
            lines.append(
                f"  {key} over {a.n} valid of {a.runs} runs: mean {a.mean:.4g}, "
                f"sd {a.stddev:.2g} (95% interval {a.ci95_low:.4g} – {a.ci95_high:.4g})"
            )
    return lines
