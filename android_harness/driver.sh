#!/bin/sh
# driver.sh RUN_DIR: one battery-bench run, on the device, detached from the host.
#
# Starts the sampler, measures an idle baseline of BASELINE_S seconds, then runs every
# conversation in RUN_DIR/conv/NNNN.txt (one user turn per line) through the runner. It
# knows no runtime: edgekit's runtime implementation (edgekit/runtimes/) writes into run.env
# what this runner needs, for the protocol deploy's probe chose (PROTOCOL):
#
# one runner process per conversation (every PROTOCOL but one_shot): turns fed through a
#             FIFO one line at a time, each after the runner printed PROMPT (no newline; with
#             PROMPT_AFTER, a shell pattern, after the first turn only where the line before
#             the blank line before it matches PROMPT_AFTER, so an answer line that starts
#             like PROMPT is no prompt); END_LINE=1: an empty line ends the conversation,
#             else the end of its input. stdout, prompts kept -> out/NNNN.txt, stderr (where
#             runners log their per-turn figures) -> err/NNNN.txt.
# one_shot    one runner process per user turn: the prompt file (named in its argv as
#             PROMPT_FILE_PREFIX + path) holds the earlier turns rendered as "User: …" /
#             "Assistant: …" lines (earlier answers cut to ANSWER_CAP_WORDS words and
#             ANSWER_CAP_BYTES bytes) and then the new turn; stdout (PROMPT_ECHO + the prompt
#             echoed, the answer, the figures from a line containing ANSWER_END on)
#             -> out/NNNN.K.txt, stderr -> err/NNNN.K.txt.
#
# The model is passed as MODEL_OPT (a word of its own, if set) then MODEL_PREFIX + its path;
# with CHAT_TEMPLATE (a chat template file beside the model), TEMPLATE_OPT and its path.
#
# Timestamps on the device's monotonic clock (/proc/uptime, 10 ms) in events.csv:
# turn_send, turn_first (first stdout byte after the send), turn_end; turn_timeout when a
# turn took longer than TURN_TIMEOUT_S and the runner was killed; conv_end with the
# runner's exit status. The runner runs with LD_LIBRARY_PATH = its own folder (the .so
# files shipped beside it). A finished conversation leaves RUN_DIR/done/NNNN, so a run
# that was killed resumes where it stopped. RUN_DIR/status: running, then done.
#
# Power windows: with DETACH=1 it first waits (polling the supplies' online state on the
# phone, up to UNPLUG_WAIT_S) for the cable to be unplugged, then settles SETTLE_S; it
# measures an idle baseline of BASELINE_S before the workload AND after it, so the idle
# draw's drift can be seen and interpolated.
#
# However the driver ends (the workload done, RUN_DIR/stop, SIGTERM or SIGINT, a runner
# crash, an error of the shell), it puts back the phone settings edgekit changed for the
# run (RESTORE_SETTINGS: "key=value" words of `settings ... system`, value null = delete;
# RESTORE_SCREEN=1: the screen was off, put it back to sleep), then writes RUN_DIR/restored
# and removes the phone's run lock (ROOT/bench.lock) if it names this run: restoring never
# depends on the host. SIGTERM/SIGINT also kill the runner, its watchdog and the sampler
# (their pids are in RUN_DIR/runner.pid and sampler.pid, so edgekit's stop can kill them
# without setsid's process group too). SIGHUP stays ignored: a detached run (started
# without setsid on some phones) must outlive the adb shell that started it. SIGKILL cannot
# be caught: then `edgekit battery-bench --collect` restores what is still edgekit's.
RUN=$1
. "$RUN/run.env"
# run.env names files relative to edgekit's work root, RUN's grandparent.
ROOT=${RUN%/runs/*}
. "$ROOT/$HARNESS/supply.sh"
. "$ROOT/$HARNESS/clock.sh"
trap '' PIPE HUP
rpid=
wpid=
spid=
napid=

restore_phone() {
  [ -e "$RUN/restored" ] && return 0
  for kv in ${RESTORE_SETTINGS:-}; do
    k=${kv%%=*}; v=${kv#*=}
    if [ "$v" = null ]; then settings delete system "$k"; else settings put system "$k" "$v"; fi
  done > /dev/null 2>&1
  [ "${RESTORE_SCREEN:-0}" = 1 ] && input keyevent 223 > /dev/null 2>&1
  : > "$RUN/restored"
}

release_lock() {
  lid=
  { read -r lid < "$ROOT/bench.lock"; } 2>/dev/null
  [ "$lid" = "run_id=${RUN##*/}" ] && rm -f "$ROOT/bench.lock"
}

