#!/usr/bin/env bash
# Set up rmsd on a fresh machine: a virtual environment in .venv with the pinned stack
# (torch 2.14.1 + torchvision 0.29.1 run on CPU; everything comes from PyPI).
# Usage: bash setup.sh            (then: .venv/bin/snakemake --cores all)
#        RMSD_EXTRAS=test bash setup.sh   (adds the test tools)
#        bash setup.sh --vllm     (or RMSD_VLLM_VENV=1 bash setup.sh): also builds .venv-vllm, the
#                                 vLLM environment of envs/vllm.yaml (vLLM 0.33, torch 2.14.0,
#                                 transformers 5.20.2, numpy 2.3.5: it cannot share .venv with the
#                                 Slurm executor plugin); then set envs.vllm_python: .venv-vllm/bin/python
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VLLM=${RMSD_VLLM_VENV:-0}
for arg in "$@"; do
    case "$arg" in
        --vllm) VLLM=1 ;;
        *) echo "setup.sh: unknown option $arg (valid: --vllm)" >&2; exit 2 ;;
    esac
done
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# DS_BUILD_OPS=0: DeepSpeed compiles its ops on first use instead of at install time.
DS_BUILD_OPS=0 .venv/bin/python -m pip install -q -e ".[${RMSD_EXTRAS:-test}]"
.venv/bin/python -c "import torch, torchvision, transformers, decord, av, snakemake; print('rmsd environment ready: torch', torch.__version__, '| transformers', transformers.__version__, '| snakemake', snakemake.__version__)"
if [ "$VLLM" = 1 ]; then
    if [ ! -x .venv-vllm/bin/python ]; then
        "$PY" -m venv .venv-vllm
    fi
    .venv-vllm/bin/python -m pip install -q --upgrade pip
    # the pip pins of envs/vllm.yaml (read with the main environment's PyYAML), then the project
    # itself without its own pins (they are the main environment's)
    .venv/bin/python -c "import yaml; d = yaml.safe_load(open('envs/vllm.yaml'))['dependencies']; print('\n'.join(next(x['pip'] for x in d if isinstance(x, dict))))" > .venv-vllm/requirements.txt
    DS_BUILD_OPS=0 .venv-vllm/bin/python -m pip install -q -r .venv-vllm/requirements.txt
    .venv-vllm/bin/python -m pip install -q --no-deps -e .
    .venv-vllm/bin/python -c "import vllm, torch, transformers, numpy; print('vLLM environment ready: vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| numpy', numpy.__version__, '\nset envs.vllm_python: .venv-vllm/bin/python in your config')"
fi
