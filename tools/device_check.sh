#!/usr/bin/env bash
# GPU check of opformer-jax, sized for <= 8 minutes on one H100 / H200 (the
# step limits add up to 470 s).
#
#   tools/device_check.sh            # on the GPU machine, from the repo root
#   tools/device_check.sh --dry-run  # the same path on CPU at tiny sizes
#
# Steps (each under its own time limit, each recorded even when it fails):
#   1. install `.[cuda12,test]` (skipped by --dry-run; offline, it installs
#      wheels from $WHEELS_DIR, default .whl/, and keeps the JAX already
#      there);
#   2. the model, training and evaluation tests on the GPU;
#   3. tools/benchmark.py, bf16 + cuDNN attention, at T=243 batch 32 and
#      T=27 batch 256 (train step, inference, GFLOP/s, fraction of the
#      measured and of the nominal bf16 peak, device memory);
#   4. one full epoch of 17,748 random clips at T=243, batch 32 (the size
#      of a Human3.6M epoch), timed end to end with host->device copies.
# Writes $OUT/device_check.json and $OUT/device_check.md (OUT defaults to
# runs/device_check) and the logs of every step beside them.
set -uo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/device_check}"
mkdir -p "$OUT"
PY="${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
export PYTHONUNBUFFERED=1
STATUS="$OUT/steps.tsv"
: > "$STATUS"

# Compiled programs are cached on disk: the dry run's three tools share one.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-${OPFORMER_JAX_CACHE:-$HOME/.cache/opformer_jax/jax}}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5
if (( DRY )); then
  export JAX_PLATFORMS=cpu
  PLATFORM=cpu
  TESTS=(tests/model_test.py::test_gelu_is_the_exact_erf_gelu)
  TINY=(--config=configs/h36m.py:t27 --batch=2 --config.model.depth=1
        --config.model.dim=32 --config.model.num_heads=4)
  BENCH_A=("${TINY[@]}")
  BENCH_B=("${TINY[@]}")
  EPOCH=("${TINY[@]}" --epoch_clips=6)
  PRECISION=()
  LIMIT_ENV=120; LIMIT_TESTS=300; LIMIT_BENCH=300; LIMIT_EPOCH=300
else
  PLATFORM=cuda
  TESTS=(tests/model_test.py tests/train_test.py tests/evaluate)
  BENCH_A=(--config=configs/h36m.py --batch=32)
  BENCH_B=(--config=configs/h36m.py:t27 --batch=256)
  EPOCH=(--config=configs/h36m.py --batch=32 --epoch_clips=17748)
  PRECISION=(--config.model.dtype=bfloat16 --config.model.attention_impl=cudnn)
  # With the install (60 s) the limits add up to 470 s.
  LIMIT_ENV=30; LIMIT_TESTS=70; LIMIT_BENCH=50; LIMIT_EPOCH=210
fi

# step NAME LIMIT_S CMD...: runs CMD with a time limit, logs to $OUT/NAME.log.
step() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit} s): $*"
  timeout --signal=INT --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STATUS"
  tail -n 5 "$OUT/$name.log"
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
}

