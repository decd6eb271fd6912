#!/bin/sh
# sampler.sh RUN_DIR: append one fuel-gauge reading per SAMPLE_S seconds to RUN_DIR/samples.csv
# (t_ms,charge_counter,current_now,voltage_now,capacity,temp,status,supplies,screen,thermal)
# until RUN_DIR/stop exists. Reads sysfs with the shell's own `read`; no fork per sample under
# mksh. `supplies` (every power supply's online state, see supply.sh) is read every sample;
# screen (`dumpsys power` mWakefulness) and thermal status (`dumpsys thermalservice`) cost a
# fork each, so they are read every STATE_S seconds and repeated in between; empty = unknown.
RUN=$1
. "$RUN/run.env"
ROOT=${RUN%/runs/*}
# DEVICE_ROOT is empty on a phone; edgekit's device emulator sets it to its sandbox.
B=${DEVICE_ROOT:-}/sys/class/power_supply/battery
. "$ROOT/$HARNESS/supply.sh"
. "$ROOT/$HARNESS/clock.sh"

rd() {
  v=
  [ -r "$B/$1" ] && read -r v < "$B/$1"
}

# Wait between samples without a fork where the shell can: mksh (Android's sh) has
# `read -t`, which times out on a FIFO nobody writes to (clock.sh). Elsewhere: sleep(1).
mkdir -p "$RUN/tmp"
NAP=sleep
quiet_fifo "$RUN/tmp/nap.$$" && read_t && NAP=read

nap() {
  if [ "$NAP" = read ]; then
    read -t "$SAMPLE_S" _x <&9
  else
    sleep "$SAMPLE_S"
  fi
}

# States that need dumpsys. AOSP PowerManagerService dump: "  mWakefulness=Awake";
# ThermalManagerService dump: "Thermal Status: 0".
scr=
th=
state() {
  f="$RUN/tmp/state.$$"
  scr=
  if dumpsys power > "$f" 2>/dev/null; then
    while IFS= read -r l; do
      case $l in *mWakefulness=*) scr=${l#*mWakefulness=}; scr=${scr%% *}; break ;; esac
    done < "$f"
  fi
  th=
  if dumpsys thermalservice > "$f" 2>/dev/null; then
    while IFS= read -r l; do
      case $l in "Thermal Status: "*) th=${l#Thermal Status: }; th=${th%% *}; break ;; esac
    done < "$f"
  fi
  supplies
  [ -n "$sysfs_sup" ] || dumpsys_supplies "$f"
  rm -f "$f"
}

# Every STATE_EVERY samples (run.env: STATE_S / SAMPLE_S, at least 1).
every=${STATE_EVERY:-20}
[ "$every" -ge 1 ] || every=1
n=0

echo $$ > "$RUN/sampler.pid"
# (and while the run folder exists: a run removed under it is over)
while [ ! -e "$RUN/stop" ] && [ -d "$RUN" ]; do
  [ $((n % every)) -eq 0 ] && state
  n=$((n + 1))
  # The timestamp goes with current and voltage: read them right after it, the rest later
  # (a loaded phone can take milliseconds per read; at a load step that would skew it).
  now
  rd current_now; cur=$v
  rd voltage_now; vol=$v
  rd charge_counter; cc=$v
  rd capacity; cap=$v
  rd temp; tmp=$v
  rd status; st=$v
  supplies
  echo "$NOW,$cc,$cur,$vol,$cap,$tmp,$st,$sup,$scr,$th" >> "$RUN/samples.csv"
  nap
done
