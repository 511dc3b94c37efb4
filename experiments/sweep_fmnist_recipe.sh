#!/usr/bin/env bash
# The Fashion-MNIST recipe sweep behind configs/pikelpn.py:fmnist (table in docs/training.md).
#
#   bash experiments/sweep_fmnist_recipe.sh OUT_DIR [JOBS]
#
# Runs each variant (2000 steps, overrides on top of the current `fmnist` config) JOBS at a time
# (default 1; on one GPU we ran 8 at once with XLA_PYTHON_CLIENT_MEM_FRACTION=0.1) and prints
# one line per run: name, final step, Fashion-MNIST test top-1, ACEv2 per image. Logs and workdirs
# land in OUT_DIR. Note that the table's rows were run against the config *before* it adopted
# the winning overrides (dq_round=nearest, a_calibration=lsq): pass BASE="--config.model.dq_round=auto
# --config.model.quant.a_calibration=ema" to reproduce that baseline.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: sweep_fmnist_recipe.sh OUT_DIR [JOBS]}
jobs=${2:-1}
base=${BASE:-}
mkdir -p "$out"

variants=(
  "none|"
  "flip|--config.dataset.augment=flip"
  "flip_shift|--config.dataset.augment=flip_shift"
  "ls0|--config.label_smoothing=0.0"
  "lr2e2|--config.learning_rate=2e-2"
  "stem1_w025|--config.model.stem_stride=1 --config.model.width=0.25"
  "nearest|--config.model.dq_round=nearest"
  "lsq|--config.model.quant.a_calibration=lsq"
  "nearest_lsq|--config.model.dq_round=nearest --config.model.quant.a_calibration=lsq"
  "a8|--config.model.quant.a_bits=8"
)

run() {
  local name=$1 overrides=$2
  # shellcheck disable=SC2086
  python main.py --config configs/pikelpn.py:fmnist --workdir "$out/$name" \
    --config.num_train_steps=2000 --config.eval_every_steps=2000 \
    --config.checkpoint_every_steps=2000 $base $overrides > "$out/$name.log" 2>&1
  python - "$out/$name/results.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<14} step {r['step']}  top-1 {100 * r['eval_top1']:.2f} %  ACEv2 {r['acev2'] / 1e6:.1f}M")
PY
}

for v in "${variants[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run "${v%%|*}" "${v#*|}" &
done
wait
