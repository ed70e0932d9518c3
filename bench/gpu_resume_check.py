"""etp_pretrain on a device, killed with -9 in its second epoch and resumed: every step logged once, the run finished.

    python bench/gpu_resume_check.py WORK                      # on the GPU, 1,200 synthetic records at 500 Hz (bench/gpu_check.sh stage 2)
    python bench/gpu_resume_check.py WORK --device cpu --fs 100 --records 300 --batch 32   # the same on a CPU

(Bit-exact resume is tested on the CPU by tests/test_pretrain.py; on a GPU, cuDNN's kernels need not be deterministic,
so this checks that the run resumes and completes, not its bits.)
"""
import argparse, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd


def steps_logged(metrics: Path) -> pd.Series:
    try: return pd.read_csv(metrics).query("kind == 'step'").step
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError): return pd.Series([], dtype=int)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('work', help='folder for the data and the run (data is made once)')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--fs', type=int, default=500, choices=(100, 500))
    ap.add_argument('--records', type=int, default=1200)
    ap.add_argument('--batch', type=int, default=128)
    a = ap.parse_args()
    from etp_nbdev.prepare import Prepared, prepare
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    w = Path(a.work)
    data = w / f'resume_{a.records}_{a.fs}'
    if not (data / 'manifest.json').exists():
        make_synthetic_ptbxl(w / f'resume_src_{a.records}', n_records=a.records, seed=0, rates=(a.fs,), n_jobs=0, overwrite=True)
        prepare(w / f'resume_src_{a.records}', data, fs=a.fs, n_jobs=os.cpu_count(), overwrite=True, verbose=False)
    per_epoch = len(Prepared(data).indices('train')) // a.batch
    cmd = [str(Path(sys.executable).parent / 'etp_pretrain'), str(data), '--epochs', '3', '--batch_size', str(a.batch), '--device', a.device,
           '--no_progress', '--save_every', '2', '--text_cache', str(w / 'cache')]
    run = w / 'resume_run'
    p = subprocess.Popen(cmd + ['--out', str(run), '--overwrite'])
    while not (steps_logged(run / 'metrics.csv') >= per_epoch + 2).any():  # inside epoch 2
        if p.poll() is not None: sys.exit(f"the run ended (exit {p.returncode}) before step {per_epoch + 2}")
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait()
    r = subprocess.run(cmd + ['--out', str(run), '--resume'], capture_output=True, text=True)
    if r.returncode or 'resuming' not in r.stdout: sys.exit(f"--resume failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    steps = list(steps_logged(run / 'metrics.csv'))
    if steps != list(range(1, 3 * per_epoch + 1)): sys.exit(f"steps logged: {steps} (expected 1..{3 * per_epoch}, each once)")
    val = pd.read_csv(run / 'metrics.csv').query("kind == 'epoch'").val_loss.round(3).tolist()
    print(f"{a.device}: killed at step {per_epoch + 2} of {3 * per_epoch}, resumed and finished; every step logged once; val loss by epoch {val}")


if __name__ == '__main__':
    main()
