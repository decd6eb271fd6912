#!/bin/sh
# driver.sh RUN_DIR: one battery-bench run, on the device, detached from the host.
#
# Starts the sampler, measures an idle baseline of BASELINE_S seconds, then runs every
# conversation in RUN_DIR/conv/NNNN.txt (one user turn per line) through one runner
# process each, feeding turns through a FIFO one at a time and timestamping on the
# device's monotonic clock (/proc/uptime): turn_send, turn_first (first answer byte),
# turn_end. A finished conversation leaves RUN_DIR/done/NNNN, so a run that was killed
# resumes where it stopped. RUN_DIR/status: running, done or failed.
#
# Power windows: with DETACH=1 it first waits (polling the supplies' online state on the
# phone, up to UNPLUG_WAIT_S) for the cable to be unplugged, then settles SETTLE_S; it
# measures an idle baseline of BASELINE_S before the workload AND after it, so the idle
# draw's drift can be seen and interpolated.
RUN=$1
. "$RUN/run.env"
# run.env names files relative to edgekit's work root, RUN's grandparent.
ROOT=${RUN%/runs/*}
. "$ROOT/$HARNESS/supply.sh"
trap '' PIPE HUP
PROMPT='Please enter the prompt (or press Enter to end): '
NL='
'

now() {
  read -r up _rest < /proc/uptime
  s=${up%.*}; f=${up#*.}; f=${f#0}
  NOW=$((s * 1000 + ${f:-0} * 10))
}

# readn N: read up to N bytes from fd 3 into $got (fewer at the end of the output).
# mksh (Android's sh) reads exact byte counts itself; other shells fork dd.
if (printf 'ab' | { IFS= read -r -N 1 _x && [ "$_x" = a ]; }) 2>/dev/null; then
  readn() { got=; IFS= read -r -N "$1" got <&3; }
else
  readn() { got=$(dd bs=1 count="$1" <&3 2>/dev/null; echo x); got=${got%x}; }
fi

event() {
  now
  echo "$NOW,$1,$2,$3" >> "$RUN/events.csv"
}

# Read the runner's output on fd 3 up to and including its next input prompt, starting
# with the bytes in $buf; answer text goes to $ANS. The prompt has no newline and the
# runner then waits for input, so we never read past it: whole lines with `read`, the
# possible prompt by byte count (readn). Returns 1 when the output ends.
await_prompt() {
  while :; do
    case $buf in
      *"$NL"*)
        printf '%s\n' "${buf%"$NL"*}" >> "$ANS"
        buf=${buf##*"$NL"}
        ;;
    esac
    [ "$buf" = "$PROMPT" ] && { buf=; return 0; }
    case $PROMPT in
      "$buf"*)
        readn $((${#PROMPT} - ${#buf}))
        [ -z "$got" ] && return 1
        buf=$buf$got
        ;;
      *)
        IFS= read -r rest <&3 || { printf '%s\n' "$buf$rest" >> "$ANS"; return 1; }
        printf '%s\n' "$buf$rest" >> "$ANS"
        buf=
        ;;
    esac
  done
}

run_conversation() {
  i=$1
  fin="$RUN/tmp/in.$i"
  fout="$RUN/tmp/out.$i"
  ANS="$RUN/out/$i.txt"
  rm -f "$fin" "$fout" "$ANS" "$RUN/out/$i.bench"
  mkfifo "$fin" "$fout"
  event conv_start "$i" 0
  # shellcheck disable=SC2086 # RUNNER_FLAGS: --flag=value words edgekit wrote, no spaces
  "$ROOT/$RUNNER" "--model_path=$ROOT/$MODEL" $RUNNER_FLAGS < "$fin" > "$fout" 2> "$RUN/err/$i.txt" &
  rpid=$!
  exec 4> "$fin" 3< "$fout"
  buf=
  turn=0
  alive=1
  while IFS= read -r line || [ -n "$line" ]; do
    await_prompt || { alive=0; break; }
    turn=$((turn + 1))
    event turn_end "$i" $((turn - 1))
    printf '%s\n' "$line" >&4
    event turn_send "$i" "$turn"
    readn 1
    buf=$got
    [ -z "$buf" ] && { alive=0; break; }
    event turn_first "$i" "$turn"
  done < "$RUN/conv/$i.txt"
  if [ "$alive" -eq 1 ] && await_prompt; then
    event turn_end "$i" "$turn"
    printf '\n' >&4
  fi
  cat <&3 > "$RUN/out/$i.bench"
  exec 3<&- 4>&-
  wait "$rpid"
  rc=$?
  event conv_end "$i" "$rc"
  rm -f "$fin" "$fout"
  if [ "$rc" -eq 0 ] && [ "$alive" -eq 1 ]; then
    : > "$RUN/done/$i"
  fi
}

mkdir -p "$RUN/out" "$RUN/err" "$RUN/done" "$RUN/tmp"
echo $$ > "$RUN/driver.pid"
echo running > "$RUN/status"
rm -f "$RUN/stop"
# Which boot this part of the run is on (a resume after a reboot cannot join the parts).
boot=unknown
[ -r /proc/sys/kernel/random/boot_id ] && read -r boot < /proc/sys/kernel/random/boot_id
event driver_start "$boot" 0

# ext_online: $ext = the external supplies online in $sup (everything but the battery).
ext_online() {
  ext=
  old_ifs=$IFS
  IFS=+
  for it in $sup; do
    n=${it%%:*}; v=${it##*:}; r=${it#*:}; ty=${r%:*}
    [ "$n" = battery ] || [ "$ty" = Battery ] || [ "$v" = 0 ] || [ -z "$v" ] || ext="$ext $n"
  done
  IFS=$old_ifs
}

if [ "${DETACH:-0}" = 1 ] && ! grep -q ',baseline_end,' "$RUN/events.csv" 2>/dev/null; then
  event unplug_wait 0 0
  waited=0
  while :; do
    supplies
    [ -n "$sysfs_sup" ] || { dumpsys_supplies "$RUN/tmp/unplug"; sup=$dsup; }
    if [ -z "$sup" ]; then event unplug_unknown 0 0; break; fi
    ext_online
    [ -z "$ext" ] && { event unplugged 0 0; break; }
    [ "$waited" -ge "${UNPLUG_WAIT_S:-600}" ] && { event unplug_timeout 0 0; break; }
    sleep 1
    waited=$((waited + 1))
  done
  sleep "${SETTLE_S:-0}"
  event settled 0 0
fi

sh "$ROOT/$HARNESS/sampler.sh" "$RUN" &
spid=$!
if ! grep -q ',baseline_end,' "$RUN/events.csv" 2>/dev/null; then
  event baseline_start 0 0
  sleep "$BASELINE_S"
  event baseline_end 0 0
fi
event workload_start 0 0
for conv in "$RUN"/conv/*.txt; do
  i=${conv##*/}
  i=${i%.txt}
  [ -e "$RUN/done/$i" ] && continue
  run_conversation "$i"
done
event workload_end 0 0
if [ "$BASELINE_S" != 0 ]; then
  event baseline_after_start 0 0
  sleep "$BASELINE_S"
  event baseline_after_end 0 0
fi
: > "$RUN/stop"
wait "$spid"
echo done > "$RUN/status"
