#!/usr/bin/env bash
# Start munged + slurmctld + slurmd on localhost as root, without systemd, and wait until the
# node is idle. PIDs go to /run/munge/munged.pid, /run/slurmctld.pid, /run/slurmd.pid (stop.sh).
# usage: bash .ci/slurm/start.sh [dir with slurm.conf and gres.conf]   (default: this script's dir)
set -euo pipefail
SRC=${1:-$(cd "$(dirname "$0")" && pwd)}
install -d -m 755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cp "$SRC/slurm.conf" /etc/slurm/slurm.conf
if [ -f "$SRC/gres.conf" ]; then cp "$SRC/gres.conf" /etc/slurm/gres.conf; fi
# munge: Debian's postinst creates /etc/munge/munge.key; make one if it is missing.
install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null
alive /run/slurmctld.pid || /usr/sbin/slurmctld      # daemonizes, writes its PID file
alive /run/slurmd.pid || /usr/sbin/slurmd -N localhost
state=
for _ in $(seq 1 120); do                            # up to 60 s for the node to become usable
    state=$(sinfo -h -N -o '%t' 2>/dev/null || true)
    case "$state" in idle*|mix*|alloc*) break ;; esac
    sleep 0.5
done
case "$state" in
    idle*|mix*|alloc*) sinfo ;;
    *)
        echo "slurm node not ready: '$state'" >&2
        tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1 ;;
esac
