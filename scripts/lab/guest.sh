#!/bin/sh
# The lab guest's second stage, in the switched-to root (the host's / read-only under a
# tmpfs overlay): set up the chosen LSM, run pytest on tests/lab from the repository's
# .venv as root, leave the status and the JUnit report in the results share, power off.
repo=$1
out=/run/lab-out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 STOCKADE_LAB=1
lsm=$(sed -n 's/.* lab\.lsm=\([a-z]*\).*/\1/p' /proc/cmdline)
finish() {
  echo "$1" > "$out/status"
  sync
  echo o > /proc/sysrq-trigger
  # a builtin, not sleep(1): the 9p share that holds the binaries goes away now, and
  # PID 1 must not exit (the kernel would panic) while the power-off completes
  while :; do :; done
}
hostname stockade-lab 2>/dev/null
ip link set lo up 2>/dev/null
sysctl -q -w kernel.printk_ratelimit=0 kernel.dmesg_restrict=0 2>/dev/null
echo "lab: guest up ($(uname -r)), active LSMs: $(cat /sys/kernel/security/lsm)"
case "$lsm" in
  apparmor)
    grep -q apparmor /sys/kernel/security/lsm || finish "error: AppArmor is not active in the guest"
    ;;
  selinux)
    grep -q selinux /sys/kernel/security/lsm || finish "error: SELinux is not active in the guest"
    mount -t selinuxfs selinuxfs /sys/fs/selinux || finish "error: cannot mount selinuxfs"
    # Debian's reference policy, loaded permissive; the tests set enforcing around what
    # they prove (setenforce 1) and back.
    load_policy -i >/dev/null 2>&1 || finish "error: load_policy -i failed"
    echo "lab: SELinux policy loaded ($(cat /sys/fs/selinux/policyvers)), $(getenforce)"
    ;;
  *) finish "error: unknown lab.lsm '$lsm'" ;;
esac
cd "$repo" || finish "error: no repository at $repo"
echo "lab: guest ready at $(cut -d' ' -f1 /proc/uptime) s of uptime"
if [ -s "$out/command" ]; then  # LAB_COMMAND (bench/lab_bench.py): run it instead
  sh -c "$(cat "$out/command")"
  finish "rc=$?"
fi
# the chosen pytest arguments, one a line, as the user gave them
set --
if [ -s "$out/args" ]; then
  while IFS= read -r arg; do set -- "$@" "$arg"; done < "$out/args"
fi
# the tests' scratch on a tmpfs of the guest's own: when the repository lives under /tmp
# (CI), /tmp is the overlay on the 9p share, whose files SELinux sees as unlabeled_t and
# refuses to create under enforcing
mkdir -p /run/lab-scratch && mount -t tmpfs -o mode=1777 tmpfs /run/lab-scratch
export TMPDIR=/run/lab-scratch
.venv/bin/python -m pytest -q -p no:cacheprovider -o addopts= --color=no -rfE \
  --basetemp=/run/lab-scratch/pytest --junitxml="$out/junit.xml" "tests/lab/test_$lsm.py" "$@"
finish "rc=$?"
