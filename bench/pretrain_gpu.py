"""Full-size GPU pretraining benchmark: 50 epochs of ETP over a PTB-XL-sized synthetic set at 500 Hz.

    python bench/pretrain_gpu.py                          # 17,000 records, 500 Hz, 50 epochs, batch 128, bf16
    python bench/pretrain_gpu.py --compile                # with torch.compile of the ECG encoder
    python bench/pretrain_gpu.py --records 2000 --epochs 2   # a quick check that the GPU path works
    torchrun --nproc_per_node=8 bench/pretrain_gpu.py     # several GPUs (batch 128 split over them)

Goal (issue 5): under 2 minutes on one H100 for 50 epochs. Prints the wall time of the training loop, records/s,
and the model FLOP utilisation (MFU): ResNet18-1D forward + backward costs 5.168 GFLOP per 500 Hz record
(torch.utils.flop_counter, see 10_resnet1d), divided by the GPU's dense bf16 peak (--peak-tflops, default 989 for
an H100 SXM). The data is generated and prepared on the CPU first (cached in --work), then preloaded to GPU memory.
"""
import argparse, json, os, shutil, time
from pathlib import Path
import torch
from etp_nbdev.prepare import prepare
from etp_nbdev.pretrain import PretrainConfig, pretrain
from etp_nbdev.resnet1d import count_flops, resnet18_1d
from etp_nbdev.synthetic import make_synthetic_ptbxl



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--records', type=int, default=17000)
    ap.add_argument('--fs', type=int, default=500, choices=(100, 500))
    ap.add_argument('--epochs', type=int, default=50)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--amp', default='bf16')
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--peak-tflops', type=float, default=989.0, help='dense bf16 peak of the GPU (H100 SXM: 989)')
    ap.add_argument('--work', default='bench_gpu_work')
    a = ap.parse_args()
    work = Path(a.work); work.mkdir(exist_ok=True)
    src, prep = work / f'synthetic_{a.records}', work / f'prepared_{a.records}_{a.fs}'
    rank0 = int(os.environ.get('RANK', 0)) == 0
    if rank0 and not (prep / 'manifest.json').exists():
        t = time.time()
        make_synthetic_ptbxl(src, n_records=a.records, seed=0, rates=(a.fs,), n_jobs=0, overwrite=True)
        prepare(src, prep, fs=a.fs, n_jobs=os.cpu_count(), overwrite=True, verbose=False)
        print(f"data generated and prepared in {time.time() - t:.0f} s", flush=True)
    while not (prep / 'manifest.json').exists(): time.sleep(1)  # other ranks wait for rank 0's data
    out = work / 'run'
    if rank0: shutil.rmtree(out, ignore_errors=True)
    s = pretrain(PretrainConfig(data=str(prep), out=str(out), epochs=a.epochs, batch_size=a.batch, amp=a.amp, compile=a.compile,
                                device='cuda', progress=rank0, text_cache=str(work / 'cache')), overwrite=True)
    if rank0:
        import pandas as pd
        m = pd.read_csv(out / 'metrics.csv')
        steps = m[m.kind == 'step']
        train_s = float(steps['elapsed_s'].iloc[-1])
        rec = s['steps'] * a.batch
        flops = rec * count_flops(resnet18_1d(), 10 * a.fs)  # forward + backward per record (10_resnet1d)
        mfu = flops / train_s / (a.peak_tflops * 1e12 * s['world_size'])
        res = dict(records=a.records, fs=a.fs, epochs=a.epochs, steps=s['steps'], world_size=s['world_size'],
                   loop_seconds=round(train_s, 1), total_seconds=s['seconds'], records_per_s=round(rec / train_s),
                   mfu=round(mfu, 4), peak_gpu_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2), last_epoch=s['last'])
        print(json.dumps(res, indent=1))
        print(f"50-epoch goal (< 120 s): {'met' if train_s < 120 else 'NOT met'} ({train_s:.0f} s)")


if __name__ == '__main__':
    main()
