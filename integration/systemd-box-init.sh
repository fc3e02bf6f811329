#!/bin/bash
# The inside of a systemd box (see systemd_box.py): run by `unshare --pid --fork --mount --net
# --uts --ipc --cgroup` as PID 1 of the new namespaces, already in the box's own cgroup. It
# builds a root for systemd and execs it:
#   /          an overlay: the host's / read-only below, a tmpfs above (every write vanishes)
#   /proc      fresh for the pid namespace; /proc/sys read-only but for /proc/sys/net (per netns)
#   /sys       fresh, read-only (so udev and friends stay off); cgroup2 rooted at the box cgroup
#   /dev       a small tmpfs with the usual character devices; /dev/console is our stdin (a pty)
#   /run /tmp  tmpfs
# and the host paths in $BOX_BIND at the same place, writable (the checkout and its venv).
# Units enabled on the host are masked, the files in $BOX_UNITS copied in.
set -euo pipefail
dir=$1
root=$dir/root
layer=$dir/layer

mount --make-rprivate /
mkdir -p "$root" "$layer"
mount -t tmpfs -o mode=755 box-layer "$layer"
mkdir "$layer/upper" "$layer/work"
mount -t overlay box-root -o "lowerdir=/,upperdir=$layer/upper,workdir=$layer/work" "$root"

mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro,nosuid,nodev,noexec "$root/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"

mount -t tmpfs -o mode=755,nosuid,size=4m box-dev "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
touch "$root/dev/console"
mount --bind "$(readlink -f /proc/self/fd/0)" "$root/dev/console"
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev box-shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
for n in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${n%%:*}" "$root/dev/${n#*:}"; done
mount -t tmpfs -o mode=755,nosuid,nodev box-run "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev box-tmp "$root/tmp"
for path in ${BOX_BIND:-}; do
    mkdir -p "$root$path"
    mount --rbind "$path" "$root$path"
done

units=$root/etc/systemd/system
for wants in /etc/systemd/system/*.wants/*; do
    unit=$(basename "$wants")
    case $unit in *.target) continue ;; esac  # a target only groups; masking one breaks boot
    ln -sfn /dev/null "$units/$unit"
done
for unit in console-getty.service getty@tty1.service systemd-pstore.service; do
    ln -sfn /dev/null "$units/$unit"
done
for unit in ${BOX_UNITS:-}; do cp "$unit" "$units/"; done
# a machine id of its own: the journal of the box is not the host's
tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
echo systemd-box >"$root/etc/hostname"
hostname systemd-box

cd "$root"
mkdir -p .host
pivot_root . .host
umount -l /.host
rmdir /.host
# without what would reach past the namespaces: the clock, kernel modules, raw devices, kmsg
exec setpriv --bounding-set -sys_time,-sys_module,-sys_rawio,-syslog,-wake_alarm \
    env -i container=systemd-box PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    /lib/systemd/systemd --unit=multi-user.target --log-target=console
