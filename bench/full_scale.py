"""Full scale before the first real run: every stage of the paper preset at PTB-XL size, on this machine, one table.

    python bench/full_scale.py                         # about 20 minutes on 2 CPU cores, 4 GB of disk in ./full_scale_work
    python bench/full_scale.py --stages prepare,fetch   # some stages only (data is made when missing)
    python bench/full_scale.py --records 3000 --sizes 1000,3000 --quick   # a small smoke run (what tests/test_bench.py runs)

The paper's first real run is 21,799 PTB-XL records at 500 Hz, BioClinicalBERT (110M parameters) and 50 epochs. This
script runs each stage of it as a user would, on a synthetic PTB-XL-format set of that size with the official split
sizes, each stage in a fresh process so that its peak memory is its own:

| stage    | what runs                                                            | measured                             |
|----------|----------------------------------------------------------------------|--------------------------------------|
| data     | `make_synthetic_ptbxl` (500 Hz), folds set to the official sizes     | time                                 |
| prepare  | `prepare` at 500 Hz on the first N records, for each N in --sizes    | time, peak memory (flat in N?)       |
| fetch    | `BatchFeeder` batches of 128 over the train split: memory map, preloaded | records/s (goal preloaded: 20,000)|
| text     | a BERT-base-shaped model (bench/bert_base_folder.py) on distinct reports | texts/s, projected to all reports |
| pretrain | `pretrain` with the paper's settings at 500 Hz, --max_steps bounded  | records/s against the bare encoder (goal 0.9) |
| probe    | features of every train, val and test record (or --probe_train train records); the probe protocol | time, memory |
| zeroshot | `zero_shot` on the 2,158-record test fold                            | time, memory                         |

Then the projection to 50 epochs: measured for this CPU, and from FLOPs for an A100 and an H100 (at the stated model
FLOP utilisations, since no GPU was measured). Every figure in the table says whether it is measured or projected.
The BERT-base folder has random weights: it measures speed and memory, never accuracy. Results go to
--work/full_scale.json as well.
"""
import argparse, ast, json, os, resource, shutil, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ('data', 'prepare', 'fetch', 'text', 'pretrain', 'probe', 'zeroshot')
OFFICIAL = dict(train=17_084, val=2_146, test=2_158)  # records with a superclass per split, PTB-XL v1.0.3 (REFERENCE.md §2)
GPUS = {'A100 (312 TFLOP/s bf16)': 312e12, 'H100 SXM (989 TFLOP/s bf16)': 989e12}
MFUS = (0.05, 0.2)  # model FLOP utilisations assumed for the GPU projections (a 1-D CNN with 64-512 channels; no GPU measured them)


PEAK_ANON = [0]  # the largest anonymous resident memory seen (RSS without mapped file pages, which the OS can drop), in kB


def sample_anon_memory(every: float = 0.1):
    "Track the peak RssAnon of this process in a background thread (Linux): the memory a stage really needs, page cache aside."
    import threading
    def loop():
        while True:
            try:
                for line in open('/proc/self/status'):
                    if line.startswith('RssAnon:'): PEAK_ANON[0] = max(PEAK_ANON[0], int(line.split()[1]))
            except OSError: return
            time.sleep(every)
    threading.Thread(target=loop, daemon=True).start()


def peak_mb() -> dict:
    "Peak resident memory of this process (mapped file pages included), its peak anonymous memory, and its children's peak."
    return dict(peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), peak_anon_mb=round(PEAK_ANON[0] / 1024),
                peak_children_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))