# The children that would outlive a killed driver (no process group without setsid).
kill_children() {
  for p in $rpid $wpid $spid $napid; do kill -9 "$p" 2>/dev/null; done
}

stop_here() {
  trap '' TERM INT
  : > "$RUN/stop"
  kill_children
  exit "$1"
}
trap 'restore_phone; release_lock' EXIT
trap 'stop_here 143' TERM
trap 'stop_here 130' INT

# nap S: sleep S seconds as a child the shell waits for, so a trapped signal is handled at
# once (a foreground sleep would hold the trap until it ends).
nap() {
  sleep "$1" &
  napid=$!
  wait "$napid"
  napid=
}
# PROMPT: what the runner prints before it reads a turn; PROMPT_AFTER (may be empty): a
# prompt after the first turn counts only after a line matching it and a blank one.
PROMPT_AFTER=${PROMPT_AFTER:-}
NL='
'

# readn N: read up to N bytes from fd 3 into $got (fewer at the end of the output).
# mksh (Android's sh) reads exact byte counts itself; other shells fork dd.
if (printf 'ab' | { IFS= read -r -N 1 _x && [ "$_x" = a ]; }) 2>/dev/null; then
  readn() { got=; IFS= read -r -N "$1" got <&3; }
else
  readn() { got=$(dd bs=1 count="$1" <&3 2>/dev/null; echo x); got=${got%x}; }
fi

# open_in3 FIFO / open_out4 FIFO: open a FIFO on fd 3 (read) / fd 4 (write). The open blocks
# until the runner opens the other end, and a signal arriving meanwhile (SIGCHLD of a child
# that ended) makes mksh fail the redirection with "open: Interrupted system call" (EINTR;
# seen in the emulator's driver.log on a loaded host, which lost that conversation). So retry;
# `command` keeps a failed exec from ending the shell, and 200 tries bound a failure that is
# not an interruption (the caller then finds fd 3/4 unusable and fails the turn as before).
# A runner that dies before its shell opened its ends (killed in the instant after the fork)
# never opens them: the runner's watchdog then opens them itself within a second or so
# (release_fifos), so these opens return and the driver meets the end of the output, as
# after a crash mid-run. fd 4 is not opened read-write, though such an open never waits: a
# reader of the driver's own would keep a write to a dead runner from failing (EPIPE), and a
# turn longer than the pipe holds would then wait forever.
open_in3() { _n=0; until { command exec 3< "$1"; } 2>/dev/null; do _n=$((_n + 1)); [ "$_n" -lt 200 ] || return 1; done; }
open_out4() { _n=0; until { command exec 4> "$1"; } 2>/dev/null; do _n=$((_n + 1)); [ "$_n" -lt 200 ] || return 1; done; }

# Does this shell time out `read -t` on a FIFO (mksh)? Then the watchdog naps without forks.
CAN_READ_T=0
mkdir -p "$RUN/tmp"
if quiet_fifo "$RUN/tmp/rt.$$"; then
  read_t && CAN_READ_T=1
  exec 9<&-
fi

event() {
  now
  echo "$NOW,$1,$2,$3" >> "$RUN/events.csv"
}

# The per-turn timeout: a watchdog per runner process polls a deadline file once a second
# and kills the runner (SIGKILL) past it, leaving RUN_DIR/tmp/timeout.KEY behind.
arm() {
  now
  echo $((NOW + TURN_TIMEOUT_S * 1000)) > "$RUN/tmp/watch.$1"
}

