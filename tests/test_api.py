"""The public surface: __all__, cheap imports, heavy libraries that must share a process."""

from __future__ import annotations

import subprocess
import sys

import edgekit


def test_all_lists_the_curated_api() -> None:
    expected = {
        "Artifact",
        "ConversionError",
        "ConvertConfig",
        "ConvertResult",
        "DependencyError",
        "DeviceError",
        "EdgekitError",
        "FidelityError",
        "Format",
        "InputError",
        "Manifest",
        "PromptRun",
        "Quant",
        "__version__",
        "convert",
        "run_prompt",
        "evaluate",
        "EvalResult",
        "NllGap",
        "AdbDevice",
        "DeployConfig",
        "DeployResult",
        "Device",
        "DeviceFacts",
        "DirectAdbDevice",
        "LocalDevice",
        "Transport",
        "deploy",
        "open_device",
        "BenchConfig",
        "BenchResult",
        "battery_bench",
    }
    assert set(edgekit.__all__) == expected
    for name in edgekit.__all__:
        assert hasattr(edgekit, name), name


def test_import_edgekit_loads_no_torch_or_tensorflow() -> None:
    heavy = "('torch', 'tensorflow', 'transformers', 'litert_torch')"
    code = f"import sys, edgekit, edgekit.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_edgekit_loads_no_transport_library() -> None:
    # Transports are imported on first use: no adbutils, adb-shell or pty (POSIX only) on import.
    code = (
        "import sys, edgekit; print(sorted(m for m in sys.modules if m.startswith(('adbutils', 'adb_shell', 'pty'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, edgekit; edgekit.AdbDevice; print('adbutils' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"  # and on access, it is the real class


def test_torch_and_tensorflow_work_in_one_process() -> None:
    # litert-torch 0.10 imports TensorFlow's TFLite schema; both must live, and work, in one process.
    code = (
        "import torch, tensorflow\n"
        "from tensorflow.lite.python import schema_py_generated as schema\n"
        "import litert_torch.generative.export_hf.export\n"
        "print(int(torch.arange(4).sum()), int(tensorflow.reduce_sum(tensorflow.range(4))), "
        "schema.BuiltinOperator.FULLY_CONNECTED)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # torch and TensorFlow compute; the TFLite schema has its opcodes (FULLY_CONNECTED is 9).
    assert proc.stdout.split()[-3:] == ["6", "6", "9"]
