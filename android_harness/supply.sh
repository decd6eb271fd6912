# supply.sh: sourced by sampler.sh and driver.sh. Defines `supplies`, which sets $sup to every
# power supply whose `online` is readable, as name:type:online joined by `+` (no fork: the
# shell's own glob and `read`). Kernel ABI (Documentation/ABI/testing/sysfs-class-power):
# `online` 0/1 (2 on some USB drivers) = connected; `type` Battery, UPS, Mains, USB, Wireless...
# Empty when none is readable (SELinux or an old kernel): then $dsup, the fallback that
# `dumpsys_supplies` reads from `dumpsys battery` (AOSP BatteryService dump: "AC powered:",
# "USB powered:", "Wireless powered:", "Dock powered:"), one fork, called rarely.
PS=${DEVICE_ROOT:-}/sys/class/power_supply
dsup=

supplies() {
  sup=
  sysfs_sup=
  for d in "$PS"/*; do
    [ -r "$d/online" ] || continue
    o=
    read -r o 2>/dev/null < "$d/online" || continue
    ty=
    [ -r "$d/type" ] && read -r ty 2>/dev/null < "$d/type"
    sup="$sup${sup:++}${d##*/}:$ty:$o"
  done
  if [ -n "$sup" ]; then sysfs_sup=1; else sup=$dsup; fi
}

# dumpsys_supplies FILE: `dumpsys battery` into FILE, then $dsup from its "X powered:" lines.
dumpsys_supplies() {
  dsup=
  dumpsys battery > "$1" 2>/dev/null || return 0
  while IFS= read -r l; do
    case $l in
      *" powered: "*)
        k=${l%% powered:*}; k=${k##* }; v=${l##*powered: }
        case $v in true) v=1 ;; false) v=0 ;; *) continue ;; esac
        dsup="$dsup${dsup:++}dumpsys-$k::$v"
        ;;
    esac
  done < "$1"
}
