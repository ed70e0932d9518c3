"""End-to-end pretraining throughput vs the bare encoder, and what caching the text features buys.

    python bench/pretrain_throughput.py                 # CPU, 100 Hz, batch 128 (about 3 minutes on 2 cores)
    python bench/pretrain_throughput.py --steps 4       # quicker, noisier
    python bench/pretrain_throughput.py --device cuda --fs 500
    python bench/bert_base_folder.py bert_base_random   # the paper's text-model size, random weights (speed only)
    python bench/pretrain_throughput.py --text_model bert_base_random --fs 100   # goal: caching >= 5x encoding every step

Measured in one process, on the same data, with the same model and batch size:

1. bare encoder: ETP's model (ResNet18-1D + heads) forward + backward + Adam step on a batch already in memory;
   no data loading, no text, no loss beyond a trivial one. The ceiling.
2. etp_nbdev pretraining (`pretrain`, max_steps): the whole loop, data fetch, cached text features, CLIP loss,
   NaN guard, metrics logging. Its throughput over the ceiling is the pipeline efficiency (goal >= 0.9).
3. the usual implementation: the same step, but the frozen text model encodes the batch's reports in every step.

Throughput is records/s over the timed steps (after warm-up); for (2) it comes from the wall time between steps in
metrics.csv, so data fetching is included. Peak resident memory of the process is printed at the end.
The machine is usually shared: the load average is printed with the numbers.
"""
import argparse, os, resource, shutil, tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from etp_nbdev.losses import clip_loss
from etp_nbdev.prepare import Prepared, prepare
from etp_nbdev.pretrain import PretrainConfig, build_model, pretrain
from etp_nbdev.synthetic import make_synthetic_ptbxl
from etp_nbdev.text import TextEncoder


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def timed(fn, steps, warmup, device):
    for _ in range(warmup): fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps): fn()
    sync(device)
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--fs', type=int, default=100)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--steps', type=int, default=8, help='timed steps per configuration')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--text_model', default=None, help='text model folder or id (default: the packaged MiniLM; see bench/bert_base_folder.py)')
    ap.add_argument('--records', type=int, default=None, help='synthetic records (default: enough for the steps)')
    ap.add_argument('--work', default=None, help='folder for the synthetic data (default: a temporary folder)')
    a = ap.parse_args()
    dev = torch.device(a.device)
    work = Path(a.work or tempfile.mkdtemp(prefix='etp_bench_'))
    n = a.records or int((a.steps + a.warmup + 2) * a.batch / 0.8) + 50
    src, prep = work / f'synthetic_{n}', work / f'prepared_{n}_{a.fs}'
    t = time.time()
    if not (prep / 'manifest.json').exists():
        make_synthetic_ptbxl(src, n_records=n, seed=0, rates=(a.fs,), n_jobs=2, overwrite=True)
        prepare(src, prep, fs=a.fs, n_jobs=2, overwrite=True, verbose=False)
    p = Prepared(prep)
    print(f"data: {len(p)} synthetic records at {a.fs} Hz ({len(p.indices('train'))} train) in {time.time() - t:.0f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}")

    enc = TextEncoder(a.text_model, device=dev)
    cfg = PretrainConfig(data=str(prep), batch_size=a.batch, device=a.device, text_model=a.text_model)
    x = torch.from_numpy(np.array(p.signals[p.indices('train')[:a.batch]])).float().to(dev)
    texts = p.meta['report'].to_numpy()[p.indices('train')[:a.batch]].tolist()
    feats = torch.randn(a.batch, enc.hidden_size, device=dev)

    # 1. the ceiling: model forward + backward + Adam on an in-memory batch
    model = build_model(cfg, a.fs, enc).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    def bare():
        e, t = model(x, feats)
        loss = (e * t).sum()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    bare_rs = a.batch / timed(bare, a.steps, a.warmup, dev)

    # 3. the usual implementation: text model in every step
    ids = torch.arange(a.batch, device=dev)
    def per_step_text():
        with torch.no_grad(): h = enc.encode(texts, as_tensor=True).to(dev)
        e, t = model(x, h)
        loss = clip_loss(e, t, 0.07, check=False)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    text_rs = a.batch / timed(per_step_text, a.steps, a.warmup, dev)

    # 2. the real loop
    out = work / 'run'
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    pretrain(PretrainConfig(data=str(prep), out=str(out), batch_size=a.batch, device=a.device, epochs=1000, text_model=a.text_model,
                            max_steps=a.steps + a.warmup, progress=False, text_cache=str(work / 'cache')))
    wall = time.time() - t
    m = pd.read_csv(out / 'metrics.csv').query("kind == 'step'")
    dt = np.diff(m['elapsed_s'].to_numpy(float))[a.warmup - 1:]  # step k's time = its end minus step k-1's end
    loop_rs = a.batch / dt.mean()

    load = os.getloadavg()[0]
    print(f"\n{'configuration':58s} {'records/s':>10s} {'vs bare':>8s}")
    print(f"{'1. bare encoder + heads: forward, backward, Adam':58s} {bare_rs:10.1f} {1:8.2f}")
    print(f"{'2. etp_pretrain loop (data, cached text, CLIP loss, logs)':58s} {loop_rs:10.1f} {loop_rs / bare_rs:8.2f}")
    print(f"{'3. text model run in every step (the usual way)':58s} {text_rs:10.1f} {text_rs / bare_rs:8.2f}")
    print(f"\npipeline efficiency (2 / 1): {loop_rs / bare_rs:.3f}   (goal >= 0.9)")
    print(f"caching text features: {loop_rs / text_rs:.2f}x the throughput of encoding reports every step "
          f"(text model {enc.name}, {sum(p.numel() for p in enc.model.parameters()) / 1e6:.0f}M parameters, {a.fs} Hz; goal at 100 Hz: >= 5x)")
    print(f"pretrain() wall time for {a.steps + a.warmup} steps incl. start-up and text encoding: {wall:.1f} s")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; load average {load:.2f}")
    if dev.type == 'cuda': print(f"peak GPU memory: {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB")
    if not a.work: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
