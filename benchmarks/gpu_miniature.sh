#!/usr/bin/env bash
# The one-GPU miniature: target `all` of config/gpu.yaml on a lent H200 (device tool), in one call.
#
#   bash benchmarks/gpu_miniature.sh      # from the repository root; $OUT receives the results
#
# The machine has Python 3.12 with torch and transformers but no Snakemake, PyAV or jsonschema:
# they travel in .gpu_site/ (not committed; named in the call's `carry`):
#   .gpu_site/site/      pure-Python packages (snakemake + plugins/interfaces and their
#                        dependencies, jsonschema, math-verify, ...), first on PYTHONPATH;
#   .gpu_site/wheels/    cp312/abi3 manylinux wheels of the compiled ones (av, pydantic-core,
#                        sqlalchemy, greenlet, immutables, rpds-py), installed into $SITE;
#   .gpu_site/fallback/  typing_extensions, used only if the preflight import fails without it.
# pulp is not shipped: Snakemake runs with --scheduler greedy (the ILP scheduler needs pulp).
#
# Wall-clock guard: the whole script ends within $BUDGET_S seconds (default 570, inside the device
# tool's 600 s per call): Snakemake gets SIGINT once the budget minus the setup time minus 30 s is
# spent (or after $GUARD_S seconds if set), and whatever exists is packed anyway. Resumable: run
# the script again on the still-warm machine (results/, .snakemake/ and $SITE survive there) and
# it continues with --rerun-incomplete, skipping finished jobs.
#
# Packs ONE file, $OUT/gpu_miniature.tar.gz: results/tables, results/figures/*.png,
# results/benchmarks, per-job summaries and metrics, the Snakemake log, nvidia-smi samples and the
# logs of failed jobs. Prints Table 1, the comparisons table and the elapsed time last.
#
# Knobs (environment): BUDGET_S (560), GUARD_S (derived from BUDGET_S), GPU_JOBS (20 GPU jobs
# share the GPU at once), CORES (24), CONFIG (config/gpu.yaml), TARGET (all), SITE (/tmp/site),
# PYTHON (python3), OUT (set by the device tool; else results/gpu_miniature_out).
set -u

