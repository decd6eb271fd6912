# clock.sh: sourced by driver.sh and sampler.sh, as supply.sh is. The device's monotonic clock
# and a wait without a fork, both with the shell's own builtins.
#
# now: $NOW = milliseconds on the monotonic clock (/proc/uptime, 10 ms ticks).
now() {
  read -r up _rest < /proc/uptime
  s=${up%.*}; f=${up#*.}; f=${f#0}
  NOW=$((s * 1000 + ${f:-0} * 10))
}

# quiet_fifo PATH: fd 9 = a FIFO nobody writes to: made at PATH, opened read-write (such an
# open does not wait), unlinked at once. Fails, fd 9 untouched, if mkfifo does.
quiet_fifo() {
  rm -f "$1"
  mkfifo "$1" 2>/dev/null || return 1
  exec 9<> "$1"
  rm -f "$1"
}

# read_t: does this shell's `read -t` time out on fd 9 (status > 128, as mksh, Android's sh,
# does)? Then `read -t S _x <&9` waits S seconds without a fork; elsewhere sleep(1) must.
read_t() {
  read -t 0.01 _x <&9 2>/dev/null
  [ $? -gt 128 ]
}
