#!/usr/bin/env bash
# The project's GPU check, in one script: for a user with a GPU, or CI on a GPU runner. From the repository root:
#
#     bash bench/gpu_check.sh            # about 10 minutes on one H100 (most of it making the full-size synthetic data)
#     QUICK=1 bash bench/gpu_check.sh    # stage 4 at 2,000 records and 2 epochs: a check that the path works
#
# 1. the `#| cuda` cells of the notebooks (text model in float16 on the GPU, augmentations with CUDA generators);
# 2. etp_pretrain from the command line on the GPU: a short ETP run, and a kill -9 / --resume;
# 3. bench/gpu_check.py: bf16 and fp16 autocast against float32, torch.compile on and off, preloaded GPU batches,
#    one step of every method (each with its tolerance; exits 1 on a failure);
# 4. bench/pretrain_gpu.py at full size: 17,000 records at 500 Hz, 50 epochs, batch 128, bf16, preloaded, with and
#    without torch.compile. Goal: under 2 minutes for the 50 epochs on one H100; it prints records/s and the MFU.
# Every stage prints its numbers; the script stops at the first failure. Needs the environment of `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
PY=${PYTHON:-$(command -v python)}
BIN=$(dirname "$PY")
WORK=${WORK:-gpu_check_work}
mkdir -p "$WORK"
start=$SECONDS
stage() { echo; echo "== $1 [$((SECONDS - start)) s]"; }

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true

stage "1/4 cuda-flagged notebook cells"
for nb in $(grep -l '#| cuda' nbs/*.ipynb); do
  "$BIN/nbdev_test" --flags cuda --path "$nb"
done

stage "2/4 etp_pretrain on the GPU: a short run, then kill -9 and --resume"
"$PY" bench/gpu_resume_check.py "$WORK"

stage "3/4 mixed precision, torch.compile, preloading, every method (bench/gpu_check.py)"
"$PY" bench/gpu_check.py --work "$WORK/check"

stage "4/4 full size (bench/pretrain_gpu.py): 50 epochs, eager then torch.compile"
if [ -n "${QUICK:-}" ]; then size=(--records 2000 --epochs 2); else size=(); fi
"$PY" bench/pretrain_gpu.py --work "$WORK/full" "${size[@]}"
"$PY" bench/pretrain_gpu.py --work "$WORK/full" --compile "${size[@]}"

echo; echo "GPU check passed in $((SECONDS - start)) s"