# The body is one function, read whole before it runs (editing the file mid-run cannot change it).
main() {
    cd "$(dirname "$0")/.." || exit 1
    local ROOT=$PWD
    local OUT=${OUT:-$ROOT/results/gpu_miniature_out}
    local BUDGET_S=${BUDGET_S:-560} GPU_JOBS=${GPU_JOBS:-20} CORES=${CORES:-24}
    local CONFIG=${CONFIG:-config/gpu.yaml} TARGET=${TARGET:-all} SITE=${SITE:-/tmp/site}
    local PY=${PYTHON:-python3}
    local LOG=results/logs/gpu_miniature_snakemake.log SMI_CSV=results/logs/gpu_miniature_nvidia_smi.csv
    mkdir -p "$OUT" results/logs
    local T0; T0=$(date +%s)
    echo "== start $(date -u +%FT%TZ) on $(hostname): $CONFIG, target $TARGET, budget ${BUDGET_S} s," \
         "$GPU_JOBS GPU jobs at once"
    nvidia-smi 2>&1 | head -20

    # --- environment -------------------------------------------------------------------------
    if [ -d .gpu_site/wheels ] && [ ! -f "$SITE/.rmsd_installed" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
            .gpu_site/wheels/*.whl && touch "$SITE/.rmsd_installed" || echo "!! wheel install failed"
    fi
    export PYTHONPATH="$ROOT/.gpu_site/site:$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
        TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
    local PREFLIGHT='import snakemake, snakemake.persistence, snakemake.cli, jsonschema, sqlmodel, av
import yaml, torch, transformers
print("preflight: snakemake", snakemake.__version__, "| av", av.__version__, "| torch",
      torch.__version__, "cuda", torch.cuda.is_available(), "| transformers", transformers.__version__)'
    if ! "$PY" -c "$PREFLIGHT" 2>"$OUT/preflight.err"; then
        echo "preflight failed (tail below); retrying with .gpu_site/fallback first"
        tail -3 "$OUT/preflight.err"
        export PYTHONPATH="$ROOT/.gpu_site/fallback:$PYTHONPATH"
        "$PY" -c "$PREFLIGHT" || echo "!! preflight failed"
    fi
    local GUARD=${GUARD_S:-$(( BUDGET_S - ($(date +%s) - T0) - 30 ))}
    echo "== setup done after $(( $(date +%s) - T0 )) s; snakemake guard ${GUARD} s"

    # --- run (guarded, resumable) ------------------------------------------------------------
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 \
        >> "$SMI_CSV" 2>/dev/null &
    local SMI=$!
    touch "$LOG"
    local L0; L0=$(wc -l < "$LOG")
    echo "== snakemake $(date -u +%FT%TZ) (log: $LOG)" | tee -a "$LOG"
    local T1; T1=$(date +%s)
    timeout -s INT -k 15 "$GUARD" "$PY" -m snakemake "$TARGET" --cores "$CORES" --scheduler greedy \
        --resources gpu="$GPU_JOBS" --keep-going --rerun-incomplete --nolock --configfile "$CONFIG" \
        >> "$LOG" 2>&1
    local RC=$?
    local T2; T2=$(date +%s)
    kill "$SMI" 2>/dev/null
    local RUNLOG; RUNLOG=$(mktemp)
    tail -n +"$(( L0 + 1 ))" "$LOG" > "$RUNLOG"
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        echo "!! stopped by the ${GUARD} s guard (rc $RC): run the script again to resume"
    fi
    echo "== snakemake rc $RC after $(( T2 - T1 )) s: $(grep -c '^Finished jobid' "$RUNLOG") jobs" \
         "finished, $(grep -c '^Error in rule' "$RUNLOG") failed in this call;" \
         "$(grep -E '^[0-9]+ of [0-9]+ steps' "$RUNLOG" | tail -1)"
    grep -A12 '^Error in rule' "$RUNLOG" | grep -E '^Error in rule|^ +log:' | head -40
    grep -E '^[A-Za-z]*(Error|Exception)' "$RUNLOG" | grep -v '^Error in rule' | sort | uniq -c | head -5

    # --- pack --------------------------------------------------------------------------------
    local FAILED_LOGS; FAILED_LOGS=$(grep -A12 '^Error in rule' "$RUNLOG" \
        | sed -n 's/^ *log: \([^ ]*\).*/\1/p' | tr ',' '\n' | sort -u)
    rm -f "$RUNLOG"
    local LIST; LIST=$(mktemp)
    {
        echo "$LOG"; echo "$SMI_CSV"; echo "$CONFIG"
        for p in results/tables results/benchmarks results/logs/models_teacher \
                 results/logs/models_student_base; do
            [ -e "$p" ] && echo "$p"
        done
        ls results/figures/*.png 2>/dev/null
        find results/models results/train -maxdepth 3 \( -name summary.json -o -name train_log.jsonl \
            -o -name config.resolved.yaml \) 2>/dev/null
        find results/eval -name metrics.json 2>/dev/null
        find results/scored results/select -name '*.json' 2>/dev/null
        for f in $FAILED_LOGS; do [ -e "$f" ] && echo "$f"; done
    } > "$LIST"
    tar -czf "$OUT/gpu_miniature.tar.gz" -T "$LIST" 2>/dev/null
    rm -f "$LIST"
    echo "== packed $OUT/gpu_miniature.tar.gz ($(du -h "$OUT/gpu_miniature.tar.gz" | cut -f1))"
    awk -F', ' '{gsub(/ %/, "", $2); s += $2; if ($2 + 0 > 0) n++}
        END {if (NR) printf "GPU utilisation (all calls): mean %.0f%% over %d samples of 5 s, %d busy\n",
                            s / NR, NR, n}' "$SMI_CSV" 2>/dev/null

    # --- tables and time, last ---------------------------------------------------------------
    for t in main comparisons; do
        echo "== results/tables/$t.md"
        cat "results/tables/$t.md" 2>/dev/null || echo "(not built)"
    done
    echo "== elapsed: snakemake $(( T2 - T1 )) s, whole script $(( $(date +%s) - T0 )) s on" \
         "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
}

main "$@"
exit 0