def set_official_folds(src: Path, sizes: dict = OFFICIAL, seed: int = 0) -> dict:
    "Rewrite `strat_fold` so that the records with a superclass split val/test exactly as PTB-XL's; the rest spread over folds 1-8."
    import numpy as np, pandas as pd
    from etp_nbdev.ptbxl import diagnostic_classes, load_scp_statements, superclasses_of
    db = pd.read_csv(src / 'ptbxl_database.csv', index_col='ecg_id')
    diag = diagnostic_classes(load_scp_statements(src))
    labelled = np.array([bool(superclasses_of(ast.literal_eval(c), diag)) for c in db.scp_codes])
    rng = np.random.default_rng(seed)
    fold = 1 + rng.integers(0, 8, len(db))  # folds 1-8: train
    lab = rng.permutation(np.flatnonzero(labelled))
    scale = 1 if len(lab) >= 0.9 * sum(sizes.values()) else len(lab) / sum(sizes.values())  # exact sizes; a small set gets the same shares
    n_test, n_val = (int(sizes[s] * scale) for s in ('test', 'val'))
    fold[lab[:n_test]], fold[lab[n_test:n_test + n_val]] = 10, 9
    unl = rng.permutation(np.flatnonzero(~labelled))  # records without a superclass: the same shares as the labelled ones
    k_test, k_val = (int(round(len(unl) * n / max(len(lab), 1))) for n in (n_test, n_val))
    fold[unl[:k_test]], fold[unl[k_test:k_test + k_val]] = 10, 9
    db['strat_fold'] = fold
    db.to_csv(src / 'ptbxl_database.csv')
    return dict(records=len(db), with_superclass=int(labelled.sum()), test=n_test, val=n_val, train=int(labelled.sum()) - n_test - n_val)


def subset_source(src: Path, n: int) -> Path:
    "A PTB-XL folder listing the first `n` records of `src` (records linked, not copied)."
    import pandas as pd
    sub = src.parent / f'{src.name}_first{n}'
    if not (sub / 'ptbxl_database.csv').exists():
        sub.mkdir(exist_ok=True)
        for d in ('records100', 'records500'):
            if (src / d).exists() and not (sub / d).exists(): (sub / d).symlink_to((src / d).resolve())
        shutil.copy(src / 'scp_statements.csv', sub / 'scp_statements.csv')
        pd.read_csv(src / 'ptbxl_database.csv').head(n).to_csv(sub / 'ptbxl_database.csv', index=False)
    return sub


# ---------- the stages; each runs in its own process and returns a dict ----------
def stage_data(a, w: Path) -> dict:
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    from bert_base_folder import make_bert_base_folder
    out = {}
    if not (w / 'src' / 'ptbxl_database.csv').exists():
        t = time.time()
        from etp_nbdev.demo import BALANCED_MIX  # --quick: every class in a small test fold; otherwise PTB-XL's own mix
        make_synthetic_ptbxl(w / 'src', n_records=a.records, seed=0, rates=(a.fs,), n_jobs=a.n_jobs, overwrite=True,
                             mix=BALANCED_MIX if a.quick else None)
        out['generate_s'] = round(time.time() - t, 1)
    out['folds'] = set_official_folds(w / 'src')  # deterministic: the same folds on every call
    if not (w / 'text_model' / 'config.json').exists() and not a.text_model:
        kw = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=256) if a.quick else {}
        make_bert_base_folder(w / 'text_model', **kw)
    out['disk_gb'] = round(sum(f.stat().st_size for f in (w / 'src').rglob('*') if f.is_file()) / 1e9, 2)
    return out


def stage_prepare(a, w: Path) -> dict:
    "Each size in a fresh process (bench/prepare_throughput.py's runner): time, records/s, peak memory of main process and workers."
    from prepare_throughput import RUN
    runs = []
    for n in a.sizes:
        src = w / 'src' if n >= a.records else subset_source(w / 'src', n)
        dest = w / ('prepared' if n >= a.records else f'prepared_first{n}')
        if dest.exists(): shutil.rmtree(dest)
        r = json.loads(subprocess.run([sys.executable, '-c', RUN, str(src), str(dest), str(a.fs), str(a.n_jobs)], capture_output=True,
                                      text=True, check=True).stdout.strip().splitlines()[-1])
        runs.append(dict(n=n, seconds=round(r['seconds'], 1), records_per_s=round(n / r['seconds']), main_mb=round(r['main_mb']),
                         worker_mb=round(r['worker_mb']), array_gb=round((dest / 'signals.f16').stat().st_size / 1e9, 2)))
        print(f"  prepare {n:6d} records: {runs[-1]}", flush=True)
    return dict(runs=runs)


