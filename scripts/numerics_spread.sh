#!/usr/bin/env bash
# The suite's numeric assertions under other CPU code paths and thread counts (README
# "Reproducing these numbers"): each setting forces what a CPU of another kind would run.
#   bash scripts/numerics_spread.sh [THREADS...]   # every setting x 1 and 2 threads (default)
#   ONLY=onednn-sse41 bash scripts/numerics_spread.sh 1
# A log per run goes to $OUT; the captioning test's scores are printed per run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/hw4-numerics-spread}
mkdir -p "$OUT"
# The tests that assert an accuracy, a loss, a BLEU score or a gradient error (the homework
# overfit in test_captioning, 58 epochs of a 512-unit RNN, is left out for time).
TESTS="tests/unit/test_layers.py tests/unit/test_captioner.py tests/unit/test_captioning_text.py
       tests/stages/test_mlp.py tests/stages/test_cnn.py tests/stages/test_captioning.py
       tests/pipeline/test_dvc_mlp.py tests/pipeline/test_dvc_captioning.py"
SETTINGS=(
    "native:"
    "avx2:ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2"
    "baseline:ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE"
    "mkl-avx:MKL_CBWR=AVX"
    "onednn-sse41:ONEDNN_MAX_CPU_ISA=SSE41"   # the LSTM/RNN and convolutions' kernels
)
for threads in ${*:-1 2}; do
    for setting in "${SETTINGS[@]}"; do
        name=${setting%%:*}
        [ -n "${ONLY:-}" ] && [ "$name" != "$ONLY" ] && continue
        log="$OUT/$name-t$threads.log"
        env ${setting#*:} HW4_TEST_THREADS=$threads OMP_NUM_THREADS=$threads \
            .venv/bin/python -m pytest -m "slow or not slow" -k "not homework" -s -q -p no:cacheprovider $TESTS > "$log" 2>&1
        echo "$name, $threads thread(s): $(tail -n 1 "$log")"
        grep -o "{'rnn': {[^}]*}, 'lstm': {[^}]*}, 'blind': {[^}]*}}" "$log" | sed 's/^/    captioning: /'
    done
done
