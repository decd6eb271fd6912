#!/bin/sh
# sampler.sh RUN_DIR: append one fuel-gauge reading per SAMPLE_S seconds to RUN_DIR/samples.csv
# (t_ms,charge_counter,current_now,voltage_now,capacity,temp,status) until RUN_DIR/stop exists.
# Reads sysfs with the shell's own `read`; no fork per sample under mksh (one `sleep` elsewhere).
RUN=$1
. "$RUN/run.env"
# DEVICE_ROOT is empty on a phone; edgekit's device emulator sets it to its sandbox.
B=${DEVICE_ROOT:-}/sys/class/power_supply/battery

now() {
  read -r up _rest < /proc/uptime
  s=${up%.*}; f=${up#*.}; f=${f#0}
  NOW=$((s * 1000 + ${f:-0} * 10))
}

rd() {
  v=
  [ -r "$B/$1" ] && read -r v < "$B/$1"
}

# Wait between samples without a fork where the shell can: mksh (Android's sh) has
# `read -t`, which times out on a FIFO nobody writes to. Elsewhere: sleep(1).
mkdir -p "$RUN/tmp"
nap_fifo="$RUN/tmp/nap.$$"
rm -f "$nap_fifo"
mkfifo "$nap_fifo" && exec 9<> "$nap_fifo"
rm -f "$nap_fifo"
NAP=sleep
read -t 0.01 _x <&9 2>/dev/null
[ $? -gt 128 ] && NAP=read

nap() {
  if [ "$NAP" = read ]; then
    read -t "$SAMPLE_S" _x <&9
  else
    sleep "$SAMPLE_S"
  fi
}

echo $$ > "$RUN/sampler.pid"
# (and while the run folder exists: a run removed under it is over)
while [ ! -e "$RUN/stop" ] && [ -d "$RUN" ]; do
  now
  rd charge_counter; cc=$v
  rd current_now; cur=$v
  rd voltage_now; vol=$v
  rd capacity; cap=$v
  rd temp; tmp=$v
  rd status; st=$v
  echo "$NOW,$cc,$cur,$vol,$cap,$tmp,$st" >> "$RUN/samples.csv"
  nap
done
