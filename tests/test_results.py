"`etp_report`: our results beside the paper's tables, the figures, and what it says when there is nothing to report."
import json, subprocess
import numpy as np
import pytest
from fastcore.script import anno_parser
from etp_nbdev.core import CPSC_CLASSES
from etp_nbdev.probe import compare_probes, linear_probe, make_toy_prepared
from etp_nbdev.zeroshot import aligned_model, class_prompts, zero_shot
from etp_nbdev.model import save_etp
from etp_nbdev.results import PAPER_TABLE1, PAPER_TABLE2, etp_report, load_results, make_report

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    "Probe results of two methods and zero-shot results with an oracle, on generated PTB-XL-class data."
    tmp = tmp_path_factory.mktemp('results')
    data = make_toy_prepared(tmp / 'data', n=(60, 20, 30), seconds=2.0)
    compare_probes({'Random init': 'random', 'Random init, seed 1': 'random'}, data, tmp / 'res' / 'probe', fractions=(0.1, 1.0),
                   seeds=(0, 1), n_boot=50, device='cpu', verbose=False)
    classes = list(data.classes)
    patterns = np.asarray(data.signals[[int(np.flatnonzero(data.meta['label'].values == c)[0]) for c in range(5)]], dtype=np.float32)
    model, text = aligned_model(patterns, class_prompts(classes), fs=100)
    save_etp(model, tmp / 'aligned')
    zero_shot(tmp / 'aligned', data, tmp / 'res' / 'zeroshot', text_encoder=text, method='ETP', n_boot=50, oracle=True, device='cpu', verbose=False)
    # CPSC2018's nine classes: the other column of Table 1, and Table 3
    cpsc = make_toy_prepared(tmp / 'cpsc', n=(45, 18, 27), classes=CPSC_CLASSES, seconds=2.0)
    linear_probe('random', cpsc, tmp / 'res' / 'cpsc_probe', fractions=(1.0,), seeds=(0,), n_boot=20, device='cpu', verbose=False)
    model, text = aligned_model(np.zeros((9, 12, 200)) + np.arange(9)[:, None, None], class_prompts(CPSC_CLASSES), fs=100)
    zero_shot(model_ck(model), cpsc, tmp / 'res' / 'cpsc_zs', text_encoder=text, method='ETP', n_boot=0, device='cpu', verbose=False)
    return tmp


def model_ck(model):
    from etp_nbdev.checkpoint import Checkpoint
    return Checkpoint(model.ecg_encoder, model, 'ETP', 'in memory', {'temperature': 0.07}, 100)


def test_help():
    out = anno_parser(etp_report.__wrapped__, 'etp_report').format_help()  # what `etp_report --help` prints
    for opt in ('results', '--out', '--tsne_points', '--no_plots', 'probe.json'): assert opt in out


def test_report_puts_our_numbers_beside_the_papers(results):
    out = results / 'report'
    r = subprocess.run(['etp_report', str(results / 'res'), '--out', str(out), '--tsne_points', '300'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (out / 'report.md').read_text()
    assert r.stdout.startswith('# ETP evaluation report') and md.strip() in r.stdout
    # the paper's rows, verbatim
    for m, v in PAPER_TABLE1.items(): assert f"| {m} | paper | {v['ptbxl'][0]:.1f} | {v['ptbxl'][1]:.1f} |" in md
    assert '| NORM | ' + ' / '.join(f"{x:.1f}" for x in PAPER_TABLE2['Random init']['NORM']) in md
    # ours: both probes in Table 1 and the label-efficiency table, the zero-shot column, the oracle labelled as such
    assert '**Random init** | ours |' in md and '**Random init, seed 1** | ours |' in md
    assert '10% labels | 100% labels' in md and '**ETP** (ours)' in md and '| **average** |' in md
    assert 'ORACLE, not a valid estimate' in md
    assert '### CPSC2018 (paper Table 3)' in md and '| LBBB | 33.3 / 4.9 / 6.0 | 81.3 / 94.0 / 35.1 |' in md
    row = next(l for l in md.splitlines() if l.startswith('| **Random init** | ours |'))
    assert row.count('±') == 4  # PTB-XL and CPSC2018 columns both filled
    # the figures: ROC, confusion, t-SNE per probe; ROC, confusion, similarity heatmap, t-SNE for zero-shot; all linked
    pngs = sorted(p.name for p in out.glob('*.png'))
    assert len(pngs) == 3 * 3 + 2 * 4 and {'zeroshot_similarity_etp_ptbxl.png', 'zeroshot_similarity_etp_cpsc2018.png'} <= set(pngs)
    for p in pngs: assert (out / p).read_bytes()[:8] == PNG and f"]({p})" in md


def test_results_are_ordered_and_labelled_uniquely(results, tmp_path):
    docs = load_results([results / 'res' / 'zeroshot', results / 'res' / 'probe'])  # the CPSC results are not asked for
    assert [(d['kind'], d['label']) for d in docs] == [('linear_probe', 'Random init'), ('linear_probe', 'Random init, seed 1'),
                                                      ('zero_shot', 'ETP')]
    text = make_report(results / 'res' / 'probe' / 'random_init' / 'probe.json', tmp_path, plots=False)
    assert '## Zero-shot' not in text and '## Figures' not in text and (tmp_path / 'report.md').exists()


def test_nothing_to_report_is_a_clear_error(tmp_path):
    (tmp_path / 'results').mkdir()
    r = subprocess.run(['etp_report', str(tmp_path / 'results'), '--out', str(tmp_path / 'o')], capture_output=True, text=True)
    assert r.returncode != 0 and 'no probe.json or zeroshot.json found' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path / 'o').exists()
    (tmp_path / 'probe.json').write_text(json.dumps({'kind': 'something else'}))
    with pytest.raises(ValueError, match='not a result of etp_probe or etp_zeroshot'): load_results(tmp_path)


def test_several_pretraining_seeds_are_pooled_and_ranked_only_where_intervals_separate(results, tmp_path):
    "Random init drawn with three seeds is one method: one row, mean ± std over the seeds, a t-interval, and no ranking claimed without separation."
    data = results / 'data'
    compare_probes({f'random {s}': dict(checkpoint='random', method='Random init', init_seed=s) for s in (0, 1, 2)}, data, tmp_path / 'seeds',
                   fractions=(1.0,), seeds=(0, 1), n_boot=0, device='cpu', verbose=False)
    docs = load_results(tmp_path / 'seeds')
    assert [(d['label'], d['pretrain_seeds']) for d in docs] == [('Random init', [0, 1, 2])]
    per_seed = [np.mean([r['test']['macro_auc'] for r in json.loads((tmp_path / 'seeds' / f'random_{s}' / 'probe.json').read_text())['runs']])
                for s in (0, 1, 2)]
    pooled = docs[0]['summary']['1']['macro_auc']
    assert np.isclose(pooled['mean'], np.mean(per_seed)) and np.isclose(pooled['std'], np.std(per_seed, ddof=1)) and pooled['n'] == 3
    assert pooled['ci95'][0] <= pooled['mean'] <= pooled['ci95'][1]
    r = subprocess.run(['etp_report', str(tmp_path / 'seeds'), str(results / 'res' / 'probe'), '--out', str(tmp_path / 'rep'), '--no_plots'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / 'rep' / 'report.md').read_text()
    assert 'mean ± std over 3 pretraining seeds [95% t-interval of that mean]' in md and 'pretraining seeds 0, 1, 2:' in md
    assert 'not ranked' in md  # the other two results had one pretraining seed each: nothing is ranked against them
