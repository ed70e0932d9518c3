"`etp_probe` and the linear-probe protocol: files a user gets, the honesty of model selection, frozen encoders, bad input."
import inspect, json, subprocess
import numpy as np
import pandas as pd
import pytest
import torch
from fastcore.script import anno_parser
from etp_nbdev.metrics import stratified_subset
from etp_nbdev.model import ETPConfig, ETPModel, export_ecg_encoder, save_etp
from etp_nbdev.prepare import Prepared, prepare
from etp_nbdev.checkpoint import CheckpointError, load_checkpoint, seeded_model
from etp_nbdev.probe import etp_probe, fit_linear, linear_probe, linear_probe_features, make_toy_prepared


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    "150 generated 100 Hz records whose pulse rate is the class (train 100, val 25, test 25)."
    return make_toy_prepared(tmp_path_factory.mktemp('toy') / 'data', seconds=5.0, seed=0)


def run(*args):
    return subprocess.run(['etp_probe', *map(str, args)], capture_output=True, text=True)


def toy_features(n, signal, seed, classes=5, dim=32):
    g = np.random.default_rng(seed)
    y = g.integers(0, classes, n)
    x = g.normal(size=(n, dim)).astype(np.float32)
    x[:, :classes] += signal * np.eye(classes)[y]
    return x, y


def toy_split(signal):
    parts = dict(train=toy_features(400, signal, 0), val=toy_features(200, signal, 1), test=toy_features(600, signal, 2))
    return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}


def test_help_explains_the_protocol():
    out = anno_parser(etp_probe.__wrapped__, 'etp_probe').format_help()  # what `etp_probe --help` prints, without a process
    for opt in ('--checkpoint', '--fractions', '--seeds', '--subsets', '--task', '--patience', '--n_boot', 'validation'): assert opt in out


