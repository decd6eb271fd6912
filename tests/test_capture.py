"""Process-wide state: a library call leaves fd 1/2 and torch's threads alone unless asked;
the CLI's stderr console keeps reaching the terminal during a capture and opens no fd."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgekit._capture import captured_output, torch_threads
from edgekit.commands.output import Output
from edgekit.convert import ConvertConfig, convert
from edgekit.errors import InputError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stderr_console_opens_no_file_descriptor() -> None:
    before = _open_fds()
    outputs = [Output() for _ in range(50)]
    for output in outputs:
        output.stderr.print("x", end="")
    assert _open_fds() == before


def test_stderr_console_reaches_the_terminal_while_fd_2_goes_to_a_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "upstream.log"
    with captured_output(log):
        os.write(2, b"upstream chatter\n")
        Output().say("edgekit progress")
    err = capfd.readouterr().err
    assert "edgekit progress" in err
    assert "upstream chatter" not in err
    assert log.read_text() == "upstream chatter\n"


def _fd1_id() -> tuple[int, int]:
    st = os.fstat(1)
    return st.st_dev, st.st_ino


def _convert_and_watch(
    tiny_gemma3_dir: Path, tmp_path: Path, **opt_in: bool
) -> tuple[tuple[int, int], os.stat_result, int]:
    """convert() as far as its plan (a prefill longer than the cache is refused there); what
    fd 1 and torch's thread count were while the load stage ran."""
    import torch

    seen: dict[str, object] = {}

    def progress(stage: str, event: str) -> None:
        if (stage, event) == ("load", "start"):
            seen["fd1"] = os.fstat(1)
            seen["threads"] = torch.get_num_threads()

    config = ConvertConfig(output=tmp_path / "m.litertlm", prefill_lengths=(2048,), threads=1)
    with pytest.raises(InputError, match="prefill length 2048 is longer than the cache"):
        convert(tiny_gemma3_dir, config, progress=progress, **opt_in)
    fd1 = seen["fd1"]
    threads = seen["threads"]
    assert isinstance(fd1, os.stat_result) and isinstance(threads, int)
    return _fd1_id(), fd1, threads


def test_library_convert_leaves_fds_and_torch_threads_alone(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(2)
    before = _fd1_id()
    after, during, threads = _convert_and_watch(tiny_gemma3_dir, tmp_path)
    assert (during.st_dev, during.st_ino) == before == after
    assert threads == 2
    assert torch.get_num_threads() == 2


def test_convert_captures_and_sets_threads_when_the_caller_opts_in(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(2)
    before = _fd1_id()
    after, during, threads = _convert_and_watch(tiny_gemma3_dir, tmp_path, capture_output=True, set_torch_threads=True)
    assert stat.S_ISFIFO(during.st_mode)  # fd 1 went into the capture's pipe
    assert threads == 1
    assert after == before  # and came back
    assert torch.get_num_threads() == 2  # restored


def test_torch_threads_restores_after_an_error() -> None:
    import torch

    torch.set_num_threads(2)
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
