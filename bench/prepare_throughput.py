"""Benchmark of `etp_prepare`: records/s and peak memory.

    python bench/prepare_throughput.py                      # shared PTB-XL subset at 100 and 500 Hz
    python bench/prepare_throughput.py --synthetic 20000    # plus a synthetic PTB-XL-format set at 500 Hz
    python bench/prepare_throughput.py --synthetic 2000,5000,20000   # memory as N grows

Each prepare runs in a fresh process; peak memory is the largest resident set of the main process and of the
reading workers (getrusage). Prints one line per run. The shared subset lives in ../shared/data (developer
checkouts and CI only).
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

RUN = """
import json, resource, sys, time
from etp_nbdev.prepare import prepare
m = prepare(sys.argv[1], sys.argv[2], fs=int(sys.argv[3]), n_jobs=int(sys.argv[4]), verbose=False)
print(json.dumps(dict(n_read=m['n_read'], n_skipped=m['n_skipped'], seconds=m['seconds_taken'],
      main_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      worker_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""


def bench(src, fs, n_jobs, label):
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, '-c', RUN, str(src), str(Path(d) / 'p'), str(fs), str(n_jobs)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        size_gb = (Path(d) / 'p' / 'signals.f16').stat().st_size / 1e9
    n = r['n_read'] + r['n_skipped']
    print(f"{label:38s} {fs:3d} Hz  n_jobs={n_jobs}  {r['n_read']:6d} read {r['n_skipped']:5d} skipped  "
          f"{r['seconds']:7.1f} s  {n / r['seconds']:7.0f} records/s  array {size_gb:5.2f} GB  "
          f"peak RSS main {r['main_mb']:6.0f} MB, worker {r['worker_mb']:6.0f} MB", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--shared', default=str(Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ptbxl'))
    ap.add_argument('--synthetic', default='', help='comma-separated sizes of synthetic PTB-XL-format sets to prepare at 500 Hz')
    ap.add_argument('--n_jobs', type=int, default=2)
    ap.add_argument('--keep', default='', help='folder to keep generated synthetic sets in (reused when present)')
    a = ap.parse_args()
    if Path(a.shared, 'ptbxl_database.csv').exists():
        for fs in (100, 500): bench(a.shared, fs, a.n_jobs, 'shared PTB-XL subset (1,267 listed)')
    else: print(f"shared PTB-XL subset not found at {a.shared}: skipped")
    for n in [int(s) for s in a.synthetic.split(',') if s]:
        from etp_nbdev.synthetic import make_synthetic_ptbxl
        base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp())
        src = base / f'synth_ptbxl_{n}'
        if not (src / 'ptbxl_database.csv').exists():
            t = time.time()
            make_synthetic_ptbxl(src, n_records=n, seed=0, rates=(500,), n_jobs=a.n_jobs)
            print(f"generated {n} synthetic records at 500 Hz in {time.time() - t:.0f} s ({n / (time.time() - t):.0f} records/s)", flush=True)
        bench(src, 500, a.n_jobs, f'synthetic PTB-XL format ({n:,})')


if __name__ == '__main__':
    main()
