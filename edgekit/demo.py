"""The whole pipeline on this computer, with the real Gemma 3 270M when installed.

    run_demo(config, observer)   DemoResult: what was converted, the continuations, the run

example → convert (default recipe, fidelity check) → one continuation from the artifact's
engine on this computer (edgekit.engine) beside PyTorch's → deploy over the ADB protocol to an emulated phone
(`edgekit.testing`'s device emulator, battery simulated) → battery-bench chat-25 there →
result JSON and HTML report in the work folder. `edgekit demo` is this module plus rendering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit import runtimes
from edgekit._capture import captured_output, new_log_path, torch_threads
from edgekit._typed import to_data
from edgekit.errors import DependencyError, InputError

if TYPE_CHECKING:
    from edgekit.bench.result import BenchResult
    from edgekit.convert import ConvertResult
    from edgekit.convert.export import StageFn

DEMO_PROMPT = "The capital of France is"
DEMO_MAX_TOKENS = 24
DEMO_BASELINE_S = 15.0
"""Each idle window (before and after the workload) on the emulated phone: its battery is simulated."""


class DemoModel(str, enum.Enum):
    """Which model the demo converts."""

    AUTO = "auto"
    """gemma3-270m when its packages (edgekit[gemma3-270m]) are installed, else tiny."""
    GEMMA3_270M = "gemma3-270m"
    """The trained Gemma 3 270M base model: it continues text, it does not chat."""
    TINY = "tiny"
    """The tiny random-weights Gemma 3: its continuations are gibberish."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """What the demo runs: its work folder (reused next time), the model, the prompt, CPU threads."""

    workdir: Path = Path("edgekit-demo")
    model: DemoModel = DemoModel.AUTO
    prompt: str = DEMO_PROMPT
    threads: int | None = None
    """CPU threads for conversion and the engine; None: all (ConvertConfig judges the value)."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, DemoModel):
            allowed = ", ".join(m.value for m in DemoModel)
            raise InputError(f"demo model {self.model!r} is not one of {allowed}")


def _nothing(_text: str) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoObserver:
    """What the demo says while it runs (all optional): `status(text)` wraps a step,
    `note(text)` a fallback it took, `model(real)` once the model is chosen, `stage` the
    conversion's stages (convert's `progress`)."""

    status: Callable[[str], contextlib.AbstractContextManager[object]] = _nothing
    note: Callable[[str], None] = lambda _text: None
    model: Callable[[bool], None] = lambda _real: None
    stage: StageFn | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoResult:
    """What the demo converted, how the artifact and PyTorch continued the prompt, and the
    emulated phone's run with the files written for it."""

    real: bool
    """The trained Gemma 3 270M (else the tiny random-weights model)."""
    converted: ConvertResult
    prompt: str
    engine_text: str
    """The artifact's greedy continuation of the prompt by this computer's engine (INT4, no chat template)."""
    torch_text: str
    """PyTorch's (fp32 reference), the same way."""
    bench: BenchResult
    result_path: Path
    report_path: Path

    @property
    def model_name(self) -> str:
        """gemma3-270m or tiny-gemma3."""
        return _model_name(self.real)

    def exit_code(self) -> int:
        """The battery-bench run's: 0, 6 (battery void) or 7 (failed)."""
        return self.bench.exit_code()

    def to_dict(self) -> dict[str, Any]:
        """The artifact, the continuations and the run, as `edgekit demo --json` prints them."""
        manifest = self.converted.artifact.manifest
        assert manifest is not None  # convert() always writes one
        return {
            "model": self.model_name,
            "base_model": self.real,
            "random_weights": not self.real,
            "artifact": str(self.converted.artifact.path),
            "manifest": str(self.converted.artifact.path) + ".json",
            "size_bytes": manifest.size_bytes,
            "fidelity": None if manifest.fidelity is None else manifest.fidelity.to_dict(),
            "prompt": self.prompt,
            "continuation": {runtimes.DEFAULT.key: self.engine_text, "pytorch": self.torch_text},
            "battery_bench": {
                "result": str(self.result_path),
                "report": str(self.report_path),
                "simulated": self.bench.simulated,
                "exit_code": self.bench.exit_code(),
                "summary": to_data(self.bench.summary),
            },
        }


