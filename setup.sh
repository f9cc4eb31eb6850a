#!/usr/bin/env bash
# Set up rmsd on a fresh machine: a virtual environment in .venv with the pinned stack
# (torch 2.14.1 + torchvision 0.29.1 run on CPU; everything comes from PyPI).
# Usage: bash setup.sh            (then: .venv/bin/snakemake --cores all)
#        RMSD_EXTRAS=test bash setup.sh   (adds the test tools)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# DS_BUILD_OPS=0: DeepSpeed compiles its ops on first use instead of at install time.
DS_BUILD_OPS=0 .venv/bin/python -m pip install -q -e ".[${RMSD_EXTRAS:-test}]"
.venv/bin/python -c "import torch, torchvision, transformers, decord, av, snakemake; print('rmsd environment ready: torch', torch.__version__, '| transformers', transformers.__version__, '| snakemake', snakemake.__version__)"