if (( ! DRY )); then
  # Online: the pinned stack with CUDA 12 JAX. Offline (a lent machine
  # reaches no index): wheels carried in $WHEELS_DIR, then only the package
  # itself over the JAX / Flax already installed there.
  export PY WHEELS_DIR="${WHEELS_DIR:-.whl}"
  step install 60 bash -c '
    if [[ -d "$WHEELS_DIR" ]]; then
      "$PY" -m pip install -q --no-index --no-deps "$WHEELS_DIR"/*.whl || exit 1
    fi
    "$PY" -m pip install -q --retries 0 --timeout 15 -e ".[cuda12,test]" ||
      "$PY" -m pip install -q --no-build-isolation --no-deps -e .'
fi
step environment "$LIMIT_ENV" "$PY" - <<'EOF'
import jax, platform
print("python", platform.python_version(), "jax", jax.__version__)
print("backend", jax.default_backend(), "devices", jax.devices())
import flax, grain, optax, orbax.checkpoint, ml_collections
print("flax", flax.__version__, "optax", optax.__version__)
EOF
# tests/conftest.py defaults JAX_PLATFORMS to cpu: name the platform.
step tests "$LIMIT_TESTS" env JAX_PLATFORMS="$PLATFORM" "$PY" -m pytest -q \
    -x -p no:cacheprovider "${TESTS[@]}"
# A GPU takes the whole batch of 32 at once: no gradient accumulation.
step bench_t243 "$LIMIT_BENCH" "$PY" tools/benchmark.py "${BENCH_A[@]}" \
    "${PRECISION[@]}" --config.train.accum_steps=1 --steps=5 \
    --pipeline=false --json="$OUT/bench_t243.json"
step bench_t27 "$LIMIT_BENCH" "$PY" tools/benchmark.py "${BENCH_B[@]}" \
    "${PRECISION[@]}" --config.train.accum_steps=1 --steps=5 \
    --pipeline=false --peak=$(( ! DRY )) --json="$OUT/bench_t27.json"
step epoch_t243 "$LIMIT_EPOCH" "$PY" tools/benchmark.py "${EPOCH[@]}" \
    "${PRECISION[@]}" --config.train.accum_steps=1 --inference=false \
    --pipeline=false --peak=false --epoch --json="$OUT/epoch_t243.json"

# The report: every step's status and the figures of the JSON files.
"$PY" - "$OUT" "$DRY" <<'EOF'
import json, os, sys
out, dry = sys.argv[1], sys.argv[2] == "1"
nan = float("nan")
steps = [l.rstrip("\n").split("\t") for l in open(f"{out}/steps.tsv")]
res = {"dry_run": dry, "steps": {n: {"exit": int(rc), "seconds": int(s)}
                                 for n, rc, s in steps}}
for name in ("bench_t243", "bench_t27", "epoch_t243"):
  path = f"{out}/{name}.json"
  res[name] = json.load(open(path)) if os.path.exists(path) else None
tests = open(f"{out}/tests.log").read().strip().splitlines()
res["tests_summary"] = tests[-1] if tests else ""
with open(f"{out}/device_check.json", "w") as f:
  json.dump(res, f, indent=1)

md = [f"# opformer-jax device check{' (DRY RUN: CPU, tiny sizes)' * dry}", ""]
b = res["bench_t243"] or res["bench_t27"] or res["epoch_t243"] or {}
md += [f"Device: {b.get('device', '?')} ({b.get('backend', '?')}), jax "
       f"{b.get('jax', '?')}; host CPU {b.get('cpu', '?')}.", "",
       "| step | exit | seconds |", "|---|---:|---:|"]
md += [f"| {n} | {v['exit']} | {v['seconds']} |"
       for n, v in res["steps"].items()]
md += ["", f"Tests: {res['tests_summary']}", "",
       "| run | T | batch | train step ms | train GFLOP/s | of measured "
       "peak | of nominal peak | inference ms | device peak MB |",
       "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for name in ("bench_t243", "bench_t27"):
  r = res[name]
  if not r or "train" not in r:
    md.append(f"| {name} | | | failed (see {name}.log) | | | | | |")
    continue
  tr, inf = r["train"], r.get("inference", {})
  peak = r.get("matmul_peak", {}).get("gflops_median")
  nominal = r.get("nominal_peak_gflops")
  md.append(
      f"| {name} | {r['T']} | {r['batch']} | "
      f"{tr['timing']['median_s'] * 1e3:.1f} | {tr['gflops']:.0f} | "
      f"{tr['gflops'] / peak if peak else nan:.2f} | "
      f"{tr['gflops'] / nominal if nominal else nan:.2f} | "
      f"{inf.get('timing', {}).get('median_s', nan) * 1e3:.1f} | "
      f"{r['memory'].get('device_peak_mb', nan):.0f} |")
e = (res["epoch_t243"] or {}).get("epoch")
md += ["", (f"One epoch: {e['clips']} clips at T={res['epoch_t243']['T']}, "
            f"batch {res['epoch_t243']['batch']}: {e['seconds']:.1f} s "
            f"({e['seconds'] / 60:.2f} min), {e['clips_per_s']:.1f} clips/s, "
            f"{e['gflops']:.0f} GFLOP/s." if e else
            "One epoch: failed (see epoch_t243.log).")]
with open(f"{out}/device_check.md", "w") as f:
  f.write("\n".join(md) + "\n")
print("\n".join(md))
EOF
