"""Training throughput of the ETP ECG encoder (ResNet18-1D): forward + backward records/s and achieved GFLOP/s.

    python bench/resnet_throughput.py                       # CPU: 10 s records at 100 and 500 Hz, batch 32 and 128 (~1 min on 2 cores)
    python bench/resnet_throughput.py --device cuda         # GPU, bfloat16 autocast
    python bench/resnet_throughput.py --quick               # smoke run: batch 4, one timed step per rate
    python bench/resnet_throughput.py --batch 64 --fs 500 --threads 1

One step = forward in training mode on a random [B, 12, 10 * fs] batch, a scalar loss, backward, gradients cleared
(no optimiser). Each configuration gets warm-up steps, then timed steps until about --seconds have passed (at least
--min-steps). FLOPs per record come from torch.utils.flop_counter (convolutions; a multiply-add counts 2) and are
the same on every device and dtype. Prints one line per configuration; the CPU is usually shared, so the load
average is printed too.
"""
import argparse, math, os, platform, time
import torch
from etp_nbdev.resnet1d import count_flops, resnet18_1d


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def step(model, x, device, amp):
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model(x).float().square().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def bench(model, fs, batch, device, amp, seconds, min_steps, max_steps, warmup):
    T = 10 * fs
    x = torch.randn(batch, model.in_leads, T, device=device)
    t0 = time.perf_counter()
    for _ in range(warmup): step(model, x, device, amp)
    sync(device)
    per_step = (time.perf_counter() - t0) / max(warmup, 1)
    n = max(min_steps, min(max_steps, math.ceil(seconds / max(per_step, 1e-6))))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step(model, x, device, amp)
        sync(device)
        times.append(time.perf_counter() - t)
    return n, sum(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (or 'cuda:N')")
    ap.add_argument('--fs', default='100,500', help='sampling rates, comma-separated (records are 10 s long)')
    ap.add_argument('--batch', default='32,128', help='batch sizes, comma-separated')
    ap.add_argument('--threads', type=int, default=0, help='CPU threads for torch (0: leave the default)')
    ap.add_argument('--seconds', type=float, default=8.0, help='timed seconds per configuration (roughly)')
    ap.add_argument('--min-steps', type=int, default=2)
    ap.add_argument('--max-steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=0, help='warm-up steps (default: 1 on CPU, 5 on GPU)')
    ap.add_argument('--no-amp', action='store_true', help='on GPU, run in float32 instead of bfloat16 autocast')
    ap.add_argument('--quick', action='store_true', help='smoke run: batch 4, one warm-up and one timed step')
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == 'cuda' and not torch.cuda.is_available(): raise SystemExit(f"--device {a.device}: no CUDA device here")
    if a.threads: torch.set_num_threads(a.threads)
    rates, batches = [int(s) for s in a.fs.split(',')], [int(s) for s in a.batch.split(',')]
    warmup = a.warmup or (5 if device.type == 'cuda' else 1)
    seconds, min_steps = a.seconds, a.min_steps
    if a.quick: batches, warmup, seconds, min_steps, a.max_steps = [4], 1, 0.0, 1, 1
    amp = device.type == 'cuda' and not a.no_amp
    if device.type == 'cuda': torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    model = resnet18_1d().to(device).train()
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or platform.machine())
    load = ' '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'
    print(f"ResNet18-1D forward+backward | torch {torch.__version__} | {device.type}: {where} | "
          f"threads {torch.get_num_threads()} of {os.cpu_count()} cores | load average {load} | "
          f"{'bf16 autocast' if amp else 'fp32'}", flush=True)
    for fs in rates:
        flops = count_flops(model, 10 * fs, backward=True)
        for batch in batches:
            n, total, best = bench(model, fs, batch, device, amp, seconds, min_steps, a.max_steps, warmup)
            rps = batch * n / total
            print(f"{device.type:4s} {fs:3d} Hz  T={10 * fs:<5d} batch {batch:4d}  threads {torch.get_num_threads():2d}  "
                  f"{n:3d} steps  {total / n:7.3f} s/step (best {best:.3f})  {rps:8.1f} records/s  "
                  f"{flops / 1e9:6.3f} GFLOP/record  {rps * flops / 1e9:8.1f} GFLOP/s", flush=True)


if __name__ == '__main__':
    main()
