#!/usr/bin/env bash
# Stop slurmd, slurmctld and munged started by .ci/slurm/start.sh, by their PID files (no pkill).
for pf in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop.sh: $pf ($pid) still running after 10 s; sending SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
done
