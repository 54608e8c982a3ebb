#!/usr/bin/env bash
# The LSM lab: boot a guest of the installed Debian kernel with AppArmor (or SELinux)
# active, over the host's / (read-only, 9p, tmpfs overlay), run tests/lab/test_<lsm>.py
# there as root with the repository's .venv, stream the output, exit with their status.
#   scripts/lab/run.sh [apparmor|selinux]... [-- PYTEST-ARGS...]   (both when none given)
# Ends with one line per LSM: "<lsm>: N passed, N failed".
# LAB_TIMEOUT (seconds per guest, default 1500), LAB_MEMORY (MiB, default 2048),
# LAB_COMMAND (a shell command the guest runs instead of the tests: bench/lab_bench.py).
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
lsms=()
while [ $# -gt 0 ]; do
  case "$1" in
    apparmor|selinux) lsms+=("$1"); shift ;;
    --) shift; break ;;
    *) echo "usage: scripts/dev lab [apparmor|selinux]... [-- PYTEST-ARGS...]" >&2; exit 2 ;;
  esac
done
[ ${#lsms[@]} -gt 0 ] || lsms=(apparmor selinux)
pytest_args=("$@")

# The newest installed kernel that has its modules (linux-image-amd64's).
kver=
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
  if [ -f "/lib/modules/$k/modules.dep" ]; then kver=$k; break; fi
done
if [ -z "$kver" ] || ! command -v qemu-system-x86_64 >/dev/null; then
  echo "lab: needs qemu-system-x86 and linux-image-amd64 (bash scripts/dev setup as root)" >&2
  exit 1
fi
[ -x "$repo/.venv/bin/python" ] || { echo "lab: no .venv (bash scripts/dev setup)" >&2; exit 1; }

work=$(mktemp -d /tmp/stockade-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
bash "$repo/scripts/lab/build_initramfs.sh" "$kver" "$work/initramfs.gz" || exit 1
# KVM when the host offers it (qemu tries the accelerators in order), else TCG.
accel=(-accel tcg,thread=multi)
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  accel=(-accel kvm "${accel[@]}")
fi
echo "lab: kernel $kver, accelerator ${accel[1]%%,*}, initramfs built in $(( $(date +%s) - start )) s"

status=0
summary=()
for lsm in "${lsms[@]}"; do
  out="$work/out-$lsm"
  mkdir -p "$out"
  # one argument a line: the guest rebuilds the list as given (quoting intact)
  [ ${#pytest_args[@]} -eq 0 ] || printf '%s\n' "${pytest_args[@]}" > "$out/args"
  # LAB_COMMAND: a shell command the guest runs in the repository instead of the tests
  printf '%s' "${LAB_COMMAND:-}" > "$out/command"
  case "$lsm" in
    apparmor) lsm_args="security=apparmor apparmor=1" ;;
    selinux) lsm_args="security=selinux selinux=1 enforcing=0" ;;
  esac
  t0=$(date +%s)
  echo "lab: booting the $lsm guest"
  timeout --foreground -k 10 "${LAB_TIMEOUT:-1500}" qemu-system-x86_64 \
    "${accel[@]}" -cpu max -smp 2 -m "${LAB_MEMORY:-2048}" -nodefaults -no-reboot \
    -display none -vga none -serial stdio -monitor none \
    -kernel "/boot/vmlinuz-$kver" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 $lsm_args lab.repo=$repo lab.lsm=$lsm" \
    -virtfs "local,path=/,mount_tag=hostroot,readonly=on,security_model=none,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=labout,security_model=none" \
    < /dev/null | sed -u 's/\r$//'
  qrc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - t0 ))
  guest=$(cat "$out/status" 2>/dev/null || echo "error: the guest ended without a status (qemu exit $qrc)")
  counts=$(python3 - "$out/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0"); raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = lambda k: sum(int(s.get(k, 0)) for s in suites)
failed = n("failures") + n("errors")
print(n("tests") - failed - n("skipped"), failed, n("skipped"))
PY
)
  read -r passed failed skipped <<< "$counts"
  echo "lab: $lsm guest done in ${secs} s: $guest${skipped:+ (skipped: $skipped)}"
  if [ "$guest" != "rc=0" ]; then
    status=1
    # a guest that never reported counts as one failure, never as a pass
    [ "$failed" = 0 ] && failed=1
  fi
  summary+=("$lsm: $passed passed, $failed failed")
done
echo "lab: total $(( $(date +%s) - start )) s"
printf '%s\n' "${summary[@]}"
exit $status