# ended PID: the process PID has ended: a zombie the driver has not waited for yet (state Z
# in /proc/PID/stat, after the command name's closing parenthesis), or no process at all
# while /proc shows ours. Not `kill -0`, which succeeds on a zombie. A /proc we cannot read
# never counts as ended.
ended() {
  _st=
  if { read -r _st < "/proc/$1/stat"; } 2>/dev/null; then
    _st=${_st##*) }
    [ "${_st%% *}" = Z ]
  else
    [ -d "/proc/$$" ] && [ ! -d "/proc/$1" ]
  fi
}

# release_fifos FIFO...: open each FIFO read-write and close it at once (such an open never
# waits), so a driver blocked opening the other end of a FIFO whose runner died goes on; it
# then reads the end of the output (no writer is left). `true`, not `:` or `exec`: a failed
# redirection of a special builtin would end this shell.
release_fifos() {
  for _f in "$@"; do
    [ -p "$_f" ] && true <> "$_f"
  done 2>/dev/null
}

# watchdog PID KEY FIFO...: once a second, kill runner PID (SIGKILL) past the deadline in
# tmp/watch.KEY; and once it has ended, release its FIFOs (the driver may be waiting in an
# open of one: release_fifos). The driver kills it (before it removes the FIFOs) once it
# has waited for the runner, so no release ever creates a file where a FIFO was.
watchdog() {
  wd_pid=$1
  wd_key=$2
  shift 2
  # Wait a second without a fork where the shell can: mksh's `read -t` on a FIFO nobody
  # writes to (as sampler.sh does); elsewhere sleep(1).
  wnap=sleep
  [ "$CAN_READ_T" = 1 ] && quiet_fifo "$RUN/tmp/wnap.$wd_key" && wnap=read
  while [ -e "$RUN/tmp/watch.$wd_key" ]; do
    if [ "$wnap" = read ]; then read -t 1 _x <&9; else sleep 1; fi
    if ended "$wd_pid"; then
      release_fifos "$@"
      continue
    fi
    dl=
    { read -r dl < "$RUN/tmp/watch.$wd_key"; } 2>/dev/null || break
    now
    if [ "${dl:-0}" -gt 0 ] && [ "$NOW" -gt "$dl" ]; then
      : > "$RUN/tmp/timeout.$wd_key"
      kill -9 "$wd_pid" 2>/dev/null
    fi
  done
}

# end_watchdog: stop the runner's watchdog (after the runner was waited for) and wait for it.
end_watchdog() {
  kill -9 "$wpid" 2>/dev/null
  wait "$wpid" 2>/dev/null
  wpid=
}

# After a runner failed: what the phone kept about it (logcat's crash buffer where the
# shell may read it: crash_dump's "Fatal signal …" and "Tombstone written to: …" lines).
crash_notes() {
  if command -v logcat >/dev/null 2>&1; then
    logcat -d -b crash -t 200 2>/dev/null | grep -e 'Fatal signal' -e 'Tombstone written' -e 'Abort message' \
      > "$RUN/err/$1.logcat" 2>/dev/null
  fi
}

# Read the runner's output on fd 3 up to and including its next input prompt, starting
# with the bytes in $buf; all of it goes to $ANS, prompts too, so the host can tell the
# answers apart (edgekit.bench.assembly.turn_answer). The prompt has no newline and the
# runner then waits for input, so we never read past it: whole lines with `read`, the
# possible prompt by byte count (readn). With PROMPT_AFTER, after the first turn, the
# prompt must follow a line matching it and a blank line (l2, l1: the last two lines).
# Returns 1 when the output ends.
line_out() {
  printf '%s\n' "$1" >> "$ANS"
  l2=$l1
  l1=$1
}

is_prompt() {
  [ "$buf" = "$PROMPT" ] || return 1
  [ -z "$PROMPT_AFTER" ] || [ "$turn" -eq 0 ] && return 0
  [ -z "$l1" ] || return 1
  # shellcheck disable=SC2254 # PROMPT_AFTER is a pattern
  case $l2 in $PROMPT_AFTER) return 0 ;; esac
  return 1
}

