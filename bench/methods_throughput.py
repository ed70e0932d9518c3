"""Training throughput of every registered pretraining method against the bare encoder, at the same batch size.

    python bench/methods_throughput.py                  # CPU, 100 Hz, batch 32, 6 timed steps each (about 3 minutes on 2 cores)
    python bench/methods_throughput.py --device cuda --fs 500 --batch 128 --steps 20

One step of each method is what the engine runs: the method's forward (its views, extra modules and loss),
backward, an Adam step and `after_step` (e.g. BYOL's EMA update), on a batch already in memory. The bare encoder is
the ResNet18-1D with a linear head, forward + backward + Adam on the same batch: the ceiling that a method with one
view per ECG can reach. Two-view methods (SimCLR, BYOL, SimSiam) encode 2B views per step, so about 0.5 is their
natural ratio; BYOL adds a target forward pass. Text features for ETP are random stand-ins of the packaged model's size
(the engine looks them up; it never runs the text model in a step).
"""
import argparse, os, time
import torch
import torch.nn.functional as F
from etp_nbdev.methods import METHODS, method_class
from etp_nbdev.pretrain import PretrainConfig, build_model, make_optimizer


class _Text:  # what build_model needs of a text encoder: its size and identity
    hidden_size, name, model_id, pooling, max_length = 384, 'stand-in', 'stand-in@0', 'mean', 128


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def rate(step, steps, warmup, batch, device) -> float:
    for _ in range(warmup): step()
    sync(device); t = time.perf_counter()
    for _ in range(steps): step()
    sync(device)
    return steps * batch / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu'); ap.add_argument('--fs', type=int, default=100)
    ap.add_argument('--batch', type=int, default=32); ap.add_argument('--steps', type=int, default=6); ap.add_argument('--warmup', type=int, default=2)
    a = ap.parse_args()
    dev = torch.device(a.device)
    x = torch.randn(a.batch, 12, 10 * a.fs, device=dev)
    rid = torch.arange(a.batch, device=dev) % 50
    results = {}
    bare = build_model(PretrainConfig(data='x', mode='simclr').check(), a.fs).to(dev)
    opt = make_optimizer(bare, 2e-3, 1e-5)
    def bare_step():
        loss = bare.ecg_head(bare.ecg_encoder(x)).square().mean()
        opt.zero_grad(); loss.backward(); opt.step()
    results['bare encoder'] = rate(bare_step, a.steps, a.warmup, a.batch, dev)
    for name in METHODS:
        cfg = PretrainConfig(data='x', mode=name).check()
        kind = method_class(name)
        model = build_model(cfg, a.fs, _Text() if kind.uses_reports else None).to(dev)
        feats = torch.randn(50, 384, device=dev) if kind.uses_reports else None
        method = kind.from_config(model, cfg, a.fs, feats).to(dev).train()
        opt = make_optimizer(method, cfg.lr, cfg.weight_decay)
        k = [0]
        def step():
            loss = method(x, rid, torch.Generator().manual_seed(k[0]))
            opt.zero_grad(); loss.backward(); opt.step(); method.after_step(k[0], 1000); k[0] += 1
        results[f"{name} ({kind.label})"] = rate(step, a.steps, a.warmup, a.batch, dev)
    print(f"{a.device}, {a.fs} Hz, batch {a.batch}, {a.steps} timed steps after {a.warmup} warm-up; load average {os.getloadavg()[0]:.2f}")
    print(f"{'':<22s} {'records/s':>10s} {'vs bare':>8s}")
    for k, v in results.items(): print(f"{k:<22s} {v:10.1f} {v / results['bare encoder']:8.2f}")


if __name__ == '__main__':
    main()
