#!/bin/sh
# The lab guest's first stage (PID 1 in the initramfs, busybox only): load the virtio,
# 9p and overlay modules, mount the host's / read-only over 9p with a tmpfs overlay on
# it, give the new root its own /proc, /sys, /dev, /run, /tmp, securityfs and cgroup
# mounts, and switch_root into it (not chroot: the kernel refuses a new user namespace
# to a chrooted process) to run the repository's scripts/lab/guest.sh.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
  echo "lab-init: $*" > /dev/console
  echo o > /proc/sysrq-trigger
  sleep 60
}
for m in $(cat /modules/order); do
  insmod "/modules/$m" 2>/dev/null || grep -q "^${m%.ko} " /proc/modules || fail "insmod $m"
done
repo=
for word in $(cat /proc/cmdline); do
  case "$word" in
    lab.repo=*) repo=${word#lab.repo=} ;;
  esac
done
[ -n "$repo" ] || fail "no lab.repo= on the kernel command line"
opts=trans=virtio,version=9p2000.L,msize=524288,cache=loose
mount -t 9p -o "ro,$opts" hostroot /lower || fail "cannot mount the host's / over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || fail "cannot mount the overlay"
n=/newroot
mount -t proc proc $n/proc
mount -t sysfs sysfs $n/sys
mount -t securityfs securityfs $n/sys/kernel/security
mount -t cgroup2 cgroup2 $n/sys/fs/cgroup
mount -t devtmpfs devtmpfs $n/dev
mkdir -p $n/dev/pts $n/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $n/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $n/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $n/run
# a fresh /tmp, unless the repository lives there (CI clones into /tmp): then the
# overlay's own upper layer (a tmpfs too) takes the writes and the clone stays visible
case "$repo" in
  /tmp/*) ;;
  *) mount -t tmpfs -o mode=1777 tmpfs $n/tmp ;;
esac
mkdir -p $n/run/lab-out
mount -t 9p -o "$opts" labout $n/run/lab-out || fail "cannot mount the results share"
umount /proc/sys 2>/dev/null
umount /sys /dev
exec switch_root $n /bin/sh "$repo/scripts/lab/guest.sh" "$repo"
