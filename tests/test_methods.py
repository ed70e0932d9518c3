"Every pretraining method on the one engine: it trains, it resumes to the same weights (its own state included), and --help lists it."
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
import torch

BIN = Path(sys.executable).parent
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg', OMP_NUM_THREADS='1')
NEW = ['byol', 'simsiam', 'clocs', 'cpc', 'tstcc']  # the methods added to ETP and SimCLR (those two are pinned in test_pretrain.py)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    "A balanced synthetic PTB-XL at 100 Hz, 200 records, prepared once."
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    from etp_nbdev.prepare import prepare
    from etp_nbdev.demo import BALANCED_MIX
    d = tmp_path_factory.mktemp('methods_data')
    make_synthetic_ptbxl(d / "src", n_records=200, seed=5, rates=(100,), mix=BALANCED_MIX)
    prepare(d / 'src', d / 'prep', fs=100, n_jobs=1, verbose=False)
    return d / 'prep'



@pytest.mark.parametrize('mode', NEW)
def test_a_tiny_run_improves_and_resumes_bit_exactly(prepared, tmp_path, mode):
    """Synthetic data with clear morphology, 3 epochs (CPC: 5): view->view retrieval on the val split rises from the first epoch to the last.
    The same run stopped after 7 steps (mid-epoch 2) and resumed ends with the same weights, predictor, EMA target and context
    network as the uninterrupted one, bit for bit (BYOL is also killed with -9 and resumed from the command line in test_pretrain.py)."""
    from etp_nbdev.pretrain import PretrainConfig, pretrain
    epochs = 5 if mode == 'cpc' else 3  # CPC's retrieval moves later (and its runs are the cheapest)
    common = dict(data=str(prepared), mode=mode, epochs=epochs, batch_size=32, progress=False)
    s = pretrain(PretrainConfig(out=str(tmp_path / 'ref'), **common))
    m = pd.read_csv(tmp_path / 'ref' / 'metrics.csv')
    ep = m[m.kind == 'epoch']
    assert s['status'] == 'finished' and len(ep) == epochs
    first, last = ep.iloc[0], ep.iloc[-1]
    assert last.val_top5 > first.val_top5 or last.val_loss < first.val_loss, ep[['epoch', 'val_loss', 'val_top1', 'val_top5']]
    if mode == 'simsiam':  # the collapse monitor is logged at every step and every epoch (its values are a finding, not a pass mark)
        assert (m[m.kind == 'step'].collapse_std > 0).all() and ep.val_collapse_std.notna().all()

    stopped = pretrain(PretrainConfig(out=str(tmp_path / 'resumed'), max_steps=7, **common))
    assert stopped['status'] == 'max_steps' and stopped['steps'] == 7
    pretrain(PretrainConfig(out=str(tmp_path / 'resumed'), **common), resume=True)
    a, b = (torch.load(tmp_path / d / 'checkpoint.pt', weights_only=False) for d in ('ref', 'resumed'))
    assert a['step'] == b['step'] == s['steps'] and a['method'].keys() == b['method'].keys()
    assert (len(a['method']) > 0) == (mode in ('byol', 'simsiam', 'cpc', 'tstcc'))  # a predictor, BYOL's target, CPC's GRU, TS-TCC's transformer
    for part in ('model', 'method'):
        for k in a[part]: assert torch.equal(a[part][k], b[part][k]), (part, k)
    resumed = pd.read_csv(tmp_path / 'resumed' / 'metrics.csv')
    assert list(resumed[resumed.kind == 'step'].step) == list(m[m.kind == 'step'].step)  # every step logged once


def test_help_lists_every_registered_method():
    from etp_nbdev.methods import METHODS
    r = subprocess.run([str(BIN / 'etp_pretrain'), '--help'], capture_output=True, text=True, env=ENV)
    assert all(m in r.stdout for m in METHODS) and set(NEW) <= set(METHODS), r.stdout
