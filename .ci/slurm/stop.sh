#!/usr/bin/env bash
# Stop the localhost cluster of .ci/slurm/start.sh: cancel jobs still queued or running (the
# cluster exists only for the tests), then stop slurmd, slurmctld and munged by their PID files.
if [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
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
