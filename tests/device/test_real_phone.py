"""Real-phone tests. Collected only when EDGEKIT_TEST_DEVICE names a phone (adb serial or
HOST:PORT) and EDGEKIT_TEST_RUNNER a real litert_lm_main for it (see tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.convert import ConvertResult
from edgekit.deploy import DeployConfig, deploy
from edgekit.device import open_device


def test_real_phone_facts_and_battery() -> None:
    device = open_device(os.environ["EDGEKIT_TEST_DEVICE"])
    facts = device.facts()
    assert facts.abis and not facts.emulated
    battery = device.battery()
    assert battery.level_pct is not None and 0 <= battery.level_pct <= 100


def test_real_phone_deploy_twice(int4_result: ConvertResult) -> None:
    device = open_device(os.environ["EDGEKIT_TEST_DEVICE"])
    config = DeployConfig(runner=Path(os.environ["EDGEKIT_TEST_RUNNER"]))
    first = deploy(device, int4_result.artifact.path, config)
    assert first.smoke is not None and first.smoke.decode_tokens
    assert deploy(device, int4_result.artifact.path, config).bytes_pushed == 0
