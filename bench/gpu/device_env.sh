# Sourced by the scripts that run on the GPU machine from /tmp/src (background_build.sh's snapshot
# of the tree), as bench/gpu/background_checks.sh's train.sh or after it: the environment its
# build left (the package in /tmp/lsite, the wheels in /tmp/site), a progress log, and the models
# joined from their carried parts.
set -uo pipefail
cd /tmp/src
export PYTHONPATH=/tmp/lsite:/tmp/site LONGSPEC_CACHE=/tmp/lscache PYTHONUNBUFFERED=1
SMOL=/tmp/lscache/models/SmolLM2-135M-Instruct.Q4_1.gguf  # joined by background_checks.sh
log() { echo "[$(date +%T)] $*" >> /tmp/bgout/progress; }
# joined_model NAME: prints /tmp/models/NAME, joined from /tmp/models/parts (sha256 checked) the
# first time.
joined_model() {
  local dest=/tmp/models/$1
  [ -e "$dest" ] || python3 /tmp/models/parts.py join /tmp/models/parts "$1" "$dest" >&2
  echo "$dest"
}
