"""Testing helpers shipped with edgekit, to test pipelines without a phone.

* `FakeDevice` — an in-process Device (files in memory, a shell of the commands edgekit
  sends): unit tests without sockets or subprocesses.
* `edgekit.testing.emulator` — the ADB device emulator on 127.0.0.1 (the wire protocol, a
  sandboxed shell, stand-in phone tools as shell scripts, its simulated battery in
  battery.py), and `edgekit.testing.plugin`, a pytest plugin with their fixtures.
* runner stand-ins — imitations of a runtime's on-device runner binaries; each lives with
  its runtime's implementation (it names that runtime), and is written and run through
  `Runtime.write_runner_standin` / `run_runner_standin`.
"""

from edgekit.testing.fake import FakeDevice

__all__ = ["FakeDevice"]
