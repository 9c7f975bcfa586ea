#!/usr/bin/env bash
# The GPU run, prepared for a lent GPU machine that has torch and Lightning but no network and
# none of mlflow, dvc or hydra (issue "Ready for the GPU cluster"; docs/benchmarks.md gets its output).
#
#   bash scripts/gpu_check.sh fetch     # here, with the package index: .whl/ and .gpu_data/ (ignored)
#   bash scripts/gpu_check.sh           # there, from the repository root, carrying .whl and .gpu_data
#   ACCELERATOR=cpu QUICK=1 bash scripts/gpu_check.sh   # the same steps on a CPU, briefly
#
# Three parts, each under its own time limit, about 8 minutes in all on one GPU:
#   1. every training stage for a moment in bf16 (16-mixed without bf16): scripts/gpu_check.py;
#   2. the demo CNN (torch layers, 5 epochs) on Fashion-MNIST in bf16: its training time and test accuracy;
#   3. a 2-process DDP run of the MLP on the one GPU (NCCL may refuse two ranks on one device: its
#      answer is printed).
# Output: stdout, and the files under $OUT (a device run's) or gpu_check_out/.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
case $python in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac  # the parts below cd

if [ "${1:-}" = fetch ]; then
    set -e
    # hydra-core (the project's composition of params) and what it needs: pure Python wheels for
    # any Python 3 (antlr4's runtime comes as source only: `pip wheel` builds it here).
    rm -rf .whl && $python -m pip wheel -q --no-deps -w .whl hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
    mkdir -p .gpu_data/fashion-mnist
    cp /usr/share/datasets/fashion-mnist/*.gz .gpu_data/fashion-mnist/   # Debian's dataset-fashion-mnist
    du -sh .whl .gpu_data
    exit 0
fi

repo=$PWD
out=${OUT:-$repo/gpu_check_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/hw4-site .whl/* || exit 1
    export PYTHONPATH=/tmp/hw4-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
$python -c "import mlflow" 2>/dev/null || export HW4_TRACKING=off
accelerator=${ACCELERATOR:-gpu}
quick=${QUICK:+--quick}
precision=$($python -c "import torch; print('bf16-mixed' if '$accelerator' == 'cpu' or torch.cuda.is_bf16_supported() else '16-mixed')")

{
    echo "# $(date -u +%FT%TZ) $(uname -m), accelerator $accelerator, precision $precision, tracking ${HW4_TRACKING:-on}"
    $python -c "import sys, torch, pytorch_lightning as pl; print('python', sys.version.split()[0], 'torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.version.cuda)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} | tee "$out/machine.txt"

echo "## 1. every stage, briefly, $precision"
timeout 300 $python scripts/gpu_check.py --accelerator "$accelerator" --precision "$precision" $quick \
    --workdir /tmp/hw4-gpu-check 2>&1 | tee "$out/stages.txt"

echo "## 2. the demo CNN on Fashion-MNIST, $precision"
work=/tmp/hw4-gpu-cnn
rm -rf "$work" && mkdir -p "$work"
epochs=5; [ -n "$quick" ] && epochs=1
(
    $python -m hw4 compose profile=demo "trainer.accelerator=$accelerator" trainer.devices=1 "trainer.precision=$precision" \
        trainer.progress_bar=false 'seeds=[0]' "cnn.epochs=$epochs" "download.mirror_dirs=[$repo/.gpu_data/fashion-mnist]" \
        'download.generate=[]' --output "$work/params.yaml" >/dev/null &&
    cd "$work" && export HW4_ROOT="$work" &&
    $python -m hw4 download >/dev/null && $python -m hw4 prepare >/dev/null &&
    timeout 240 $python -m hw4 cnn --impl torch 2>&1 | tail -1 &&
    $python -c "
import json; r = json.load(open('results/cnn/torch/seed0.json'))
print(f\"demo CNN: {r['epochs_trained']} epochs in {r['train_time_s']} s of training, {r.get('train_samples_per_s')} samples/s, test acc {r['test/acc']:.4f} ({'reached' if r['test/acc'] >= 0.92 else 'short of'} 0.92)\")"
) 2>&1 | tee "$out/cnn.txt"

echo "## 3. DDP, 2 processes on one device (two torchrun nodes on loopback, as tests/stages/test_distributed.py)"
ddp=/tmp/hw4-gpu-ddp
rm -rf "$ddp" && mkdir -p "$ddp/data/prepared"
(
    $python -m hw4 compose profile=demo "trainer.accelerator=$accelerator" trainer.num_nodes=2 trainer.devices=1 \
        trainer.strategy=ddp "trainer.precision=$precision" trainer.progress_bar=false 'seeds=[0]' 'mlp.hidden_sizes=[64]' \
        mlp.epochs=2 --output "$ddp/params.yaml" >/dev/null &&
    cd "$ddp" &&
    $python -c "import torch; from hw4.data.standins import digits; torch.save(digits.generate(5000, 1000, 1000), 'data/prepared/mnist_family.pt')" &&
    for rank in 1 0; do
        HW4_ROOT="$ddp" timeout 180 $python -m torch.distributed.run --nnodes 2 --nproc-per-node 1 --node-rank $rank \
            --master-addr 127.0.0.1 --master-port 29533 -m hw4 mlp --hidden 64 > "node$rank.log" 2>&1 &
    done
    wait
    tail -3 node0.log; grep -h -i -m3 "nccl\|error" node0.log node1.log
    ls results/mlp/points/h64/seed0.json 2>/dev/null && echo "DDP on one device: ran" || echo "DDP on one device: did not run (above: what it answered)"
) 2>&1 | tee "$out/ddp.txt"
echo "done: $out"
