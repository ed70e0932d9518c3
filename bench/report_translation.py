"""Benchmark of `etp_nbdev.report_text`: translation coverage, distinct texts, German left, and speed on PTB-XL reports.

    python bench/report_translation.py                         # ../shared/data/ptbxl/ptbxl_reports_only.csv
    python bench/report_translation.py path/to/ptbxl_database.csv --top 20

Reads any CSV with a `report` column (PTB-XL's `ptbxl_database.csv` layout). Prints the language mix, the share of
non-empty reports with no German word left before and after translation, the number of distinct texts after each step
(the text encoder runs once per distinct text), the most frequent German words left, and the time per 1,000 reports
(best of `--repeats` runs, single process). The shared subset lives in ../shared/data (developer checkouts and CI only).
"""
import argparse, time
from collections import Counter
from pathlib import Path

import pandas as pd

from etp_nbdev.report_text import clean_report, detect_language, german_words, translate_report, translation_coverage

DEFAULT_CSV = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'ptbxl' / 'ptbxl_reports_only.csv'


def best_time(fn, repeats: int) -> float:
    "Fastest of `repeats` runs of `fn()`, in seconds."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('csv', nargs='?', default=str(DEFAULT_CSV), help=f"CSV with a 'report' column (default: {DEFAULT_CSV})")
    p.add_argument('--top', type=int, default=15, help='how many remaining German words to list')
    p.add_argument('--repeats', type=int, default=3, help='timing runs (the fastest is reported)')
    a = p.parse_args(argv)
    path = Path(a.csv)
    if not path.exists():
        p.error(f"{path} not found: pass a CSV with a 'report' column (the shared PTB-XL subset exists in developer checkouts and CI only)")
    reports = pd.read_csv(path)
    if 'report' not in reports: p.error(f"{path} has no 'report' column (columns: {', '.join(reports.columns[:10])}...)")
    raw = reports['report'].tolist()
    n = len(raw)

    cleaned = [clean_report(r) for r in raw]
    translated = [translate_report(r) for r in raw]
    cov = translation_coverage(raw)
    nonempty = [i for i, c in enumerate(cleaned) if c]
    langs = Counter(detect_language(cleaned[i]) for i in nonempty)
    left = Counter(w for i in nonempty for w in set(german_words(translated[i], clean=False)))
    t_clean = best_time(lambda: [clean_report(r) for r in raw], a.repeats)
    t_both = best_time(lambda: [translate_report(r) for r in raw], a.repeats)
    per_k = lambda t: 1000 * t / max(n, 1) * 1000  # ms per 1,000 reports

    print(f"reports: {n:,} in {path} ({cov['n_reports']:,} non-empty after cleaning)")
    mix = '  '.join(f"{l} {langs[l] / max(len(nonempty), 1):.1%}" for l in ('de', 'en', 'sv'))
    print(f"language mix (cleaned, by lexicon): {mix}")
    print(f"coverage (share of non-empty reports with no German word): before {100 * cov['before']:.2f}%  "
          f"after {100 * cov['after']:.2f}%  ({cov['n_german_before']:,} -> {cov['n_german_after']:,} reports with German)")
    print(f"unique texts: raw {pd.Series(raw).dropna().nunique():,}  cleaned {len({cleaned[i] for i in nonempty}):,}  "
          f"translated {len({translated[i] for i in nonempty}):,}")
    print(f"time per 1,000 reports: clean {per_k(t_clean):.1f} ms  clean+translate {per_k(t_both):.1f} ms  "
          f"(best of {a.repeats}, one process)")
    top = ', '.join(f"{w} ({c})" for w, c in left.most_common(a.top)) or 'none'
    print(f"top remaining German words (reports containing each): {top}")


if __name__ == '__main__': main()