def stage_fetch(a, w: Path) -> dict:
    import numpy as np, torch
    from etp_nbdev.prepare import Prepared
    from etp_nbdev.pretrain import BatchFeeder, epoch_batches
    p, cpu, out = Prepared(w / 'prepared'), torch.device('cpu'), {}
    for how in ('no', 'yes'):
        t = time.time()
        f = BatchFeeder(p, 'train', cpu, preload=how, num_workers=a.n_jobs)
        load_s = time.time() - t
        batches = epoch_batches(len(f), 128, epoch=0)
        if how == 'no': batches = batches[:a.fetch_batches]
        n, t = 0, time.time()
        for _, x in f.batches(batches): n += len(x)
        dt = time.time() - t
        out['memmap' if how == 'no' else 'preloaded'] = dict(records=n, seconds=round(dt, 2), records_per_s=round(n / dt), load_s=round(load_s, 1),
                                                            split_gb=round(f.nbytes / 1e9, 2))
        del f
    return out


def stage_text(a, w: Path) -> dict:
    import numpy as np
    from etp_nbdev.prepare import Prepared
    from etp_nbdev.text import TextEncoder
    p = Prepared(w / 'prepared')
    texts = p.reports['text'].astype(str).tolist()
    enc = TextEncoder(a.text_model or str(w / 'text_model'))
    n_params = sum(q.numel() for q in enc.model.parameters())
    pick = np.random.default_rng(0).permutation(len(texts))[:a.text_sample]  # a random sample: the same length mix as all reports
    sample = [texts[i] for i in pick]
    enc.encode(sample[:8])  # warm-up
    t = time.time()
    enc.encode(sample)
    dt = time.time() - t
    n_tok = [len(enc.tokenizer(s, truncation=True, max_length=enc.max_length)['input_ids']) for s in sample]
    rate = len(sample) / dt
    per_epoch = len(p.indices('train'))
    return dict(text_model=enc.name, params_m=round(n_params / 1e6, 1), hidden=enc.hidden_size, distinct_reports=len(texts), records=len(p),
                sample=len(sample), seconds=round(dt, 1), texts_per_s=round(rate, 1), mean_tokens=round(float(np.mean(n_tok)), 1),
                all_distinct_s=round(len(texts) / rate), every_step_50_epochs_s=round(50 * per_epoch / rate),
                gflop_per_text=round(2 * (n_params - enc.model.embeddings.word_embeddings.weight.numel()) * float(np.mean(n_tok)) / 1e9, 2))


def stage_pretrain(a, w: Path) -> dict:
    "The paper's settings at 500 Hz on the first --pretrain_records records, bounded by --max_steps; the bare encoder as the ceiling."
    import numpy as np, pandas as pd, torch
    from etp_nbdev.prepare import Prepared
    from etp_nbdev.pretrain import PretrainConfig, build_model, pretrain
    from etp_nbdev.text import TextEncoder
    n = a.pretrain_records
    prep = w / ('prepared' if n >= a.records else f'prepared_first{n}')
    if not (prep / 'manifest.json').exists():
        from etp_nbdev.prepare import prepare
        prepare(subset_source(w / 'src', n), prep, fs=a.fs, n_jobs=a.n_jobs, verbose=False)
    p, text_model = Prepared(prep), a.text_model or str(w / 'text_model')
    out, cache = w / 'run', w / 'text_cache'
    for d in (out, cache): shutil.rmtree(d, ignore_errors=True)
    steps = a.warmup + a.steps
    t = time.time()
    s = pretrain(PretrainConfig(data=str(prep), out=str(out), text_model=text_model, text_cache=str(cache), device='cpu', max_steps=steps,
                                progress=False))
    wall = time.time() - t
    m = pd.read_csv(out / 'metrics.csv').query("kind == 'step'")
    dt = np.diff(m['elapsed_s'].to_numpy(float))[a.warmup - 1:]
    loop_rs = 128 / dt.mean()
    startup = wall - float(m['elapsed_s'].iloc[-1])
    # the ceiling: the same model, forward + backward + Adam on a batch in memory
    enc = TextEncoder(text_model)
    cfg = PretrainConfig(data=str(prep), text_model=text_model)
    model = build_model(cfg, a.fs, enc)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    x = torch.from_numpy(np.array(p.signals[p.indices('train')[:128]])).float()
    feats = torch.randn(128, enc.hidden_size)
    def bare():
        e, t_ = model(x, feats)
        loss = (e * t_).sum()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(a.warmup): bare()
    t = time.time()
    for _ in range(a.steps): bare()
    bare_rs = 128 * a.steps / (time.time() - t)
    return dict(records=len(p), train=len(p.indices('train')), steps=s['steps'], text_model=enc.name, loop_records_per_s=round(loop_rs, 1),
                bare_records_per_s=round(bare_rs, 1), efficiency=round(loop_rs / bare_rs, 3), startup_s=round(startup, 1),
                distinct_reports=len(p.reports), feeder=s.get('feeder'), threads=torch.get_num_threads())