await_prompt() {
  while :; do
    case $buf in
      *"$NL"*)
        head_=${buf%%"$NL"*}
        line_out "$head_"
        buf=${buf#*"$NL"}
        continue
        ;;
    esac
    is_prompt && { printf '%s' "$PROMPT" >> "$ANS"; buf=; l1=x; return 0; }
    case $PROMPT in
      "$buf"*)
        if [ "$buf" != "$PROMPT" ]; then
          readn $((${#PROMPT} - ${#buf}))
          [ -z "$got" ] && return 1
          buf=$buf$got
          continue
        fi
        ;;
    esac
    IFS= read -r rest <&3 || { printf '%s\n' "$buf$rest" >> "$ANS"; return 1; }
    line_out "$buf$rest"
    buf=
  done
}

finish_conversation() {  # KEY RC TURN OK
  if [ -e "$RUN/tmp/timeout.$1" ]; then
    event turn_timeout "$1" "$3"
    rm -f "$RUN/tmp/timeout.$1"
  fi
  [ "$2" -ne 0 ] && crash_notes "$1"
  event conv_end "$1" "$2"
  if [ "$2" -eq 0 ] && [ "$4" -eq 1 ]; then
    : > "$RUN/done/$1"
  fi
}

run_multi_turn() {
  i=$1
  fin="$RUN/tmp/in.$i"
  fout="$RUN/tmp/out.$i"
  ANS="$RUN/out/$i.txt"
  rm -f "$fin" "$fout" "$ANS" "$RUN/tmp/timeout.$i"
  mkfifo "$fin" "$fout"
  event conv_start "$i" 0
  arm "$i"
  # shellcheck disable=SC2086 # RUNNER_FLAGS: words edgekit wrote, no spaces
  # CHAT_TEMPLATE: the turn format edgekit gives a model without one (beside the model).
  LD_LIBRARY_PATH="$ROOT/$RUNNER_DIR" "$ROOT/$RUNNER" ${MODEL_OPT:+"$MODEL_OPT"} "${MODEL_PREFIX:-}$ROOT/$MODEL" \
    $RUNNER_FLAGS ${CHAT_TEMPLATE:+"$TEMPLATE_OPT"} ${CHAT_TEMPLATE:+"$ROOT/$CHAT_TEMPLATE"} \
    < "$fin" > "$fout" 2> "$RUN/err/$i.txt" &
  rpid=$!
  watchdog "$rpid" "$i" "$fin" "$fout" &
  wpid=$!
  echo "$rpid $wpid" > "$RUN/runner.pid"
  open_out4 "$fin"
  open_in3 "$fout"
  buf=
  turn=0
  alive=1
  while IFS= read -r line || [ -n "$line" ]; do
    await_prompt || { alive=0; break; }
    [ "$turn" -gt 0 ] && event turn_end "$i" "$turn"
    turn=$((turn + 1))
    arm "$i"
    printf '%s\n' "$line" >&4
    event turn_send "$i" "$turn"
    readn 1
    buf=$got
    [ -z "$buf" ] && { alive=0; break; }
    event turn_first "$i" "$turn"
  done < "$RUN/conv/$i.txt"
  if [ "$alive" -eq 1 ] && await_prompt; then
    event turn_end "$i" "$turn"
    # An empty line, or the end of its input (closed next), ends the conversation.
    [ "${END_LINE:-0}" = 1 ] && printf '\n' >&4
  else
    alive=0
  fi
  exec 4>&-
  cat <&3 >> "$ANS"
  exec 3<&-
  wait "$rpid"
  rc=$?
  rpid=
  end_watchdog
  rm -f "$RUN/tmp/watch.$i" "$fin" "$fout"
  finish_conversation "$i" "$rc" "$turn" "$alive"
}

# The answer in a one-shot runner's stdout, on one line, cut to ANSWER_CAP_WORDS words and
# then to ANSWER_CAP_BYTES bytes: the runner prints PROMPT_ECHO + the prompt + "\n" (where
# PROMPT_ECHO is set), streams the answer, then its figures from a line containing
# ANSWER_END (where set), which are no answer. Only a UTF-8 character the
# byte cut split is dropped: a lead byte followed by fewer continuation bytes than it
# announces (110xxxxx: 1, 1110xxxx: 2, 11110xxx: 3). A complete last character stays
# ("café" once lost its "é" here: issue 17 #12).
answer_of() {
  n=$(wc -c < "$2")
  e=${#PROMPT_ECHO}
  if [ "$e" -gt 0 ] && [ "$(head -c "$e" "$1")" = "$PROMPT_ECHO" ]; then tail -c +$((n + e + 2)) "$1"; else cat "$1"; fi |
    if [ -n "$ANSWER_END" ]; then sed "/$ANSWER_END/,\$d"; else cat; fi > "$RUN/tmp/answer.$i"
  set -f
  w=0
  cut=
  # shellcheck disable=SC2013 # words, not lines, on purpose
  for word in $(cat "$RUN/tmp/answer.$i"); do
    w=$((w + 1))
    [ "$w" -gt "$ANSWER_CAP_WORDS" ] && break
    cut="$cut${cut:+ }$word"
  done
  set +f
  rm -f "$RUN/tmp/answer.$i"
  printf '%s' "$cut" | head -c "$ANSWER_CAP_BYTES" |
    LC_ALL=C sed -e "s/[$UTF8_LEAD2]\$//" -e "s/[$UTF8_LEAD3][$UTF8_CONT]\{0,1\}\$//" \
      -e "s/[$UTF8_LEAD4][$UTF8_CONT]\{0,2\}\$//"
}
UTF8_LEAD2=$(printf '\300-\337')
UTF8_LEAD3=$(printf '\340-\357')
UTF8_LEAD4=$(printf '\360-\367')
UTF8_CONT=$(printf '\200-\277')

run_one_shot() {
  i=$1
  hist="$RUN/tmp/hist.$i"
  : > "$hist"
  event conv_start "$i" 0
  turn=0
  rc=0
  alive=1
  while IFS= read -r line || [ -n "$line" ]; do
    turn=$((turn + 1))
    k="$i.$turn"
    pf="$RUN/tmp/prompt.$k"
    fout="$RUN/tmp/out.$k"
    if [ -s "$hist" ]; then
      { cat "$hist"; printf 'User: %s' "$line"; } > "$pf"
    else
      printf '%s' "$line" > "$pf"
    fi
    rm -f "$fout" "$RUN/tmp/timeout.$i" "$RUN/tmp/timeout.$k"
    mkfifo "$fout"
    # One watchdog per runner process (per turn here), so none outlives its runner.
    arm "$k"
    event turn_send "$i" "$turn"
    # shellcheck disable=SC2086
    LD_LIBRARY_PATH="$ROOT/$RUNNER_DIR" "$ROOT/$RUNNER" ${MODEL_OPT:+"$MODEL_OPT"} "${MODEL_PREFIX:-}$ROOT/$MODEL" \
      $RUNNER_FLAGS "$PROMPT_FILE_PREFIX$pf" < /dev/null > "$fout" 2> "$RUN/err/$k.txt" &
    rpid=$!
    watchdog "$rpid" "$k" "$fout" &
    wpid=$!
    echo "$rpid $wpid" > "$RUN/runner.pid"
    open_in3 "$fout"
    readn 1
    first=$got
    [ -n "$first" ] && event turn_first "$i" "$turn"
    { printf '%s' "$first"; cat <&3; } > "$RUN/out/$k.txt"
    exec 3<&-
    wait "$rpid"
    rc=$?
    rpid=
    end_watchdog
    rm -f "$RUN/tmp/watch.$k" "$fout"
    [ -e "$RUN/tmp/timeout.$k" ] && mv -f "$RUN/tmp/timeout.$k" "$RUN/tmp/timeout.$i"
    # A runner that printed nothing did not answer this turn, whatever its exit status.
    [ -n "$first" ] && event turn_end "$i" "$turn"
    if [ "$rc" -ne 0 ] || [ -z "$first" ] || [ -e "$RUN/tmp/timeout.$i" ]; then
      alive=0
      break
    fi
    printf 'User: %s\nAssistant: %s\n' "$line" "$(answer_of "$RUN/out/$k.txt" "$pf")" >> "$hist"
    rm -f "$pf"
  done < "$RUN/conv/$i.txt"
  rm -f "$hist"
  finish_conversation "$i" "$rc" "$turn" "$alive"
}

mkdir -p "$RUN/out" "$RUN/err" "$RUN/done" "$RUN/tmp"
echo $$ > "$RUN/driver.pid"
echo running > "$RUN/status"
# RUN_DIR/stop (edgekit's stop, e.g. Ctrl-C) ends the run where it is, as a kill would;
# edgekit removes it before it starts or resumes a driver.
[ -e "$RUN/stop" ] && exit 0
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
    [ -e "$RUN/stop" ] && exit 0
    supplies
    [ -n "$sysfs_sup" ] || { dumpsys_supplies "$RUN/tmp/unplug"; sup=$dsup; }
    if [ -z "$sup" ]; then event unplug_unknown 0 0; break; fi
    ext_online
    [ -z "$ext" ] && { event unplugged 0 0; break; }
    [ "$waited" -ge "${UNPLUG_WAIT_S:-600}" ] && { event unplug_timeout 0 0; break; }
    nap 1
    waited=$((waited + 1))
  done
  nap "${SETTLE_S:-0}"
  event settled 0 0
fi

sh "$ROOT/$HARNESS/sampler.sh" "$RUN" &
spid=$!
echo "$spid" > "$RUN/sampler.pid"
if ! grep -q ',baseline_end,' "$RUN/events.csv" 2>/dev/null; then
  event baseline_start 0 0
  nap "$BASELINE_S"
  event baseline_end 0 0
fi
event workload_start 0 0
for conv in "$RUN"/conv/*.txt; do
  i=${conv##*/}
  i=${i%.txt}
  [ -e "$RUN/done/$i" ] && continue
  [ -e "$RUN/stop" ] && exit 0
  if [ "$PROTOCOL" = one_shot ]; then
    run_one_shot "$i"
  else
    run_multi_turn "$i"
  fi
  # A bundle or runner that fails its first conversation fails them all: stop there
  # (the host reports it), not after all of them, unless one finished before (a flaky crash).
  if [ ! -e "$RUN/done/$i" ] && [ -z "$(ls "$RUN/done" 2>/dev/null)" ]; then
    event first_failed "$i" 0
    break
  fi
done
event workload_end 0 0
if [ "$BASELINE_S" != 0 ]; then
  event baseline_after_start 0 0
  nap "$BASELINE_S"
  event baseline_after_end 0 0
fi
: > "$RUN/stop"
wait "$spid"
spid=
restore_phone
echo done > "$RUN/status"
