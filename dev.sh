#!/usr/bin/env bash
# crossloop's two set-up commands, each self-contained on a fresh machine:
#   ./dev.sh mnist [options]          train on MNIST (examples/mnist.py)
#   ./dev.sh test  [pytest options]   run the test suite
# and for contributors:
#   ./dev.sh lint  [ruff options]     check the tree with ruff (configured in pyproject.toml)
# The first run creates .venv and installs crossloop with every extra, pinned by
# constraints.txt (a CPU build of torch, tensorflow-cpu on x86_64). MNIST is found
# through $CROSSLOOP_DATA (a folder holding mnist/), the cache, or a download.
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

stamp=.venv/.crossloop-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "dev.sh: installing crossloop[dev] into .venv (pinned by constraints.txt)" >&2
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
    touch "$stamp"
fi

command="${1:-}"
shift || true
case "$command" in
    mnist) exec .venv/bin/python examples/mnist.py "$@" ;;
    test)  exec .venv/bin/python -m pytest "$@" ;;
    lint)  exec .venv/bin/ruff check "$@" . ;;
    *) echo "usage: ./dev.sh mnist [--backend torch|tensorflow ...] | ./dev.sh test [pytest args]" \
            "| ./dev.sh lint" >&2
       exit 2 ;;
esac
