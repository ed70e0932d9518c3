"""Wall time of linear probing and zero-shot classification for a test fold the size of PTB-XL's (2,158 records, 10 s at 500 Hz).

    python bench/eval_throughput.py                  # CPU, the full measurement (~5 min on 2 shared cores)
    python bench/eval_throughput.py --quick          # smoke run: 200 test records at 100 Hz, one seed, 100 resamples
    python bench/eval_throughput.py --device cuda    # the same on a GPU

All data is generated (`make_toy_prepared`: the prepared format of etp_prepare, 12 leads x 10 s), no download:

1. zero-shot, end to end (`zero_shot`, random-init model, packaged MiniLM text model): prompts, ECG embeddings of
   every test record, per-class metrics with --n_boot bootstrap resamples. The text model's load time is printed apart.
2. linear probe, end to end (`linear_probe`, random init) on the same test fold plus a small generated training and
   validation split (--train / --val records): features extracted once, then 1% / 10% / 100% x --seeds classifiers
   (Adam, batch 32, early stopping on validation) and the bootstrap intervals.
3. the classifier part alone at PTB-XL's full split sizes (17,084 / 2,146 / 2,158 records, 512-d features of known
   quality), i.e. everything of a full PTB-XL probe except the encoder, which (1) and (2) time per record.

The last line estimates a full PTB-XL probe on this machine: (train + val + test records) / measured encoder rate +
the classifier time of (3). The CPU is usually shared: the load average is printed beside the numbers.
"""
import argparse, os, platform, shutil, tempfile, time
from pathlib import Path
import numpy as np
import torch
from etp_nbdev.probe import linear_probe, linear_probe_features, make_toy_prepared
from etp_nbdev.text import TextEncoder
from etp_nbdev.zeroshot import zero_shot

PTBXL_SPLITS = dict(train=17084, val=2146, test=2158)  # records with at least one superclass, official folds


def load() -> str: return ' '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'


def feature_split(n, classes=5, dim=512, seed=0):
    "Features that carry the label weakly (a probe reaches an AUC of about 0.9), so early stopping behaves as on real features."
    g = np.random.default_rng(seed)
    y = g.choice(classes, n, p=[0.55, 0.15, 0.15, 0.11, 0.04])  # roughly PTB-XL's single-label mix
    x = g.normal(size=(n, dim)).astype(np.float32)
    x[:, :classes] += 0.9 * np.eye(classes)[y]
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    ap.add_argument('--fs', type=int, default=500, help='sampling rate of the generated 10-s records')
    ap.add_argument('--n_test', type=int, default=PTBXL_SPLITS['test'], help="test records (PTB-XL's test fold: 2,158)")
    ap.add_argument('--train', type=int, default=300, help='generated training records for the end-to-end probe')
    ap.add_argument('--val', type=int, default=100, help='generated validation records for the end-to-end probe')
    ap.add_argument('--seeds', type=int, default=3, help='probe seeds per label fraction')
    ap.add_argument('--n_boot', type=int, default=1000, help='bootstrap resamples')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: the default)')
    ap.add_argument('--quick', action='store_true', help='smoke run: 200 test records at 100 Hz, 1 seed, 100 resamples, small step 3')
    a = ap.parse_args()
    if a.quick: a.fs, a.n_test, a.train, a.val, a.seeds, a.n_boot = 100, 200, 100, 50, 1, 100
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    seeds = tuple(range(a.seeds))
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or platform.machine())
    print(f"evaluation wall time | torch {torch.__version__} | {device.type}: {where} | threads {torch.get_num_threads()} of "
          f"{os.cpu_count()} cores | load average {load()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix='eval_bench_'))
    try:
        t0 = time.perf_counter()
        data = make_toy_prepared(tmp / 'data', n=(a.train, a.val, a.n_test), fs=a.fs, seconds=10.0, seed=0)
        size = (tmp / 'data' / 'signals.f16').stat().st_size / 2 ** 20
        print(f"generated {len(data)} records ({a.train} train, {a.val} val, {a.n_test} test) at {a.fs} Hz x 10 s: {size:.0f} MiB float16, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)

        t0 = time.perf_counter()
        te = TextEncoder()
        t_text = time.perf_counter() - t0
        t0 = time.perf_counter()
        zs = zero_shot('random', data, text_encoder=te, n_boot=a.n_boot, device=device, verbose=False)
        t_zs = time.perf_counter() - t0
        print(f"[1] zero-shot, {a.n_test} test records: {t_zs:.1f} s ({a.n_test / t_zs:.1f} records/s end to end), "
              f"+ {t_text:.1f} s to load the text model | average AUC {zs['average']['auc']:.3f} (random init) | load {load()}", flush=True)

        t0 = time.perf_counter()
        pr = linear_probe('random', data, fractions=(0.01, 0.1, 1.0), seeds=seeds, n_boot=a.n_boot, device=device, verbose=False)
        t_pr = time.perf_counter() - t0
        t_feat = pr['timing']['features_s']
        n_rec = a.train + a.val + a.n_test
        rate = n_rec / t_feat
        print(f"[2] linear probe, {n_rec} records: {t_pr:.1f} s = features {t_feat:.1f} s ({rate:.1f} records/s; the test fold alone "
              f"{a.n_test / rate:.1f} s) + {3 * len(seeds)} classifiers and intervals {t_pr - t_feat:.1f} s | test macro AUC "
              f"{pr['summary']['1']['macro_auc']['mean']:.3f} | load {load()}", flush=True)

        sizes = dict(train=a.train * 40, val=a.val * 20, test=a.n_test) if a.quick else PTBXL_SPLITS
        feats = {s: feature_split(n, seed=i) for i, (s, n) in enumerate(sizes.items())}
        t0 = time.perf_counter()
        res = linear_probe_features({s: f[0] for s, f in feats.items()}, {s: f[1] for s, f in feats.items()}, list('ABCDE'),
                                    seeds=seeds, n_boot=a.n_boot, verbose=False)
        t_cls = time.perf_counter() - t0
        per_fraction = {f"{r['fraction']:.0%}": 0.0 for r in res['runs']}
        for r in res['runs']: per_fraction[f"{r['fraction']:.0%}"] += r['seconds']
        epochs = [r['epochs_run'] for r in res['runs']]
        print(f"[3] classifiers alone at {sizes['train']}/{sizes['val']}/{sizes['test']} records x 512: {t_cls:.1f} s for "
              f"{len(res['runs'])} runs (" + ', '.join(f"{k}: {v:.1f} s" for k, v in per_fraction.items()) +
              f"; epochs {min(epochs)}-{max(epochs)}) | load {load()}", flush=True)
        full = sum(PTBXL_SPLITS.values())
        print(f"estimate, full PTB-XL probe at {a.fs} Hz on this machine: {full} records / {rate:.1f} records/s = {full / rate / 60:.1f} min "
              f"of features + {t_cls / 60:.1f} min of classifiers = {(full / rate + t_cls) / 60:.1f} min")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__': main()