def stage_probe(a, w: Path) -> dict:
    import numpy as np
    from etp_nbdev.checkpoint import load_checkpoint
    from etp_nbdev.prepare import Prepared, split_labels, check_classes_present
    from etp_nbdev.probe import extract_split_features, linear_probe_features
    p = Prepared(w / 'prepared')
    rows, labels = {}, {}
    for s in ('train', 'val', 'test'): rows[s], labels[s] = split_labels(p, s, 'single')
    n_train_all = len(rows['train'])
    keep = np.sort(np.random.default_rng(0).permutation(n_train_all)[:a.probe_train or n_train_all])
    rows['train'], labels['train'] = rows['train'][keep], labels['train'][keep]
    check_classes_present(labels, p.classes)
    ck = load_checkpoint(str(w / 'run') if (w / 'run' / 'checkpoint.pt').exists() else 'random', fs=a.fs)
    t = time.time()
    feats = extract_split_features(ck.encoder, p, rows, device='cpu')
    feat_s = time.time() - t
    n_feat = sum(len(r) for r in rows.values())
    t = time.time()
    res = linear_probe_features(feats, labels, p.classes, verbose=False)
    fit_s = time.time() - t
    return dict(checkpoint=ck.source, records_embedded=n_feat, train_used=len(rows['train']), train_all=n_train_all, val=len(rows['val']),
                test=len(rows['test']), features_s=round(feat_s, 1), records_per_s=round(n_feat / feat_s, 1), fit_s=round(fit_s, 1),
                all_features_s_projected=round((n_train_all + len(rows['val']) + len(rows['test'])) * feat_s / n_feat))


def stage_zeroshot(a, w: Path) -> dict:
    from etp_nbdev.zeroshot import zero_shot
    run = w / 'run'
    if not (run / 'checkpoint.pt').exists(): raise SystemExit("zeroshot needs the pretrain stage's checkpoint: run --stages pretrain first")
    t = time.time()
    r = zero_shot(str(run), w / 'prepared', text_model=a.text_model or str(w / 'text_model'), device='cpu', verbose=False)
    return dict(records=r['data']['n'], seconds=round(time.time() - t, 1), split=r['split'])


# ---------- the driver ----------
def run_stage(name: str, argv: list) -> dict:
    t = time.time()
    r = subprocess.run([sys.executable, __file__, *argv, '--_stage', name], capture_output=True, text=True,
                       env=dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONPATH=str(HERE)))
    if r.returncode:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-6000:])
        raise SystemExit(f"stage {name} failed (exit {r.returncode})")
    for line in r.stdout.splitlines():
        if not line.startswith('RESULT '): print(line, flush=True)
    res = json.loads([l for l in r.stdout.splitlines() if l.startswith('RESULT ')][-1][7:])
    res['wall_s'] = round(time.time() - t, 1)
    return res


