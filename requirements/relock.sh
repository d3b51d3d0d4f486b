#!/usr/bin/env bash
# Regenerate requirements.lock: every extra of pyproject.toml plus the CPU torch pin, resolved by pip itself
# (pip-tools), so this machine's pip config (find-links holding the CPU torch wheel) applies.
#   bash requirements/relock.sh             keep the pins that still fit, add what is new
#   bash requirements/relock.sh --upgrade   move every pin to the newest release pyproject admits
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_TOOLS=pip-tools==7.6.2

python -m piptools --version >/dev/null 2>&1 || python -m pip install -q "$PIP_TOOLS"

# --strip-extras: a constraints file (pip install -c) may not name extras. --unsafe-package reckoning: the
# extra `dev` names the project itself, which must not become a pin (and setuptools, a torch dependency, must).
CUSTOM_COMPILE_COMMAND="bash requirements/relock.sh" python -m piptools compile \
  --quiet --all-extras --strip-extras --unsafe-package reckoning \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements.lock "$@" \
  pyproject.toml requirements/torch.in

# The CPU wheel resolves as torch==X+cpu; pin the public version, which a CUDA build satisfies too.
sed -i -E 's/^(torch==[^+ ]+)\+[A-Za-z0-9.]+/\1/' requirements.lock
python requirements/check_lock.py --stamp
