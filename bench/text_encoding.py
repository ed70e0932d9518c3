"""Benchmark of the frozen text encoder and its embedding cache (`etp_nbdev.text`).

    python bench/text_encoding.py              # all-MiniLM-L6-v2 on PTB-XL's reports: about 2.5 minutes on 2 quiet CPU cores
    python bench/text_encoding.py --limit 5000 # the first 5,000 reports only: about a minute
    python bench/text_encoding.py --quick      # a tiny random BERT on 300 reports: seconds (what the tests run)
    python bench/text_encoding.py --model FOLDER_OR_HUB_ID --device cuda --dtype float16

It prints
  1. sentences/s with and without length sorting, on --sample distinct reports drawn at random;
  2. what the cache saves on PTB-XL's report distribution: total vs distinct reports, and the time to encode all reports
     (no cache) vs the distinct ones (a cold cache) vs a warm cache read back from disk.
The reports are PTB-XL's real ones where ../shared/data/ptbxl/ptbxl_reports_only.csv sits beside the checkout, else
generated ones with a similar repetition. On a shared machine the numbers move with the other jobs: compare runs
made side by side.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')
REPORTS_CSV = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'ptbxl' / 'ptbxl_reports_only.csv'

PHRASES = ['sinus rhythm', 'normal ecg', 'left axis deviation', 'left anterior fascicular block', 'atrial fibrillation',
           'left bundle branch block', 'incomplete right bundle branch block', 'first degree av block',
           'st depression in v4-6', 'non-specific t wave flattening', 'inferior infarction, probably old',
           'left ventricular hypertrophy', 'ventricular premature complex(es)', 'sinus bradycardia', 'sinus tachycardia',
           'anteroseptal myocardial damage possible', 'low qrs voltages in the frontal leads', 'qt prolongation']


def generated_reports(n: int = 12245, n_distinct: int = 20000, seed: int = 0) -> list[str]:
    "Reports made of 1-6 phrases, repeated with a long-tailed frequency much like PTB-XL's."
    rng = np.random.default_rng(seed)
    pool = list(dict.fromkeys('. '.join(rng.choice(PHRASES, rng.integers(1, 7), replace=False)) + '.' for _ in range(3 * n_distinct)))[:n_distinct]
    weights = 1 / np.arange(1, len(pool) + 1) ** 0.6
    return [pool[i] for i in rng.choice(len(pool), n, p=weights / weights.sum())]


def timed(f, *a, **k):
    t = time.perf_counter(); r = f(*a, **k)
    return r, time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='tiny random BERT, 300 reports, 128-report sample')
    ap.add_argument('--model', default=None, help='a model folder or hub id (default: the packaged all-MiniLM-L6-v2)')
    ap.add_argument('--pooling', default=None)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--dtype', default=None, help='float32 (default), float16 or bfloat16')
    ap.add_argument('--batch_size', type=int, default=64)
    ap.add_argument('--sample', type=int, default=256, help='distinct reports for the sorted/unsorted comparison')
    ap.add_argument('--repeats', type=int, default=2, help='timings of the comparison, alternating; the best one counts')
    ap.add_argument('--chunks', type=int, default=4, help='the all/cold timings alternate over this many chunks of the reports')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides; 1 can win on a busy machine)')
    ap.add_argument('--reports', default=str(REPORTS_CSV), help="PTB-XL's report table (generated reports where it is absent)")
    ap.add_argument('--limit', type=int, default=None, help='use only the first LIMIT reports')
    ap.add_argument('--cache', default=None, help='cache folder to use and keep (default: a temporary one)')
    ap.add_argument('--json', default=None, help='also write the numbers to this JSON file')
    a = ap.parse_args(argv)

    import torch
    from etp_nbdev.text import EmbeddingCache, TextEncoder, make_tiny_bert, padded_tokens
    tmp = tempfile.TemporaryDirectory()
    if a.threads: torch.set_num_threads(a.threads)
    if a.quick:
        a.limit, a.sample, a.repeats = a.limit or 300, min(a.sample, 128), 1
        a.model = a.model or str(make_tiny_bert(Path(tmp.name) / 'tiny_bert'))

    enc, t_load = timed(TextEncoder, a.model, pooling=a.pooling, device=a.device, dtype=a.dtype, batch_size=a.batch_size)
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f"model: {enc}\n  loaded and hashed in {t_load:.1f} s; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f} (a shared machine: the numbers move with the other jobs)")

    if Path(a.reports).exists():
        import pandas as pd
        reports = pd.read_csv(a.reports, usecols=['report'], keep_default_na=False)['report'].tolist()
        source = f"PTB-XL reports ({Path(a.reports).name})"
    else:
        reports, source = generated_reports(), 'generated reports (PTB-XL reports not found)'
    reports = reports[:a.limit] if a.limit else reports
    distinct = list(dict.fromkeys(reports))
    print(f"reports: {len(reports):,} {source}, {len(distinct):,} distinct ({len(distinct) / len(reports):.0%})")
    res = dict(model=enc.model_id, device=str(enc.device), dtype=str(enc.dtype), batch_size=enc.batch_size,
               cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), load_average=load, source=source,
               n_reports=len(reports), n_distinct=len(distinct), load_seconds=round(t_load, 2))

    rng = np.random.default_rng(0)
    sample = [distinct[i] for i in rng.choice(len(distinct), min(a.sample, len(distinct)), replace=False)]
    L = enc.token_lengths(sample)
    enc.encode(sample[:enc.batch_size])  # warm-up
    print(f"1. throughput on {len(sample)} random distinct reports, batch {enc.batch_size} "
          f"({L.mean():.0f} tokens per report on average):")
    times = {True: [], False: []}
    for _ in range(a.repeats):
        for srt in (True, False): times[srt].append(timed(enc.encode, sample, sort_by_length=srt)[1])
    speeds = {srt: len(sample) / min(t) for srt, t in times.items()}
    for srt in (True, False):
        pad = padded_tokens(L, enc.batch_size, srt) / L.sum() - 1
        print(f"   {'length-sorted' if srt else 'input order  '}  {speeds[srt]:8.1f} sentences/s   (padding {pad:5.0%} of real tokens; "
              f"best of {a.repeats})", flush=True)
    print(f"   sorting is {speeds[True] / speeds[False]:.2f}x faster on this sample")
    L_all = enc.token_lengths(reports)
    w_sorted, w_unsorted = padded_tokens(L_all, enc.batch_size), padded_tokens(L_all, enc.batch_size, False)
    print(f"   the larger the set, the more uniform the sorted batches: on all {len(reports):,} reports the model would compute "
          f"{w_unsorted:,} token positions unsorted, {w_sorted:,} sorted ({w_unsorted / w_sorted:.2f}x less work)")
    res.update(sorted_per_s=round(speeds[True], 1), unsorted_per_s=round(speeds[False], 1), tokens_all_unsorted=w_unsorted)

    w_all, w_distinct = w_sorted, padded_tokens(enc.token_lengths(distinct), enc.batch_size)
    print(f"2. the cache on this report distribution ({len(reports):,} reports, {len(distinct):,} distinct); the model's work is "
          f"{w_all:,} token positions for all of them, {w_distinct:,} ({w_distinct / w_all:.0%}) for the distinct ones:")
    # 'all reports, no cache' and 'cold cache' run interleaved, chunk by chunk, so that a neighbour's job that starts or stops
    # halfway slows both alike; the cold cache meets each chunk's reports after the earlier chunks' ones
    cache_dir = Path(a.cache) if a.cache else Path(tmp.name) / 'cache'
    cache = EmbeddingCache(cache_dir)
    t_all = t_cold = 0.0; cold = []
    for chunk in np.array_split(np.arange(len(reports)), a.chunks):
        texts = [reports[i] for i in chunk]
        t_all += timed(enc.encode, texts)[1]
        e, dt = timed(cache.encode, texts, enc); cold.append(e); t_cold += dt
    cold = np.concatenate(cold)
    print(f"   encode all reports, no cache            {t_all:8.2f} s  ({len(reports) / t_all:6.1f} reports/s)")
    print(f"   cold cache: encodes the {cache.n_encoded:,} distinct ones {t_cold:6.2f} s  ({t_all / t_cold:.2f}x faster)", flush=True)
    warm, t_warm = timed(EmbeddingCache(cache_dir).encode, reports, enc)
    assert warm.tobytes() == cold.tobytes()
    hot, t_hot = timed(cache.encode, reports, enc)
    print(f"   warm cache, read back from disk          {t_warm:8.3f} s  ({t_all / t_warm:,.0f}x faster than no cache)")
    print(f"   warm cache, already in memory            {t_hot:8.3f} s")
    print(f"   a new run pays the model load ({t_load:.1f} s) plus {t_warm:.3f} s instead of {t_all:.1f} s; "
          f"{len(reports) * 50:,} report encodings over 50 epochs become {len(distinct):,}, once")
    res.update(tokens_all=w_all, tokens_distinct=w_distinct, all_seconds=round(t_all, 3), cold_seconds=round(t_cold, 3), warm_disk_seconds=round(t_warm, 4),
               warm_memory_seconds=round(t_hot, 4), encoded_cold=cache.n_encoded)
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
    tmp.cleanup()
    return res


if __name__ == '__main__':
    main()
