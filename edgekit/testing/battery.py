"""A simulated phone battery with the traps real fuel gauges set, and a record of the truth.

Traps, each settable: `current_now` sign convention (BatteryManager documents positive =
into the battery; several vendors report the opposite), a `charge_counter` that moves in
coarse steps (or is absent), voltage that sags under load, noise on `current_now`,
charging, a USB cable that powers the phone while the gauge says "Not charging" (Pixels at
their charge limit do this: `supply_ma`), empty reads (`empty_read_fraction`), an idle
draw that drifts (`idle_drift_ma_per_s`), a screen that costs power while awake
(`screen_ma`), and `current_now` in mA instead of µA (`report_ma`). A suspended phone is
the emulator's `suspend()` (the sampler stops; this battery's clock does not).

The truth is integrated here, separately, from the load this model applies — never from
what edgekit computes: the charge and energy drawn from the battery, and the excess over
idling (what the busy periods cost beyond the idle draw of that moment, screen included),
so tests can compare edgekit's figures with what really happened. Every figure it yields
is simulated.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time


@dataclasses.dataclass
class BatteryController:
    """Settings of the simulated battery; change them at any time from a test."""

    design_capacity_mah: float = 4500.0
    level_pct: float = 80.0
    idle_ma: float = 60.0
    busy_ma: float = 450.0
    # -1: current_now is negative while discharging (BatteryManager's convention);
    # +1: positive while discharging (what several vendors report).
    discharge_sign: int = -1
    counter_step_uah: int = 1000
    ocv_empty_v: float = 3.5
    ocv_full_v: float = 4.35
    internal_resistance_ohm: float = 0.12
    noise_ma: float = 8.0
    charging: bool = False
    charge_ma: float = 1500.0
    temperature_c: float = 30.0
    thermal_status: int = 0
    seed: int = 0
    supply_ma: float = 0.0
    """A cable supplying this much (USB online, status "Not charging"): the battery gives only the rest."""
    empty_read_fraction: float = 0.0
    """Chance that a published `current_now` / `voltage_now` read is empty."""
    idle_drift_ma_per_s: float = 0.0
    """The idle draw grows by this much per second of simulated time (background work starting)."""
    screen_ma: float = 0.0
    """Extra draw while the screen is awake (the emulator tells `tick` whether it is)."""
    report_ma: bool = False
    """`current_now` in mA instead of the sysfs ABI's µA."""
    counter: bool = True
    """False: no `charge_counter` file (older or stripped gauges)."""
    full_charge_pct: float = 90.0
    """`charge_full` as % of the design capacity (an aged battery holds less)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._charge_uah = self.design_capacity_mah * 1000 * self.level_pct / 100
        self._drawn_uah = 0.0
        self._energy_uj = 0.0
        self._busy_s = 0.0
        self._elapsed_s = 0.0
        self._excess_uah = 0.0
        self._excess_uj = 0.0
        self._last = time.monotonic()
        self._clock_s = 0.0
        self._busy, self._idle_now_ma, self._load_ma = False, self.idle_ma, self.idle_ma
        self._current_ma = self.idle_ma
        self._voltage_v = self._ocv() - self.idle_ma / 1000 * self.internal_resistance_ohm
        self._staged: tuple[bool, float, float, float, float] | None = None

    def _ocv(self) -> float:
        soc = max(0.0, min(1.0, self._charge_uah / (self.design_capacity_mah * 1000)))
        return self.ocv_empty_v + (self.ocv_full_v - self.ocv_empty_v) * soc

    def tick(self, busy: bool, now: float | None = None, *, screen_awake: bool = False) -> None:
        """Advance the simulation to `now` (monotonic seconds); `busy` = a model is running.

        The interval since the last tick ran at the load set then — the load the gauge has
        been publishing — and is integrated into the truth; then the new load is set."""
        self.stage(busy, screen_awake=screen_awake)
        self.commit(now)

    def stage(self, busy: bool, *, screen_awake: bool = False) -> dict[str, int | str]:
        """Work out the next load and return the readings it will show; `commit` puts it in
        effect. Publish the readings between the two, so the truth switches load when the
        gauge does (a host that stalls the publisher would otherwise skew the truth)."""
        with self._lock:
            idle_ma = self.idle_ma + self.idle_drift_ma_per_s * self._clock_s + (self.screen_ma if screen_awake else 0)
            load_ma = self.busy_ma - self.idle_ma + idle_ma if busy else idle_ma
            # Positive = out of the battery (discharge); charging pushes current in. A cable
            # at the charge limit runs the phone and never charges it ("Not charging").
            current_ma = load_ma - self.charge_ma if self.charging else max(0.0, load_ma - self.supply_ma)
            voltage_v = self._ocv() - current_ma / 1000 * self.internal_resistance_ohm
            self._staged = (busy, idle_ma, load_ma, current_ma, voltage_v)
            return self._readings(current_ma, voltage_v)

    def commit(self, now: float | None = None) -> None:
        """Integrate the truth up to `now` at the load in effect, then put the staged load in effect."""
        with self._lock:
            now = time.monotonic() if now is None else now
            dt = max(0.0, now - self._last)
            self._last = now
            self._clock_s += dt
            current_ma, voltage_v = self._current_ma, self._voltage_v
            load_ma, idle_ma = self._load_ma, self._idle_now_ma
            self._charge_uah -= current_ma * 1000 * dt / 3600
            self._drawn_uah += current_ma * 1000 * dt / 3600
            self._energy_uj += voltage_v * current_ma * 1000 * dt
            self._busy_s += dt if self._busy else 0.0
            self._elapsed_s += dt
            # What the load cost beyond idling (at that moment's idle draw): the figure
            # baseline subtraction must recover, on battery power.
            idle_v = self._ocv() - idle_ma / 1000 * self.internal_resistance_ohm
            load_v = self._ocv() - load_ma / 1000 * self.internal_resistance_ohm
            self._excess_uah += (load_ma - idle_ma) * 1000 * dt / 3600
            self._excess_uj += (load_v * load_ma - idle_v * idle_ma) * 1000 * dt
            if self._staged is not None:
                busy, idle_ma, load_ma, current_ma, voltage_v = self._staged
                self._busy, self._idle_now_ma, self._load_ma = busy, idle_ma, load_ma
                self._current_ma, self._voltage_v = current_ma, voltage_v
                self._staged = None

    def reset_truth(self) -> None:
        """Start the truth record afresh (charge drawn, energy, time) from now."""
        with self._lock:
            self._drawn_uah = self._energy_uj = self._busy_s = self._elapsed_s = 0.0
            self._excess_uah = self._excess_uj = 0.0

    def truth(self) -> dict[str, float]:
        """What really happened since the last reset: µAh and µJ drawn (negative = charged in),
        and the excess over idling (what the busy periods cost beyond `idle_ma`)."""
        with self._lock:
            return {
                "charge_drawn_uah": self._drawn_uah,
                "energy_drawn_uj": self._energy_uj,
                "busy_s": self._busy_s,
                "elapsed_s": self._elapsed_s,
                "excess_charge_uah": self._excess_uah,
                "excess_energy_uj": self._excess_uj,
            }

    def readings(self) -> dict[str, int | str]:
        """What the fuel gauge reports now, in sysfs units (µA, µV, µAh, 0.1 °C); "" = an empty read."""
        with self._lock:
            return self._readings(self._current_ma, self._voltage_v)

    def _readings(self, current_ma: float, voltage_v: float) -> dict[str, int | str]:
        noisy_ma = current_ma + self._rng.gauss(0.0, self.noise_ma)
        if self.charging:
            status = "Charging"
        elif self.supply_ma > 0:
            status = "Not charging"
        else:
            status = "Discharging"
        step = max(1, self.counter_step_uah)
        out: dict[str, int | str] = {
            "capacity": max(0, min(100, round(self._charge_uah / (self.design_capacity_mah * 10)))),
            "status": status,
            "charge_counter": int(self._charge_uah // step * step),
            "current_now": round(noisy_ma * (1 if self.report_ma else 1000) * self.discharge_sign),
            "voltage_now": round(voltage_v * 1e6),
            "temp": round(self.temperature_c * 10),
            "charge_full_design": int(self.design_capacity_mah * 1000),
            "charge_full": int(self.design_capacity_mah * 10 * self.full_charge_pct),
            "present": "1",
        }
        if not self.counter:
            del out["charge_counter"]
        for key in ("current_now", "voltage_now"):
            if self.empty_read_fraction and self._rng.random() < self.empty_read_fraction:
                out[key] = ""
        return out

    def voltage_v(self) -> float:
        """The battery's terminal voltage now (V), never an empty read."""
        with self._lock:
            return self._voltage_v

    def usb_online(self) -> bool:
        """True while a cable powers the phone (charging, or supplying at the charge limit)."""
        return self.charging or self.supply_ma > 0
