"`etp_demo`, the main job, run as a user runs it: a console script in a fresh process, on synthetic and on real data."
import json, os, re, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest

BIN = Path(sys.executable).parent
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg')


def demo(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'etp_demo'), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """One run of the tiny preset on synthetic data, shared by the tests below: (output folder, completed process, metrics
    before it if it continued an earlier run).

    `make test` runs the tiny demo once: `90_demo` runs it in stage 2 into $ETP_SHARED_TINY_DEMO/demo, and here the
    command continues that run with --resume (every stage runs again from the command line; nothing is generated or
    trained twice). Without that folder (pytest alone), the command runs it from scratch."""
    shared = Path(os.environ.get('ETP_SHARED_TINY_DEMO', '/nonexistent')) / 'demo'
    if (shared / 'metrics.json').exists():
        before = json.loads((shared / 'metrics.json').read_text())
        r = demo('--preset', 'tiny', '--out', shared, '--resume', '--tsne_points', 0)  # t-SNE maps may change on resume: none, to save time
        out = shared
    else:
        out, before = tmp_path_factory.mktemp('demo') / 'out', None
        r = demo('--preset', 'tiny', '--out', out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r, before


def test_help_explains_the_command():
    out = ' '.join(demo('--help').stdout.split())  # argparse wraps at the terminal's width
    for opt in ('--preset', 'tiny', 'paper', '--ptbxl', '--cpsc', '--resume', '--strict', 'no network', 'folds 1-8'):
        assert opt in out, opt


def test_tiny_demo_runs_every_stage_and_writes_a_report(tiny):
    out, r, _ = tiny
    for stage in ('[1/4] data', '[2/4] pretraining', '[3/4] evaluation', '[4/4] report', 'done in'): assert stage in r.stdout, stage
    m = json.loads((out / 'metrics.json').read_text())
    assert set(m['evaluation']) == {'ptbxl', 'cpsc2018'} and m['pretrain']['ETP']['epochs'] == m['pretrain']['SimCLR']['epochs'] == 3
    report = (out / 'report.md').read_text()
    for section in ('## Checks', '## Data', '## Pretraining', '## Linear evaluation (paper Table 1)', '### PTB-XL (paper Table 2)',
                    '**ETP, prompt ensemble** (ours)', 'not ranked',
                    '### CPSC2018 (paper Table 3)', '## Figures', '## Reproduce', 'etp_demo --out'):
        assert section in report, section
    images = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', report)
    assert len(images) >= 20 and all((out / i).read_bytes()[:4] == b'\x89PNG' for i in images)
    # the numbers in metrics.json and in the report are those the evaluation wrote, not made up
    for ds in ('ptbxl', 'cpsc2018'):
        zs = json.loads((out / 'eval' / ds / 'zeroshot' / 'etp' / 'zeroshot.json').read_text())
        assert m['evaluation'][ds]['zero_shot']['ETP']['average'] == zs['average']
        ens = json.loads((out / 'eval' / ds / 'zeroshot' / 'etp_ensemble' / 'zeroshot.json').read_text())  # beside it: the prompt ensemble
        assert ens['ensemble'] and m['evaluation'][ds]['zero_shot']['ETP, prompt ensemble']['average'] == ens['average']
        assert max(map(len, ens['prompts'].values())) > 1 and all(len(p) == 1 for p in zs['prompts'].values())
        probe = json.loads((out / 'eval' / ds / 'probe' / 'etp' / 'probe.json').read_text())
        assert m['evaluation'][ds]['probe']['ETP']['1']['macro_auc'] == probe['summary']['1']['macro_auc']
        assert f"{100 * probe['summary']['1']['macro_auc']['mean']:.1f} ± " in report
        # the three encoders were probed on the same saved label subsets
        subsets = {json.dumps(r['subset']) for name in ('random_init', 'simclr', 'etp')
                   for r in json.loads((out / 'eval' / ds / 'probe' / name / 'probe.json').read_text())['runs']}
        assert len(subsets) == 2  # 10% and 100% with one seed, shared by all three
    checks = m['checks']
    assert len(checks) == 7 and all(c['passed'] in (True, False) for c in checks)
    assert sum(f"| {c['check']} | {c['value']} |" in report for c in checks) == len(checks)
    for c in checks: assert ('pass' if c['passed'] else 'FAIL') + f": {c['check']}" in r.stdout


def test_resume_reuses_the_run_and_refuses_other_settings(tiny):
    out, r, before = tiny
    if before is None:  # the fixture ran from scratch: resume it now
        before = json.loads((out / 'metrics.json').read_text())
        r = demo('--preset', 'tiny', '--out', out, '--resume', '--tsne_points', 0)  # t-SNE maps may change on resume: none, to save time
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'reusing' in r.stdout and 'generating' not in r.stdout
    after = json.loads((out / 'metrics.json').read_text())
    assert after['pretrain']['ETP']['steps'] == before['pretrain']['ETP']['steps']
    # the same models, the same numbers (to float noise: the notebook's kernel and the command may use different thread counts)
    for m, z in before['evaluation']['ptbxl']['zero_shot'].items():
        assert all(abs(after['evaluation']['ptbxl']['zero_shot'][m]['average'][k] - v) < 0.005 for k, v in z['average'].items()), m
    bad = demo('--preset', 'tiny', '--out', out, '--resume', '--epochs', 4)
    assert bad.returncode == 2 and 'epochs: then 3, now 4' in bad.stderr and 'Traceback' not in bad.stderr


def test_real_ptbxl_and_a_cpsc_subset_too_small_to_evaluate(shared_data, tmp_path):
    out = tmp_path / 'real'
    r = demo('--preset', 'tiny', '--ptbxl', shared_data / 'ptbxl', '--cpsc', shared_data / 'cpsc2018', '--out', out, '--epochs', 1, '--methods', 'etp', '--tsne_points', 0)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((out / 'metrics.json').read_text())
    cp = m['evaluation']['cpsc2018']
    assert 'has no record of class' in cp['probe_skipped'] and 'probe' not in cp  # 24 records: no probe, and the reason is reported
    assert 'cpsc2018: linear probes SKIPPED' in r.stdout and '**cpsc2018: linear probes not run.**' in (out / 'report.md').read_text()
    zs = cp['zero_shot']['ETP']  # zero-shot needs no training labels: it runs on the test split, absent classes n/a
    assert zs['n'] > 0 and all(zs['per_class'][c]['auc'] is None for c in zs['absent']) and 0 <= zs['average']['auc'] <= 1, zs
    assert 'n/a (no record in the split)' in (out / 'report.md').read_text()
    # PTB-XL: folds 1-8 pretrain, 9 selects, 10 tests
    db = pd.read_csv(shared_data / 'ptbxl' / 'ptbxl_database.csv', index_col='ecg_id')
    meta = pd.read_csv(out / 'data' / 'ptbxl_100hz' / 'meta.csv', dtype={'id': str})
    fold = db.loc[meta['id'].astype(int), 'strat_fold'].to_numpy()
    assert (meta['split'].to_numpy() == pd.Series(fold).map(lambda f: 'test' if f == 10 else 'val' if f == 9 else 'train').to_numpy()).all()
    probe = json.loads((out / 'eval' / 'ptbxl' / 'probe' / 'etp' / 'probe.json').read_text())
    assert probe['data']['n']['test'] == int(((meta['split'] == 'test') & (meta['label'] >= 0)).sum())
    assert m['pretrain']['ETP']['train_records'] == int(((meta['split'] == 'train') & meta['report'].fillna('').str.strip().ne('')).sum())
    assert m['config']['ptbxl'] is not None and len(m['checks']) == 4  # PTB-XL: zero-shot and probes at 10% and 100%; CPSC2018: zero-shot only


@pytest.mark.parametrize('args, message', [
    (['--cpsc', '.'], 'needs --ptbxl too'),
    (['--ptbxl', '/no/such/folder'], 'no such folder'),
    (['--preset', 'huge'], 'preset must be one of'),
    (['--fractions', 'half'], 'comma-separated numbers'),
    (['--fs', '250'], 'fs must be 100 or 500'),
    (['--text', 'german'], 'text must be one of'),
    (['--preset', 'paper', '--ptbxl', '.'], 'the hub is switched off'),  # BioClinicalBERT offline: said before any work
])
def test_bad_arguments_are_refused_with_a_message(args, message, tmp_path):
    r = demo('--out', tmp_path / 'o', *args)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'o').exists()  # nothing written before the settings are checked
