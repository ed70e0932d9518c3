"`etp_zeroshot` and zero-shot classification: a perfectly aligned model scores perfectly, the paper's metrics, bad input."
import json, subprocess
import numpy as np
import pandas as pd
import pytest
import torch
from fastcore.script import anno_parser
from sklearn.metrics import f1_score, roc_auc_score
from etp_nbdev.model import ETPConfig, export_ecg_encoder, save_etp
from etp_nbdev.checkpoint import CheckpointError, seeded_model
from etp_nbdev.probe import make_toy_prepared
from etp_nbdev.prepare import write_prepared
from etp_nbdev.text import TextEncoder, make_tiny_bert
from etp_nbdev.zeroshot import ENSEMBLE, aligned_model, class_prompts, etp_zeroshot, zero_shot, zero_shot_metrics

CLASSES = ['NORM', 'MI', 'STTC', 'CD', 'HYP']


def run(*args):
    return subprocess.run(['etp_zeroshot', *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope='module')
def aligned(tmp_path_factory):
    "Records that are copies of one ECG per class, and a model whose text head maps each prompt onto its class's ECG embedding."
    tmp = tmp_path_factory.mktemp('aligned')
    patterns = np.random.default_rng(0).normal(0, 0.3, (5, 12, 500))
    y = np.r_[np.arange(5).repeat(3), np.arange(5).repeat(5)]
    data = write_prepared(tmp / 'data', patterns[y], y, ['train'] * 15 + ['test'] * 25, CLASSES, fs=100)
    model, text = aligned_model(patterns, class_prompts(CLASSES), fs=100)
    save_etp(model, tmp / 'model')
    return tmp, data, text


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "Toy data and an ETP-shaped checkpoint whose text model is a tiny random BERT."
    tmp = tmp_path_factory.mktemp('tiny')
    te = TextEncoder(make_tiny_bert(tmp / 'bert'))
    save_etp(seeded_model(ETPConfig.for_text_encoder(te, fs=100), 0), tmp / 'run' / 'model')
    return tmp, make_toy_prepared(tmp / 'data', n=(20, 20, 40), seconds=2.0), te


def test_help_explains_the_options():
    out = anno_parser(etp_zeroshot.__wrapped__, 'etp_zeroshot').format_help()  # what `etp_zeroshot --help` prints
    for opt in ('--checkpoint', '--names', '--ensemble', '--template', '--text_model', '--oracle', 'this ECG indicates'): assert opt in out


def test_a_perfectly_aligned_model_scores_perfectly(aligned, tmp_path):
    tmp, data, text = aligned
    res = zero_shot(tmp / 'model', data, out=tmp_path, text_encoder=text, n_boot=50, verbose=False)
    assert res['average'] == dict(auc=1.0, acc=1.0, f1=1.0) and res['accuracy'] == 1.0
    assert all(m['auc'] == m['acc'] == m['f1'] == 1.0 for m in res['per_class'].values())
    np.testing.assert_allclose(res['arrays']['similarities'][np.arange(25), res['arrays']['y']], 1.0, atol=1e-5)
    doc = json.loads((tmp_path / 'zeroshot.json').read_text())
    assert doc['prompts']['MI'] == ['this ECG indicates myocardial infarction'] and doc['split'] == 'test'
    assert len(pd.read_csv(tmp_path / 'zeroshot_per_class.csv')) == 5
    with np.load(tmp_path / 'zeroshot_arrays.npz') as z: assert z['similarities'].shape == (25, 5) and z['class_emb'].shape == (5, 512)


def test_metrics_follow_the_paper():
    "AUC from the softmax over class similarities; ACC and F1 binary one-vs-rest from the argmax; the average is their mean."
    g = np.random.default_rng(1)
    y, sims = g.integers(0, 4, 300), g.uniform(-0.2, 0.4, (300, 4))
    m = zero_shot_metrics(y, sims, list('abcd'), temperature=0.07, oracle=True)
    probs = torch.softmax(torch.tensor(sims) / 0.07, 1).numpy()
    pred = sims.argmax(1)
    for j, c in enumerate('abcd'):
        assert abs(m['per_class'][c]['auc'] - roc_auc_score(y == j, probs[:, j])) < 1e-9
        assert abs(m['per_class'][c]['acc'] - np.mean((y == j) == (pred == j))) < 1e-9
        assert abs(m['per_class'][c]['f1'] - f1_score(y == j, pred == j)) < 1e-9
    assert abs(m['average']['f1'] - np.mean([m['per_class'][c]['f1'] for c in 'abcd'])) < 1e-12
    assert 'NOT a valid estimate' in m['oracle_max_f1_threshold_chosen_on_test']['note']


def test_cli_end_to_end_with_the_checkpoints_text_model(tiny):
    tmp, data, te = tiny
    r = run(data.path, '--checkpoint', tmp / 'run', '--text_model', tmp / 'bert', '--out', tmp / 'zs', '--n_boot', '50', '--oracle',
            '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert 'average' in r.stdout and 'ORACLE' in r.stdout
    doc = json.loads((tmp / 'zs' / 'zeroshot.json').read_text())
    assert doc['method'] == 'ETP' and doc['text_model_id'] == te.model_id and doc['n'] == 40
    assert set(doc['per_class']) == set(CLASSES) and len(doc['ci95']['average']['auc']) == 2
    assert 'oracle_max_f1_threshold_chosen_on_test' in doc


def test_prompt_ensembles_and_own_names(tiny):
    tmp, data, te = tiny
    names = {'NORM': ['normal ECG', 'sinus rhythm'], 'MI': 'infarction', 'STTC': 'ST change', 'CD': 'block', 'HYP': 'hypertrophy'}
    res = zero_shot(tmp / 'run', data, names=names, text_encoder=te, n_boot=0, verbose=False)
    assert res['prompts']['NORM'] == ['this ECG indicates normal ECG', 'this ECG indicates sinus rhythm']
    res = zero_shot(tmp / 'run', data, ensemble=True, text_encoder=te, n_boot=0, verbose=False)
    assert {c: [q.removeprefix('this ECG indicates ') for q in p] for c, p in res['prompts'].items()} == {c: ENSEMBLE[c] for c in res['classes']}


def test_bad_input_gives_clear_errors(tiny, aligned, tmp_path):
    tmp, data, te = tiny
    # SimCLR has no text head: the command refuses it and says why
    save_etp(seeded_model(ETPConfig(fs=100, extra={'mode': 'simclr'}), 0), tmp_path / 'simclr' / 'model')
    r = run(data.path, '--checkpoint', tmp_path / 'simclr')
    assert r.returncode != 0 and 'has no text head' in r.stderr and 'Traceback' not in r.stderr
    # another text model than the checkpoint's (strict identity check)
    other = make_tiny_bert(tmp_path / 'other_bert', seed=1)
    with pytest.raises(CheckpointError, match='does not match the one this model was trained with'):
        zero_shot(tmp / 'run', data, text_model=other, verbose=False)
    # the checkpoint's text model is not found by the name in its config, and none is given
    with pytest.raises(CheckpointError, match='--text_model'): zero_shot(tmp / 'run', data, verbose=False)
    # an exported encoder alone has no heads
    export_ecg_encoder(seeded_model(ETPConfig(fs=100), 0), tmp_path / 'enc')
    with pytest.raises(CheckpointError, match='without projection heads'): zero_shot(tmp_path / 'enc', data, verbose=False)
    # a class without a prompt, before anything is loaded
    with pytest.raises(ValueError, match=r"\['MI'\] have no prompt"): zero_shot('random', data, names={'MI': ''}, verbose=False)
    # a split that lacks a class: evaluated on the classes present, the absent one n/a (zero-shot needs no training labels)
    lack = make_toy_prepared(tmp_path / 'lack', n=(10, 5, 8), lacking={'test': 'CD'})
    r = zero_shot(tmp / 'run', lack, tmp_path / 'lack_out', text_encoder=te, n_boot=10, verbose=False)
    assert r['absent'] == {'CD': 'no record of class CD in the evaluated split'} and r['per_class']['CD']['auc'] is None
    assert 'CD' not in r['average_over'] and 0 <= r['average']['auc'] <= 1 and (tmp_path / 'lack_out' / 'zeroshot.json').exists()
    # a checkpoint trained at another sampling rate
    atmp, adata, text = aligned
    p50 = make_toy_prepared(tmp_path / 'p50', n=(5, 5, 10), fs=50, seconds=2.0)
    with pytest.raises(CheckpointError, match='trained on 100 Hz ECGs, but the data is sampled at 50 Hz'):
        zero_shot(atmp / 'model', p50, text_encoder=text, verbose=False)
