"""Result assembly: what a run measured -> BenchResult, for a phone's run folder and the local run alike.

read_run(files)        a collected run folder -> Measured (turns from the driver's events and the
                       runner's own figures, read by its runtime; the time windows, what went wrong)
build_result(measured) Measured -> BenchResult (power analysis, validity flags, summary)
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import re
import secrets
from collections.abc import Sequence

from msgspec import UNSET, UnsetType

from edgekit import answers, runtimes
from edgekit.artifact import Artifact
from edgekit.bench import power as power_lib
from edgekit.bench.gauge import PowerSample
from edgekit.bench.result import (
    CONTEXT_EXCEEDED,
    DEGENERATE_OUTPUT,
    ArtifactRecord,
    BenchResult,
    ConversationRecord,
    PowerRecord,
    StartState,
    TurnRecord,
    WorkloadRecord,
    summarize,
)
from edgekit.bench.run_folder import Event, RunFiles, RunMeta
from edgekit.bench.validity import ValidityFlag
from edgekit.bench.workload import Workload
from edgekit.deploy import DeployResult
from edgekit.device.base import BatterySample, Device, DeviceFacts
from edgekit.probe import Protocol
from edgekit.runtimes.base import Runtime
from edgekit.smoke import signal_name

Window = tuple[float, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Measured:
    """What one run measured, wherever it ran; `build_result` turns it into a BenchResult.

    Times are seconds on the clock that took them (the device's for a phone run); `t0` is
    the run's start on that clock."""

    meta: RunMeta
    """What the host knew at the start (a phone run's meta.json)."""
    turns: list[TurnRecord]
    samples: list[PowerSample]
    t0: float
    baselines: list[Window]
    """The idle baselines: the one before the workload and (phone runs) the last one after it."""
    segments: list[Window]
    """The workload's time (several segments when a run was resumed)."""
    loads: list[Window] = dataclasses.field(default_factory=list)
    """One-shot runners: each turn's model load, kept out of the conversations' energy."""
    flags: list[ValidityFlag] = dataclasses.field(default_factory=list)
    """What the run itself found wrong (runner failures, missing turns), after the power analysis's flags."""
    conversations_finished: int
    complete: bool


def device_meta(device: Device, redact: bool) -> DeviceFacts:
    """The device's facts as a result records them (`redact`: its serial replaced)."""
    facts = device.facts()
    return dataclasses.replace(facts, serial=_redact(facts.serial)) if redact else facts


def _redact(serial: str) -> str:
    return "redacted-" + secrets.token_hex(3) if serial else serial


def artifact_meta(artifact: Artifact, deployed: DeployResult) -> ArtifactRecord:
    """The artifact as a result records it: name, sha256, provenance, manifest."""
    return ArtifactRecord(
        name=artifact.path.name,
        sha256=deployed.model.sha256,
        provenance=deployed.provenance,
        manifest=artifact.manifest,
    )


def start_meta(battery: BatterySample) -> StartState:
    """The run's StartState: now (UTC, microseconds), `battery`'s level and temperature."""
    return StartState(
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        battery_level_pct=battery.level_pct,
        temperature_c=battery.temperature_c,
    )


def workload_meta(workload: Workload) -> WorkloadRecord:
    """The workload as a result records it: name, version, hash and turn counts, no text."""
    return WorkloadRecord(
        name=workload.name,
        version=workload.version,
        sha256=workload.sha256,
        max_output_tokens=workload.max_output_tokens,
        conversations=tuple(ConversationRecord(id=c.id, turns=len(c.turns)) for c in workload.conversations),
    )


def read_run(files: RunFiles) -> Measured:
    """What a collected run folder measured: turns, windows, and what went wrong on the phone."""
    meta = files.meta
    # Only ids and turn counts are needed to read the run back; the text stays in the run folder.
    conversations = meta.workload.conversations
    t0 = files.events[0].t_s if files.events else 0.0
    runner = meta.runner
    protocol = Protocol.MULTI_TURN if isinstance(runner.protocol, UnsetType) else runner.protocol
    streams = not isinstance(runner.probe, UnsetType) and runner.probe.streams_answers
    runtime = runtimes.for_protocol(protocol)
    turns = turn_records(files, conversations, t0, protocol=protocol, streams=streams)
    baselines, segments = _windows(files.events)
    flags = _between_parts(files, segments, t0)
    flags += _unplug_flags(files)
    timeout = meta.settings.turn_timeout_s
    flags += runner_failures(files, conversations, None if isinstance(timeout, UnsetType) else timeout)
    flags += degenerate_flags(turns)
    flags += refused_turn_flags(files, conversations, runtime)
    unmeasured = [t for t in turns if t.decode_tokens_per_s is None or t.prefill_tokens_per_s is None]
    if unmeasured:
        flags.append(
            ValidityFlag(
                code="runner_figures_missing",
                message=f"{len(unmeasured)} of {len(turns)} turns have no prefill/decode figures from the runner "
                "(no BenchmarkInfo, or fewer turns in it)",
                voids=False,
            )
        )
    failed = sorted(set(f"{n:04d}" for n in range(1, len(conversations) + 1)) - files.done)
    if failed:
        flags.append(
            ValidityFlag(
                code="incomplete",
                message=f"{len(failed)} of {len(conversations)} conversations did not finish"
                + (
                    " (the driver stopped at the first conversation, which failed: the rest would too)"
                    if any(e.name == "first_failed" for e in files.events)
                    else ""
                    if any(f.code == "runner_failed" for f in flags)
                    else " (collect again after --resume)"
                ),
                voids=True,
            )
        )
    return Measured(
        meta=meta,
        turns=turns,
        samples=files.samples,
        t0=t0,
        baselines=baselines,
        segments=segments,
        loads=load_windows(files) if protocol == Protocol.ONE_SHOT else [],
        flags=flags,
        conversations_finished=len(files.done),
        complete=not failed,
    )


def _unplug_flags(files: RunFiles) -> list[ValidityFlag]:
    """--detach: the driver's wait for the unplug timed out, or could not tell."""
    flags: list[ValidityFlag] = []
    names = {e.name for e in files.events}
    if "unplug_timeout" in names:
        flags.append(
            ValidityFlag(
                code="not_unplugged",
                message="the cable was not unplugged within the wait: the run went on with the phone powered",
                voids=False,
                window=None,
                t_s=None,
            )
        )
    if "unplug_unknown" in names:
        flags.append(
            ValidityFlag(
                code="supply_unknown",
                message="the phone reports no power-supply state, so the driver could not wait for the unplug",
                voids=False,
                window=None,
                t_s=None,
            )
        )
    return flags


def build_result(run: Measured) -> BenchResult:
    """Compute a BenchResult from what a run measured: the power analysis over its windows,
    every validity flag, the summary."""
    meta = run.meta
    settings = meta.settings
    report = power_lib.analyse_segments(
        run.samples,
        baselines=run.baselines,
        segments=_subtract(run.segments, run.loads),
        sample_period_s=settings.sample_period_s,
        low_battery_pct=20 if isinstance(settings.low_battery_pct, UnsetType) else settings.low_battery_pct,
        t0=run.t0,
    )
    load_report = (
        power_lib.analyse_segments(
            run.samples, baselines=run.baselines, segments=run.loads, sample_period_s=settings.sample_period_s
        )
        if run.loads
        else None
    )
    flags = [*report.flags, *run.flags]
    capacity = settings.capacity_mah
    if capacity is None:
        flags.append(
            ValidityFlag(
                code="capacity_missing",
                message="the phone reports no design capacity (charge_full_design): "
                "pass --capacity-mah for the % figure",
                voids=False,
            )
        )
    voided = any(f.voids for f in flags)
    summary = summarize(
        run.turns,
        None if voided else report,
        conversations=run.conversations_finished,
        duration_s=sum(b - a for a, b in run.segments),
        capacity_mah=capacity,
        full_capacity_mah=None if isinstance(full := settings.full_charge_capacity_mah, UnsetType) else full,
    )
    if any(f.code == DEGENERATE_OUTPUT for f in flags):  # a speed figure for garbage is not a figure
        summary = dataclasses.replace(summary, decode_tokens_per_s=None, prefill_tokens_per_s=None, ttft_s_median=None)
    t0 = run.t0
    load: dict[str, float | None] = {}
    if meta.runner.protocol == Protocol.ONE_SHOT:
        load["load_charge_mah"] = None if load_report is None or voided else load_report.workload_charge_mah
        load["load_energy_mwh"] = None if load_report is None or voided else load_report.workload_energy_mwh
    return BenchResult(
        simulated=meta.device.emulated,
        created=meta.created,
        run_id=meta.run_id,
        device=meta.device,
        artifact=meta.artifact,
        workload=meta.workload,
        runner=meta.runner,
        settings=settings,
        turns=run.turns,
        samples=list(run.samples),
        baseline_window_s=None if not run.baselines else (run.baselines[0][0] - t0, run.baselines[0][1] - t0),
        workload_window_s=(run.segments[0][0] - t0, run.segments[-1][1] - t0) if run.segments else None,
        power=PowerRecord.from_report(report, t0, run.baselines, **load),
        validity=flags,
        summary=summary,
        complete=run.complete,
        start=meta.start,
    )


_GARBAGE_CASES = ", ".join(r.garbage_case for r in runtimes.RUNTIMES if r.garbage_case)
"""The runtimes' known cases of a backend answering garbage fast, as the degenerate_output flag cites them."""


def degenerate_flags(turns: list[TurnRecord]) -> list[ValidityFlag]:
    """The `degenerate_output` flag (voids, fails the run) when most answered turns are degenerate
    (edgekit.answers; the runtimes' known cases, Runtime.garbage_case, are cited)."""
    read = [t for t in turns if not isinstance(t.degenerate, UnsetType)]
    bad = [t.degenerate for t in read if isinstance(t.degenerate, answers.Degenerate)]
    if not answers.mostly_degenerate(len(bad), len(read)):
        return []
    return [
        ValidityFlag(
            code=DEGENERATE_OUTPUT,
            message=f"{len(bad)} of {len(read)} answers are degenerate ({answers.describe(bad)}): the model or "
            f"backend computes garbage (cf. {_GARBAGE_CASES}), so its speed is no figure; check the "
            "artifact with `edgekit deploy` (its smoke run compares with this computer's CPU engine) or try "
            "another --backend",
            voids=True,
        )
    ]


def turn_answer(files: RunFiles, key: str, turn: int, protocol: Protocol) -> str | None:
    """Turn `turn`'s answer text as the runner printed it, None where it cannot be read
    (read by the protocol's runtime: Runtime.turn_answer)."""
    return runtimes.for_protocol(protocol).turn_answer(protocol, files.outputs, key, turn)


def turn_records(
    files: RunFiles,
    conversations: Sequence[ConversationRecord],
    t0: float,
    *,
    protocol: Protocol = Protocol.MULTI_TURN,
    streams: bool = False,
) -> list[TurnRecord]:
    """Per-turn records: timing from the driver's events (device clock), tokens and speeds
    from the runner's own figures, read by the protocol's runtime (Runtime.turn_figures).
    Time to first token: the device clock's first answer byte when a runner that keeps one
    process a conversation streams its answers; else the runner's prefill + one decode step.
    One-shot: `load_s` is process start -> first stdout byte (the runner prints its first
    byte once the model is loaded), kept apart from the turn's own figures.
    """
    runtime = runtimes.for_protocol(protocol)
    times: dict[tuple[str, int], dict[str, float]] = {}
    for e in files.events:
        if e.name in ("turn_send", "turn_first", "turn_end") and e.turn > 0:
            times.setdefault((e.conversation, e.turn), {})[e.name] = e.t_s
    records = []
    for n, conv in enumerate(conversations, 1):
        key = f"{n:04d}"
        figures = runtime.turn_figures(protocol, files.outputs, files.errors, key, conv.turns)
        for k in range(1, conv.turns + 1):
            tt = times.get((key, k), {})
            if not tt:
                continue
            send, first, end = tt.get("turn_send"), tt.get("turn_first"), tt.get("turn_end")
            prefill, decode = figures[k - 1].prefill, figures[k - 1].decode
            load_s = None
            if not protocol.per_conversation:
                load_s = (first - send) if send is not None and first is not None else None
            if protocol.per_conversation and streams:
                ttft = (first - send) if send is not None and first is not None else None
            else:
                ttft = figures[k - 1].runner_ttft_s
            records.append(
                TurnRecord(
                    conversation=conv.id,
                    conversation_index=n,
                    turn_index=k,
                    prompt_tokens=prefill.tokens if prefill else None,
                    output_tokens=decode.tokens if decode else None,
                    ttft_s=ttft,
                    prefill_tokens_per_s=prefill.tokens_per_s if prefill else None,
                    decode_tokens_per_s=decode.tokens_per_s if decode else None,
                    wall_s=(end - send) if send is not None and end is not None else None,
                    t_start_s=None if send is None else send - t0,
                    t_end_s=None if end is None else end - t0,
                    load_s=load_s,
                    degenerate=(
                        UNSET
                        if end is None or (answer := turn_answer(files, key, k, protocol)) is None
                        else answers.classify_answer(answer)
                    ),
                )
            )
    return records


def load_windows(files: RunFiles) -> list[tuple[float, float]]:
    """One-shot runs: each turn's model load, process start -> first stdout byte (device clock)."""
    starts: dict[tuple[str, int], float] = {}
    out = []
    for e in files.events:
        if e.name == "turn_send":
            starts[(e.conversation, e.turn)] = e.t_s
        elif e.name == "turn_first" and (e.conversation, e.turn) in starts:
            out.append((starts.pop((e.conversation, e.turn)), e.t_s))
    return out


def _windows(
    events: list[Event],
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(idle baselines: the one before the workload and the last one after it; workload segments)."""

    def pair(start: str, end: str, last: bool = False) -> tuple[float, float] | None:
        starts = [e.t_s for e in events if e.name == start]
        ends = [e.t_s for e in events if e.name == end]
        if not starts or not ends:
            return None
        a = starts[-1] if last else starts[0]
        b = next((t for t in ends if t >= a), None)
        return None if b is None else (a, b)

    baselines = [b for b in (pair("baseline_start", "baseline_end"), pair(*_AFTER, last=True)) if b is not None]
    segments: list[tuple[float, float]] = []
    start = last = None
    for e in events:
        t, name = e.t_s, e.name
        if name == "workload_start":
            if start is not None and last is not None and last > start:
                segments.append((start, last))
            start, last = t, t
        elif start is not None and name not in _NOT_WORKLOAD:
            last = t
            if name == "workload_end":
                if t > start:
                    segments.append((start, t))
                start = None
    if start is not None and last is not None and last > start:
        segments.append((start, last))
    return baselines, segments


_AFTER = ("baseline_after_start", "baseline_after_end")
# Events that never extend a workload segment (a resumed driver's start, the unplug wait, baselines).
_NOT_WORKLOAD = {
    *_AFTER,
    "driver_start",
    "unplug_wait",
    "unplugged",
    "unplug_timeout",
    "unplug_unknown",
    "settled",
    "baseline_start",
    "baseline_end",
}


def _between_parts(files: RunFiles, segments: list[tuple[float, float]], t0: float) -> list[ValidityFlag]:
    """What happened between the parts of a resumed run (reboot, recharge), in words."""
    flags: list[ValidityFlag] = []
    boots = [e.conversation for e in files.events if e.name == "driver_start" and e.conversation != "unknown"]
    if len(set(boots)) > 1:
        flags.append(
            ValidityFlag(
                code="rebooted",
                message="the phone rebooted between the parts of this run (--resume): the battery figure "
                "cannot join parts measured on different boots; run it again without interruption",
                voids=True,
                window="workload",
                t_s=None,
            )
        )
    for (_, a_end), (b_start, _) in itertools.pairwise(segments):
        before = [s for s in files.samples if s.t_s <= a_end and s.level_pct is not None]
        after = [s for s in files.samples if s.t_s >= b_start and s.level_pct is not None]
        if before and after and after[0].level_pct > before[-1].level_pct:  # type: ignore[operator]
            flags.append(
                ValidityFlag(
                    code="recharged_between_parts",
                    message=f"the battery was recharged between the parts of this run (--resume): "
                    f"{before[-1].level_pct}% when it stopped, {after[0].level_pct}% when it went on. "
                    "Each part was measured on battery; the figure adds them",
                    voids=False,
                    window="workload",
                    t_s=b_start - t0,
                )
            )
    return flags


def _subtract(segments: list[tuple[float, float]], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """`segments` minus the time in `holes` (one-shot model loads), as a list of segments."""
    out = []
    for a, b in segments:
        cursor = a
        for h0, h1 in sorted(holes):
            if h1 <= cursor or h0 >= b:
                continue
            if h0 > cursor:
                out.append((cursor, h0))
            cursor = max(cursor, h1)
        if cursor < b:
            out.append((cursor, b))
    return out


def refused_turn_flags(
    files: RunFiles, conversations: Sequence[ConversationRecord], runtime: Runtime | None = None
) -> list[ValidityFlag]:
    """A `context_exceeded` flag (voids) when the runner refused turns (Runtime.refused_turns
    of `runtime`; None: of every runtime).

    llama-cli's server refuses a turn whose conversation no longer fits `-c`, prints the error
    where the answer goes (edgekit.runtimes.llama_cpp.refusal), keeps the refused message in
    the conversation and so refuses every later turn of it too; the runner still exits 0. The
    run then measured less than the workload."""
    refused: list[tuple[str, int, str]] = []
    for n, conv in enumerate(conversations, 1):
        key = f"{n:04d}"
        for each in (runtime,) if runtime is not None else runtimes.RUNTIMES:
            for k, why in each.refused_turns(files.outputs, key, conv.turns):
                refused.append((f"conversation {key} ({conv.id}) turn {k}", n, why))
    if not refused:
        return []
    where, _, why = refused[0]
    turns, convs = len(refused), len({n for _, n, _ in refused})
    return [
        ValidityFlag(
            code=CONTEXT_EXCEEDED,
            message=f"llama-cli refused {turns} turn{'s' * (turns != 1)} in {convs} conversation{'s' * (convs != 1)} "
            f"for want of context (first {where}: {why}): give it a larger context with --max-num-tokens "
            "(llama-cli's -c), or a workload whose conversations fit",
            voids=True,
        )
    ]


def runner_failures(
    files: RunFiles, conversations: Sequence[ConversationRecord], turn_timeout_s: int | None
) -> list[ValidityFlag]:
    """A `runner_failed` flag (voids) per conversation whose runner crashed, was killed,
    timed out, or exited 0 without answering every turn."""
    flags: list[ValidityFlag] = []
    for n, conv in enumerate(conversations, 1):
        key = f"{n:04d}"
        mine = [e for e in files.events if e.conversation == key]
        ends = [e for e in mine if e.name == "conv_end"]
        if key in files.done or not ends:
            continue  # finished, or never started (a cut-off run: --resume)
        rc = ends[-1].turn  # conv_end's turn field is the runner's exit code
        answered = len({e.turn for e in mine if e.name == "turn_end" and e.turn > 0})
        timeout = [e for e in mine if e.name == "turn_timeout"]
        err = files.errors.get(key) or next(
            (files.errors[k] for k in sorted(files.errors, reverse=True) if k.startswith(key + ".")), ""
        )
        tail = " ".join(line.strip() for line in err.strip().splitlines()[-2:] if line.strip())
        crash = files.crash_logs.get(key, "")
        tomb = re.search(r"Tombstone written to: (\S+)", crash)
        if timeout:
            why = f"turn {timeout[-1].turn or 1} took longer than the per-turn timeout ({turn_timeout_s} s): killed"
        elif rc == 0:
            why = f"the runner exited 0 but answered {answered} of {conv.turns} turns"
        else:
            why = f"the runner exited {rc}{signal_name(rc)}"
        detail = f"{why}; stderr: {tail}" if tail else why
        if tomb:
            detail += f"; tombstone: {tomb.group(1)}"
        flags.append(
            ValidityFlag(
                code="runner_failed",
                message=f"conversation {key} ({conv.id}): {detail}",
                voids=True,
            )
        )
    return flags