def run_demo(config: DemoConfig, observer: DemoObserver = DemoObserver()) -> DemoResult:
    """Run the whole pipeline in `config.workdir`: the example model, its conversion, the two
    continuations, chat-25 on a fresh emulated phone, its result JSON and HTML report there.

    The tools' own output goes to a log (edgekit's cache). Needs edgekit[convert]. A void or
    failed run is returned, not raised: see `DemoResult.exit_code`."""
    from edgekit.convert.pipeline import require_convert_extra
    from edgekit.report import html_report

    require_convert_extra()
    log = new_log_path("demo")
    workdir = config.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir, real = _demo_model(workdir, config.model, observer, log)
    observer.model(real)
    converted = _convert(model_dir, workdir / f"{_model_name(real)}.litertlm", config.threads, observer.stage)
    status = f"continuing the prompt with the {runtimes.DEFAULT.name} engine and with PyTorch…"
    with observer.status(status), captured_output(log):
        engine_text, torch_text = _continuations(converted.artifact.path, model_dir, config.prompt, config.threads)
    with observer.status("chat-25 on an emulated phone over the ADB protocol (battery simulated)…"):
        bench = _bench_on_emulated_phone(workdir, converted.artifact.path, config.threads, log)
    result_path = workdir / "battery-bench.json"
    report_path = workdir / "battery-bench.html"
    bench.write(result_path)
    report_path.write_text(html_report(bench))
    return DemoResult(
        real=real,
        converted=converted,
        prompt=config.prompt,
        engine_text=engine_text,
        torch_text=torch_text,
        bench=bench,
        result_path=result_path,
        report_path=report_path,
    )


def _model_name(real: bool) -> str:
    return "gemma3-270m" if real else "tiny-gemma3"


def _convert(model_dir: Path, output: Path, threads: int | None, stage: StageFn | None) -> ConvertResult:
    """The default INT4 recipe with the fidelity check."""
    from edgekit.convert import ConvertConfig, convert

    config = ConvertConfig(output=output, threads=threads, given_by="flag")
    return convert(model_dir, config, progress=stage, capture_output=True, set_torch_threads=True)


def _demo_model(workdir: Path, choice: DemoModel, observer: DemoObserver, log: Path) -> tuple[Path, bool]:
    """The checkpoint folder to convert and whether it has real weights."""
    from edgekit.convert.example import TINY, write_example_model
    from edgekit.convert.gguf import materialize_gemma3_270m

    if choice is not DemoModel.TINY:
        real_dir = workdir / "gemma3-270m"
        if (real_dir / "edgekit-example.json").is_file():
            return real_dir, True
        try:
            with observer.status("materializing the trained Gemma 3 270M from its packages…"), captured_output(log):
                materialize_gemma3_270m(real_dir)
            return real_dir, True
        except DependencyError as exc:
            if choice is DemoModel.GEMMA3_270M:
                raise
            observer.note(f"{exc}; the demo falls back to the tiny random-weights model")
    tiny_dir = workdir / "tiny-gemma3"
    if not (tiny_dir / "edgekit-example.json").is_file():
        shutil.rmtree(tiny_dir, ignore_errors=True)
        with observer.status("building the tiny Gemma 3 example model…"), captured_output(log):
            write_example_model(tiny_dir, TINY)
    return tiny_dir, False


def _continuations(artifact: Path, model_dir: Path, prompt: str, threads: int | None) -> tuple[str, str]:
    """Greedy continuations of `prompt` (no chat template) by the artifact's engine and by PyTorch."""
    import torch

    from edgekit.convert.pipeline import load_reference
    from edgekit.engine import run_prompt

    engine = run_prompt(
        artifact, prompt, max_output_tokens=DEMO_MAX_TOKENS, threads=threads, apply_prompt_template=False
    )
    model, tokenizer = load_reference(model_dir)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad(), torch_threads(threads):
        out = model.generate(ids, max_new_tokens=DEMO_MAX_TOKENS, do_sample=False)
    return engine.text, str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


@contextlib.contextmanager
def _keep_remembered_runner() -> Iterator[None]:
    """Deploy remembers the last runner it was given; the demo's stand-in must not replace the user's."""
    from edgekit.runners import runner_cache_dir

    last = runner_cache_dir() / "last"
    before = last.read_text() if last.is_file() else None
    try:
        yield
    finally:
        if before is None:
            last.unlink(missing_ok=True)
        else:
            last.write_text(before)


def _bench_on_emulated_phone(workdir: Path, artifact: Path, threads: int | None, log: Path) -> BenchResult:
    """chat-25 on `edgekit.testing`'s ADB device emulator (fresh each time), over the direct transport."""
    from edgekit.bench.session import BenchConfig, battery_bench
    from edgekit.device.direct import DirectAdbDevice, ensure_adb_key
    from edgekit.testing.emulator import AdbDeviceEmulator

    phone = workdir / "emulated-phone"
    shutil.rmtree(phone, ignore_errors=True)
    phone.mkdir(parents=True)
    key = ensure_adb_key(phone / "adbkey")
    runner = runtimes.DEFAULT.write_runner_standin(phone / runtimes.DEFAULT.runner_name)
    emulator = AdbDeviceEmulator(phone / "sandbox", trusted_keys=[key.with_name("adbkey.pub").read_bytes()])
    # The device opens once the emulator listens (its port) and closes before the emulator stops.
    with (
        emulator,
        _keep_remembered_runner(),
        captured_output(log),
        DirectAdbDevice("127.0.0.1", emulator.port, key_path=key) as device,
    ):
        config = BenchConfig(runner=runner, baseline_s=DEMO_BASELINE_S, threads=threads)
        return battery_bench(device, artifact, config)