def test_cli_writes_results_and_baselines_share_subsets(toy, tmp_path):
    r = run(toy.path, '--checkpoint', 'random', '--out', tmp_path / 'random', '--seeds', '0,1', '--n_boot', '100', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert 'macro AUC' in r.stdout and '100%' in r.stdout
    out = tmp_path / 'random'
    doc = json.loads((out / 'probe.json').read_text())
    assert doc['method'] == 'Random init' and doc['task'] == 'single' and len(doc['runs']) == 6
    assert set(doc['summary']) == {'0.01', '0.1', '1'}
    s = doc['summary']['1']
    assert s['macro_auc']['mean'] > 0.85 and len(s['macro_auc']['ci95']) == 2 and set(s['per_class']) == set(toy.classes)
    assert doc['settings']['classifier_batch'] == 32 and doc['data']['n'] == {'train': 100, 'val': 25, 'test': 25}
    runs = pd.read_csv(out / 'probe_runs.csv')
    assert list(runs.columns[:4]) == ['method', 'fraction', 'seed', 'n_train'] and len(runs) == 6
    assert len(pd.read_csv(out / 'probe_per_class.csv')) == 6 * 5
    with np.load(out / 'probe_arrays.npz') as z:
        assert z['scores_f1_s0'].shape == (25, 5) and z['features_test'].shape == (25, 512) and len(z['ids_test']) == 25
    for f in (out / 'subsets').glob('*.json'):  # the 1% subsets too hold every class
        assert min(json.loads(f.read_text())['class_counts'].values()) >= 1
    # a SimCLR-format checkpoint (etp_pretrain output layout) in the same harness: the very same training records
    save_etp(seeded_model(ETPConfig(fs=100, extra={'mode': 'simclr'}), 1), tmp_path / 'simclr' / 'model')
    linear_probe(tmp_path / 'simclr', toy, tmp_path / 'simclr_probe', subsets=out / 'subsets', seeds=(0, 1), n_boot=0, device='cpu',
                 verbose=False)
    other = json.loads((tmp_path / 'simclr_probe' / 'probe.json').read_text())
    assert other['method'] == 'SimCLR'
    assert [(x['subset'], x['n_train']) for x in other['runs']] == [(x['subset'], x['n_train']) for x in doc['runs']]


def test_encoder_is_frozen_and_features_are_extracted_once(toy):
    ck = load_checkpoint('random', fs=100)
    ck.encoder.train()  # even a model left in training mode: batch-norm statistics must not move
    before = {k: v.clone() for k, v in ck.encoder.state_dict().items()}
    seen = []
    hook = ck.encoder.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    res = linear_probe(ck, toy, fractions=(0.1, 1.0), seeds=(0, 1), n_boot=0, device='cpu', verbose=False)
    hook.remove()
    assert sum(seen) == 150  # every record once, for four classifiers
    assert all(torch.equal(before[k], v) for k, v in ck.encoder.state_dict().items())
    assert ck.encoder.training and all(p.requires_grad for p in ck.encoder.parameters())  # the probe froze a copy: the caller's model is as it was
    assert res['features']['train'].shape == (100, 512)


def test_selection_has_no_access_to_test_labels():
    assert not [p for p in inspect.signature(fit_linear).parameters if 'test' in p]
    fx, fy = toy_split(0.5)
    a = linear_probe_features(fx, fy, list('ABCDE'), fractions=(0.1, 1.0), seeds=(0, 1), n_boot=0, verbose=False)
    shuffled = dict(fy, test=np.random.default_rng(3).permutation(fy['test']))
    b = linear_probe_features(fx, shuffled, list('ABCDE'), fractions=(0.1, 1.0), seeds=(0, 1), n_boot=0, verbose=False)
    for ra, rb in zip(a['runs'], b['runs']):
        assert (ra['best_epoch'], ra['epochs_run'], ra['val']) == (rb['best_epoch'], rb['epochs_run'], rb['val'])
    for k in a['arrays']:
        if k.startswith('scores'): np.testing.assert_array_equal(a['arrays'][k], b['arrays'][k])
    assert a['runs'][-1]['test']['macro_auc'] != b['runs'][-1]['test']['macro_auc']


def test_one_percent_subset_holds_every_class():
    pool = np.repeat(np.arange(5), [7185, 2035, 1895, 1441, 465])  # PTB-XL's single-label training split, about
    for seed in range(20):
        sub = stratified_subset(pool, 0.01, seed)
        assert (np.bincount(pool[sub], minlength=5) >= 1).all() and len(sub) == 130  # 72 + 20 + 19 + 14 + 5


def test_random_features_give_chance_and_label_features_give_one():
    noise = linear_probe_features(*toy_split(0.0), list('ABCDE'), fractions=(1.0,), seeds=(0, 1), n_boot=200, verbose=False)
    assert abs(noise['summary']['1']['macro_auc']['mean'] - 0.5) < 0.05
    clear = linear_probe_features(*toy_split(5.0), list('ABCDE'), fractions=(1.0,), seeds=(0, 1), n_boot=200, verbose=False)
    assert clear['summary']['1']['macro_auc']['mean'] > 0.995 and clear['summary']['1']['macro_f1']['mean'] > 0.95


def test_multilabel_task_runs_with_thresholds_from_validation(tmp_path):
    g = np.random.default_rng(0)
    y = (g.random((120, 3)) < 0.4).astype(int); y[y.sum(1) == 0, 0] = 1
    x = g.normal(0, 0.1, (120, 12, 200)) + (y @ np.array([1.0, 2.0, 4.0]))[:, None, None] * 0.3
    from etp_nbdev.prepare import write_prepared
    p = write_prepared(tmp_path / 'm', x, y, ['train'] * 70 + ['val'] * 25 + ['test'] * 25, 'ABC', fs=20)
    res = linear_probe('random', p, task='multi', fractions=(1.0,), seeds=(0,), n_boot=50, device='cpu', verbose=False)
    assert res['task'] == 'multi' and len(res['runs'][0]['thresholds']) == 3 and res['arrays']['y_test'].shape == (25, 3)


def test_bad_checkpoints_are_refused_with_a_reason(toy, tmp_path):
    # weights of another network than the config describes (an MLP head saved, a linear head declared)
    save_etp(seeded_model(ETPConfig(fs=100, head='mlp'), 0), tmp_path / 'other')
    cfg = json.loads((tmp_path / 'other' / 'config.json').read_text())
    (tmp_path / 'other' / 'config.json').write_text(json.dumps(dict(cfg, head='linear')))
    with pytest.raises(CheckpointError, match='does not fit the model its config describes.*unexpected'): load_checkpoint(tmp_path / 'other')
    (tmp_path / 'other' / 'config.json').write_text(json.dumps(dict(cfg, arch='resnet34_1d')))
    with pytest.raises(CheckpointError, match="unknown ECG architecture 'resnet34_1d'"): load_checkpoint(tmp_path / 'other')
    (tmp_path / 'other' / 'config.json').write_text(json.dumps(cfg))
    (tmp_path / 'other' / 'model.safetensors').unlink()
    with pytest.raises(CheckpointError, match='has a config but no weights'): load_checkpoint(tmp_path / 'other')
    with pytest.raises(CheckpointError, match='not a checkpoint'): load_checkpoint(toy.path)
    # an exported encoder trained at 500 Hz, on 100 Hz data: the command says why and shows no traceback
    export_ecg_encoder(seeded_model(ETPConfig(fs=500), 0), tmp_path / 'enc500')
    r = run(toy.path, '--checkpoint', tmp_path / 'enc500', '--out', tmp_path / 'x')
    assert r.returncode != 0 and 'etp_probe: error: checkpoint' in r.stderr and '500 Hz' in r.stderr and 'Traceback' not in r.stderr


def test_a_split_without_a_class_is_a_clear_error(tmp_path):
    p = make_toy_prepared(tmp_path / 'lack', n=(50, 10, 10), lacking={'test': 'HYP'})
    with pytest.raises(ValueError, match=r"test split of .* has no record of class\(es\) \['HYP'\]"):
        linear_probe('random', p, verbose=False)


def test_real_cpsc2018_subset_lacks_classes_in_its_splits(shared_data, tmp_path):
    "The 24 real CPSC2018 records cannot fill a 9-class split: the probe says so before computing anything."
    prepare(shared_data / 'cpsc2018', tmp_path / 'c', fs=100, seconds=5, n_jobs=1, verbose=False)
    p = Prepared(tmp_path / 'c')
    assert p.manifest['dataset'] == 'cpsc2018' and len(p) == 24
    with pytest.raises(ValueError, match=r'split of .* has no record of class\(es\)'): linear_probe('random', p, out=tmp_path / 'o', verbose=False)
    assert not (tmp_path / 'o' / 'probe.json').exists()