def fmt_table(R: dict, a) -> str:
    "One markdown table of every stage, each figure labelled measured or projected."
    L = ["| stage | figure | value | kind |", "|---|---|---|---|"]
    def row(stage, what, value, kind='measured'): L.append(f"| {stage} | {what} | {value} | {kind} |")
    def mem(r): return (f"{r['peak_anon_mb']:,} MB anonymous (peak RSS {r['peak_rss_mb']:,} MB with the mapped data pages)" if r.get('peak_anon_mb')
                        else f"peak RSS {r['peak_rss_mb']:,} MB")
    if 'data' in R and 'folds' in R['data']:
        d = R['data']
        if 'generate_s' in d: row('data', f"synthetic PTB-XL, {a.records:,} records at {a.fs} Hz ({d['disk_gb']} GB)", f"{d['generate_s']:.0f} s")
        f = d['folds']; row('data', 'records with a superclass: train / val / test', f"{f['train']:,} / {f['val']:,} / {f['test']:,}")
    if 'prepare' in R:
        for r in R['prepare']['runs']:
            row('prepare', f"{r['n']:,} records ({r['array_gb']} GB array)",
                f"{r['seconds']:.0f} s, {r['records_per_s']:,} records/s, peak {r['main_mb']:,} MB main + {r['worker_mb']:,} MB per reader")
    if 'fetch' in R:
        for k in ('memmap', 'preloaded'):
            f = R['fetch'][k]
            row('fetch', f"batches of 128, {k} ({f['split_gb']} GB train split{', loaded in %.0f s' % f['load_s'] if k == 'preloaded' else ''})",
                f"{f['records_per_s']:,} records/s" + (f", {mem(R['fetch'])}" if k == 'preloaded' else ''))
    if 'text' in R:
        t = R['text']
        row('text', f"{t['text_model']} ({t['params_m']}M parameters, random weights), {t['sample']} reports of {t['mean_tokens']} tokens on average",
            f"{t['texts_per_s']} texts/s")
        row('text', f"all {t['distinct_reports']:,} distinct reports once (the cache)", f"{t['all_distinct_s']:,} s",
            'measured' if t['sample'] >= t['distinct_reports'] else 'projected from the rate')
        row('text', 'encoding every step instead, 50 epochs', f"{t['every_step_50_epochs_s']:,} s", 'projected from the rate')
    if 'pretrain' in R:
        p = R['pretrain']
        row('pretrain', f"etp_pretrain loop at {a.fs} Hz, batch 128, {p['steps']} steps ({p['text_model']})", f"{p['loop_records_per_s']} records/s")
        row('pretrain', 'bare encoder + heads (forward, backward, Adam)', f"{p['bare_records_per_s']} records/s")
        row('pretrain', 'pipeline efficiency (loop / bare; goal 0.9)', f"{p['efficiency']:.2f}")
        row('pretrain', f"start-up: load, text features of {p['distinct_reports']:,} distinct reports", f"{p['startup_s']:.0f} s")
        row('pretrain', 'memory of the run (model, optimiser, preloaded split, text model)', mem(p))
    if 'probe' in R:
        q = R['probe']
        row('probe', f"features of {q['records_embedded']:,} records ({q['train_used']:,} train, {q['val']:,} val, {q['test']:,} test)",
            f"{q['features_s']:.0f} s, {q['records_per_s']} records/s, {mem(q)}")
        if q['train_used'] < q['train_all']:
            row('probe', f"features of all {q['train_all'] + q['val'] + q['test']:,} records", f"{q['all_features_s_projected']:,} s", 'projected from the rate')
        row('probe', 'fit and test the probes (3 fractions x 3 seeds, bootstrap)', f"{q['fit_s']:.0f} s")
    if 'zeroshot' in R:
        z = R['zeroshot']
        row('zeroshot', f"{z['records']:,} single-label {z['split']} records, prompts, bootstrap", f"{z['seconds']:.0f} s, {mem(z)}")
    train = R.get('data', {}).get('folds', {}).get('train') or OFFICIAL['train']
    if 'pretrain' in R:
        cpu_s = 50 * train / R['pretrain']['loop_records_per_s']
        row('50 epochs', f"this CPU ({R['pretrain']['threads']} threads), {train:,} records x 50", f"{cpu_s / 3600:.1f} h", 'projected from the measured loop')
    from etp_nbdev.resnet1d import count_flops, resnet18_1d
    flops = 50 * train * count_flops(resnet18_1d(), 10 * a.fs)  # ResNet18-1D forward + backward per record (10_resnet1d)
    for gpu, peak in GPUS.items():
        row('50 epochs', f"{gpu}, {flops / 1e15:.2f} PFLOP", ' / '.join(f"{flops / (peak * m):.0f} s at {m:.0%} MFU" for m in MFUS),
            'projected from FLOPs')
    if 'text' in R:
        t = R['text']
        tf = t['distinct_reports'] * t['gflop_per_text'] * 1e9
        row('text on a GPU', f"all {t['distinct_reports']:,} distinct reports, {tf / 1e12:.0f} TFLOP, H100",
            ' / '.join(f"{tf / (GPUS['H100 SXM (989 TFLOP/s bf16)'] * m):.1f} s at {m:.0%} MFU" for m in MFUS), 'projected from FLOPs')
    return '\n'.join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default='full_scale_work', help='folder for the data, models and results (reused: data is made once)')
    ap.add_argument('--stages', default=','.join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    ap.add_argument('--records', type=int, default=21_799, help='synthetic PTB-XL records (PTB-XL v1.0.3: 21,799)')
    ap.add_argument('--fs', type=int, default=500, choices=(100, 500))
    ap.add_argument('--sizes', default='2000,5000,10000,21799', help='numbers of records to prepare, to see memory as N grows')
    ap.add_argument('--n_jobs', type=int, default=2)
    ap.add_argument('--text_model', default=None, help='text model folder (default: a BERT-base-shaped random model made in --work)')
    ap.add_argument('--text_sample', type=int, default=512, help='distinct reports to encode (the rate is projected to all; more than there are: all, measured)')
    ap.add_argument('--fetch_batches', type=int, default=20, help='batches read from the memory map')
    ap.add_argument('--pretrain_records', type=int, default=2000, help='records of the set pretrained on (its distinct reports are encoded at start-up)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=4, help='timed pretraining steps')
    ap.add_argument('--probe_train', type=int, default=0, help='train records embedded for the probe (0: all; all val and test are)')
    ap.add_argument('--quick', action='store_true', help='a tiny text model instead of BERT-base (a smoke test of this script)')
    ap.add_argument('--_stage', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.sizes = [min(int(s), a.records) for s in a.sizes.split(',') if s]
    w = Path(a.work); w.mkdir(parents=True, exist_ok=True)
    if a._stage:  # a child process: run one stage, print its result
        sample_anon_memory()
        res = globals()[f'stage_{a._stage}'](a, w)
        print('RESULT ' + json.dumps({**res, **peak_mb()}), flush=True)
        return
    stages = [s.strip() for s in a.stages.split(',') if s.strip()]
    bad = set(stages) - set(STAGES)
    if bad: ap.error(f"unknown stage(s) {sorted(bad)}; choose from {', '.join(STAGES)}")
    argv = sys.argv[1:]
    results_file = w / 'full_scale.json'
    R = json.loads(results_file.read_text()) if results_file.exists() else {}
    for s in ['data'] + [s for s in stages if s != 'data']:
        print(f"== {s}", flush=True)
        R[s] = {**R.get(s, {}), **run_stage(s, argv)} if s == 'data' else run_stage(s, argv)  # data: keep the generation time of the run that made it
        print(f"   {json.dumps(R[s])}", flush=True)
        results_file.write_text(json.dumps(R, indent=1))
    print(f"\nload average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs; results in {results_file}\n")
    print(fmt_table(R, a))


if __name__ == '__main__':
    main()
