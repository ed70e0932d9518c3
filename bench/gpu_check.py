"""Checks that a GPU run must pass before its numbers are trusted, on a fixed batch of synthetic 500 Hz ECGs:

1. mixed precision: the loss of ETP and SimCLR under bf16 and fp16 autocast against float32, within a stated tolerance;
2. `torch.compile` of the ECG encoder: the same loss as without it;
3. preloaded batches (the split copied to GPU memory once) equal the batches streamed from disk, bit for bit;
4. one optimiser step of every registered method on the device, under bf16: a finite loss.

Its first run (on a CPU, in bf16) found a bug that would have stopped every SimCLR run on a GPU: NT-Xent wrote a
float32 -inf into bf16 logits (20_losses; fixed, and tested there).

    python bench/gpu_check.py                  # on the GPU; part of bench/gpu_check.sh
    python bench/gpu_check.py --device cpu     # the same checks on the CPU (a dry run of this script; compile needs a C compiler)

Prints one line per check and exits with status 1 if any fails. Tolerances (relative difference of the loss):
bf16 2e-2 (8 bits of mantissa), fp16 5e-3 (11 bits), compile 1e-4 (float32; kernels fused in another order).
"""
import argparse, math, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch

TOL = {'bf16': 2e-2, 'fp16': 5e-3, 'compile': 1e-4}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--fs', type=int, default=500, choices=(100, 500))
    ap.add_argument('--no_compile', action='store_true', help='skip the torch.compile check')
    ap.add_argument('--work', default=None, help='folder for the synthetic data (default: a temporary folder)')
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cuda' and not torch.cuda.is_available(): sys.exit("no CUDA device: run with --device cpu for a dry run of the checks")
    from etp_nbdev.methods import METHODS, method_class
    from etp_nbdev.prepare import Prepared, prepare
    from etp_nbdev.pretrain import BatchFeeder, PretrainConfig, build_model, report_features
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    from etp_nbdev.text import TextEncoder
    work = Path(a.work or tempfile.mkdtemp(prefix='etp_gpu_check_'))
    if not (work / 'prep' / 'manifest.json').exists():
        make_synthetic_ptbxl(work / 'src', n_records=max(200, 2 * a.batch), seed=0, rates=(a.fs,), overwrite=True)
        prepare(work / 'src', work / 'prep', fs=a.fs, n_jobs=2, overwrite=True, verbose=False)
    p = Prepared(work / 'prep')
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'
    print(f"device {dev} ({name}), torch {torch.__version__}, batch {a.batch} at {a.fs} Hz, {len(p)} synthetic records")
    enc = TextEncoder(device=dev)
    feats = report_features(p, enc).to(dev)
    pos = np.arange(a.batch)
    failures = []

    def check(what, ok, detail):
        print(f"  {'ok  ' if ok else 'FAIL'} {what:58s} {detail}", flush=True)
        if not ok: failures.append(what)

    # 3. preloaded against streamed batches
    pre = BatchFeeder(p, 'train', dev, preload='yes')
    streamed = BatchFeeder(p, 'train', dev, preload='no', num_workers=2)
    (_, x_pre), = list(pre.batches([pos])); (_, x_str), = list(streamed.batches([pos]))
    check('preloaded batch == streamed batch', x_pre.device.type == dev.type and torch.equal(x_pre, x_str),
          f"{tuple(x_pre.shape)} on {x_pre.device}, split {pre.nbytes / 1e9:.2f} GB preloaded")
    ecg, report_id = x_pre, pre.report_ids[torch.as_tensor(pos, device=dev)]

    def loss_of(mode, amp=None, compiled=False):
        cfg = PretrainConfig(data=str(p.path), mode=mode).check()
        model = build_model(cfg, a.fs, enc)
        if compiled: model.ecg_encoder.compile()
        method = method_class(mode).from_config(model, cfg, a.fs, feats).to(dev).train()
        kw = {'group': pre.groups[torch.as_tensor(pos, device=dev)]} if method_class(mode).uses_groups else {}
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            return method(ecg, report_id, torch.Generator().manual_seed(0), **kw), method

    # 1. mixed precision against float32
    for mode in ('etp', 'simclr'):
        ref = float(loss_of(mode)[0].detach())
        for amp, dt in (('bf16', torch.bfloat16), ('fp16', torch.float16)):
            try:
                v = float(loss_of(mode, dt)[0].detach())
                rel = abs(v - ref) / abs(ref)
                check(f"{mode}: {amp} autocast loss vs float32 (tol {TOL[amp]:g})", rel <= TOL[amp], f"{v:.5f} vs {ref:.5f}, rel {rel:.1e}")
            except RuntimeError as e:
                check(f"{mode}: {amp} autocast", dev.type == 'cpu' and amp == 'fp16', f"not supported here: {str(e)[:80]}")
    # 2. torch.compile
    if not a.no_compile:
        t = time.time()
        ref = float(loss_of('etp')[0].detach())
        v = float(loss_of('etp', compiled=True)[0].detach())
        rel = abs(v - ref) / abs(ref)
        check(f"etp: torch.compile loss vs eager (tol {TOL['compile']:g})", rel <= TOL['compile'],
              f"{v:.6f} vs {ref:.6f}, rel {rel:.1e}, compile + run {time.time() - t:.0f} s")
    # 4. one step of every method
    for mode in METHODS:
        loss, method = loss_of(mode, torch.bfloat16)
        opt = torch.optim.Adam(method.parameters(), lr=2e-3)
        loss.backward(); opt.step(); method.after_step(0, 10)
        check(f"{mode}: one bf16 training step", math.isfinite(float(loss.detach())), f"loss {float(loss.detach()):.4f}")
    if dev.type == 'cuda': print(f"peak GPU memory {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB")
    print(f"{'all checks passed' if not failures else f'{len(failures)} check(s) FAILED: ' + '; '.join(failures)}")
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
