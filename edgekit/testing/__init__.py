"""Testing helpers shipped with edgekit: a pytest plugin and (later) the ADB device emulator."""
