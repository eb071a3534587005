#!/usr/bin/env bash
# Runs the official TFLite/LiteRT `benchmark_model` binary on an Android device over adb:
# CPU with --num_threads=1, then the GPU delegate (--use_gpu=true). See README.md beside it.
#
# Usage: tflite/android/run_benchmark.sh MODEL.tflite [BENCHMARK_MODEL_BINARY]
#
# Environment (all optional):
#   BENCHMARK_MODEL   local benchmark_model binary (default ./android_aarch64_benchmark_model)
#   ADB               adb executable (default: adb from PATH)
#   ANDROID_SERIAL    device serial when several are attached (adb reads it too)
#   DEVICE_DIR        working directory on the device (default /data/local/tmp/ghostnet_bench)
#   NUM_RUNS          timed runs (default 50); WARMUP_RUNS (default 10)
#   RUN_TIMEOUT_S     limit for one benchmark run (default 300); ADB_TIMEOUT_S for the other
#                     adb calls (default 60)
#   OUT_DIR           where logs go (default ./android_benchmark_<model name>)
#   SKIP_GPU=1        CPU only; EXTRA_FLAGS: more benchmark_model flags, e.g.
#                     "--enable_op_profiling=true"
#
# Exit codes: 0 ok; 2 usage / missing file; 3 missing tool (adb, timeout); 4 no usable device;
# 5 an adb transfer failed or timed out; 6 the CPU or GPU benchmark run failed or timed out.
set -uo pipefail

die() {
  local code=$1
  shift
  echo "run_benchmark.sh: error: $*" >&2
  exit "$code"
}

if [[ $# -lt 1 || $# -gt 2 || $1 == "-h" || $1 == "--help" ]]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

command -v timeout >/dev/null 2>&1 ||
  die 3 "'timeout' (GNU coreutils) not found: it is required so that no adb call can hang."
ADB=${ADB:-adb}
command -v "$ADB" >/dev/null 2>&1 ||
  die 3 "adb not found (ADB=$ADB, PATH=$PATH). Install Android SDK platform-tools" \
    "(https://developer.android.com/tools/releases/platform-tools) and put adb on PATH."

MODEL=$1
BINARY=${2:-${BENCHMARK_MODEL:-./android_aarch64_benchmark_model}}
[[ -f $MODEL ]] || die 2 "model file not found: $MODEL"
[[ -f $BINARY ]] || die 2 "benchmark_model binary not found: $BINARY (see tflite/android/README.md)"

DEVICE_DIR=${DEVICE_DIR:-/data/local/tmp/ghostnet_bench}
NUM_RUNS=${NUM_RUNS:-50}
WARMUP_RUNS=${WARMUP_RUNS:-10}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-300}
ADB_TIMEOUT_S=${ADB_TIMEOUT_S:-60}
NAME=$(basename "$MODEL" .tflite)
OUT_DIR=${OUT_DIR:-./android_benchmark_$NAME}
EXTRA_FLAGS=${EXTRA_FLAGS:-}

# Every adb call goes through `timeout`, with stdin closed, so that none can hang.
adb_t() {
  local limit=$1
  shift
  timeout --kill-after=5 "$limit" "$ADB" "$@" </dev/null
}

state=$(adb_t "$ADB_TIMEOUT_S" get-state 2>&1)
rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  die 4 "'adb get-state' timed out after ${ADB_TIMEOUT_S}s (adb server or device not responding)."
fi
state=$(printf '%s' "$state" | tail -n 1)
if [[ $rc -ne 0 || $state != "device" ]]; then
  die 4 "no usable Android device (adb get-state: '${state:-no output}'). Connect one with USB" \
    "debugging enabled and authorised; with several devices set ANDROID_SERIAL."
fi
abi=$(adb_t "$ADB_TIMEOUT_S" shell getprop ro.product.cpu.abi 2>/dev/null | tr -d '\r')
model_name=$(adb_t "$ADB_TIMEOUT_S" shell getprop ro.product.model 2>/dev/null | tr -d '\r')
echo "device: ${model_name:-unknown} (abi ${abi:-unknown})"
if [[ -n $abi && $abi != arm64-v8a && $(basename "$BINARY") == *aarch64* ]]; then
  echo "warning: device ABI is $abi but the binary looks like an aarch64 build." >&2
fi

mkdir -p "$OUT_DIR" || die 2 "cannot create $OUT_DIR"
adb_t "$ADB_TIMEOUT_S" shell mkdir -p "$DEVICE_DIR" >/dev/null ||
  die 5 "cannot create $DEVICE_DIR on the device."
adb_t "$RUN_TIMEOUT_S" push "$BINARY" "$DEVICE_DIR/benchmark_model" >/dev/null ||
  die 5 "adb push of $BINARY failed or timed out."
adb_t "$ADB_TIMEOUT_S" shell chmod 755 "$DEVICE_DIR/benchmark_model" >/dev/null ||
  die 5 "chmod of the benchmark binary failed."
adb_t "$RUN_TIMEOUT_S" push "$MODEL" "$DEVICE_DIR/$NAME.tflite" >/dev/null ||
  die 5 "adb push of $MODEL failed or timed out."

failed=0
summary=()
run_one() {
  local label=$1
  shift
  local log="$OUT_DIR/$label.log"
  echo "== $label: benchmark_model $*"
  # shellcheck disable=SC2086  # EXTRA_FLAGS is a list of flags
  adb_t "$RUN_TIMEOUT_S" shell "$DEVICE_DIR/benchmark_model" \
    --graph="$DEVICE_DIR/$NAME.tflite" --num_runs="$NUM_RUNS" --warmup_runs="$WARMUP_RUNS" \
    "$@" $EXTRA_FLAGS >"$log" 2>&1
  local rc=$?
  local timings
  timings=$(grep -E "Inference timings in us" "$log" | tail -n 1 | tr -d '\r')
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "$label: timed out after ${RUN_TIMEOUT_S}s (log: $log)" >&2
    failed=1
    summary+=("$label: TIMED OUT")
  elif [[ $rc -ne 0 || -z $timings ]]; then
    echo "$label: failed (exit $rc; log: $log):" >&2
    tail -n 5 "$log" >&2
    failed=1
    summary+=("$label: FAILED (exit $rc)")
  else
    summary+=("$label: $timings")
    if [[ $label == gpu ]]; then
      if grep -q "partially executed by the delegate" "$log"; then
        summary+=("gpu: warning: the GPU delegate took only part of the graph (split); see $log")
      elif ! grep -q "completely executed by the delegate" "$log"; then
        summary+=("gpu: warning: could not confirm full GPU delegation; see $log")
      fi
    fi
  fi
}

run_one cpu_1thread --num_threads=1
if [[ ${SKIP_GPU:-0} != 1 ]]; then
  run_one gpu --use_gpu=true
fi
adb_t "$ADB_TIMEOUT_S" shell rm -f "$DEVICE_DIR/$NAME.tflite" >/dev/null 2>&1 || true

echo
echo "model: $MODEL"
for line in "${summary[@]}"; do
  echo "$line"
done
echo "logs: $OUT_DIR"
[[ $failed -eq 0 ]] || exit 6
