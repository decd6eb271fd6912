"""Testing helpers shipped with edgekit: an ADB device emulator, its simulated battery, a
LiteRT-LM runner stand-in, and a pytest plugin with their fixtures (see plugin.py)."""
