"End-to-end tests of etp_pretrain: CLI runs, exact resume after kill -9 and SIGTERM, DDP with gloo, bad input."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

BIN = Path(sys.executable).parent
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg', OMP_NUM_THREADS='1')


@pytest.fixture(scope='session')
def prepared(tmp_path_factory) -> Path:
    "A synthetic PTB-XL at 100 Hz, 160 records (128 train), prepared once for the whole session."
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    from etp_nbdev.prepare import prepare
    d = tmp_path_factory.mktemp('pretrain_data')
    make_synthetic_ptbxl(d / 'src', n_records=160, seed=3, rates=(100,))
    prepare(d / 'src', d / 'prep', fs=100, n_jobs=1, verbose=False)
    return d / 'prep'


@pytest.fixture(scope='session')
def text_cache(tmp_path_factory) -> Path: return tmp_path_factory.mktemp('text_cache')


def n_train(prepared) -> int:
    from etp_nbdev.prepare import Prepared
    return len(Prepared(prepared).indices('train'))


def run(*args, check=True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / 'etp_pretrain'), *map(str, args)], capture_output=True, text=True, env=ENV, **kw)
    if check and r.returncode != 0: raise AssertionError(f"exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def weights(out: Path) -> dict: return load_file(str(out / 'model' / 'model.safetensors'))


def same_weights(a: dict, b: dict) -> bool: return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_help_explains_the_options():
    r = run('--help')
    for opt in ('--mode', 'simclr', '--resume', '--batch_size', 'Bio_ClinicalBERT', '--amp', '--preload', '--save_every', 'torchrun'):
        assert opt in r.stdout, opt


def test_etp_run_writes_everything(prepared, text_cache, tmp_path):
    from etp_nbdev.model import load_etp, load_ecg_encoder
    from etp_nbdev.text import TextEncoder
    out = tmp_path / 'run'
    r = run(prepared, '--out', out, '--epochs', 2, '--batch_size', 32, '--text_cache', text_cache, '--no_progress')
    per_epoch = n_train(prepared) // 32
    assert 'epoch 2: val loss' in r.stdout and f'{per_epoch} steps/epoch' in r.stdout, r.stdout
    for f in ('checkpoint.pt', 'metrics.csv', 'loss.png', 'config.json', 'summary.json', 'best/model.safetensors',
              'model/config.json', 'encoder/encoder.json'):
        assert (out / f).exists(), f
    m = pd.read_csv(out / 'metrics.csv')
    steps, epochs = m[m.kind == 'step'], m[m.kind == 'epoch']
    assert list(steps.step) == list(range(1, 2 * per_epoch + 1)) and list(epochs.epoch) == [1, 2]
    assert epochs[['val_loss', 'val_top1', 'val_top5']].notna().all().all() and (epochs.val_top5 >= epochs.val_top1).all()
    assert np.isfinite(steps.loss).all() and (steps.records_per_s > 0).all()
    model = load_etp(out / 'model', TextEncoder())
    assert model.config.fs == 100 and model.config.extra['mode'] == 'etp'
    enc = load_ecg_encoder(out / 'encoder')
    x = torch.randn(2, 12, 1000)
    model.eval(); enc.eval()
    assert torch.allclose(enc(x), model.ecg_encoder(x))
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['status'] == 'finished' and summary['steps'] == 2 * per_epoch


def test_simclr_run(prepared, tmp_path):
    out = tmp_path / 'simclr'
    r = run(prepared, '--out', out, '--mode', 'simclr', '--epochs', 1, '--batch_size', 32, '--no_progress')
    assert 'epoch 1: val loss' in r.stdout
    from etp_nbdev.model import load_etp
    model = load_etp(out / 'model')
    assert model.text_head is None and model.config.extra['mode'] == 'simclr'


def _wait_for_step(proc, metrics: Path, step: int, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise AssertionError(f"the run ended (exit {proc.returncode}) before step {step}")
        try:
            if metrics.exists() and (pd.read_csv(metrics).query("kind == 'step'").step >= step).any(): return
        except (pd.errors.EmptyDataError, pd.errors.ParserError): pass
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.mark.parametrize('mode, signals', [('etp', ('kill', 'term')), ('byol', ('kill',))])
def test_interrupted_runs_resume_to_the_same_weights(prepared, text_cache, tmp_path, mode, signals):
    "kill -9 (and SIGTERM) mid-epoch, then --resume: the final weights equal an uninterrupted run's, bit for bit; BYOL's EMA target and momentum too."
    common = ['--mode', mode, '--epochs', 2, '--batch_size', 16, '--save_every', 3, '--text_cache', text_cache, '--no_progress']
    per_epoch = n_train(prepared) // 16
    assert per_epoch >= 6
    run(prepared, '--out', tmp_path / 'ref', *common)
    reference = weights(tmp_path / 'ref')
    for how in signals:
        out = tmp_path / how
        p = subprocess.Popen([str(BIN / 'etp_pretrain'), str(prepared), '--out', str(out), *map(str, common)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        _wait_for_step(p, out / 'metrics.csv', per_epoch + 2)  # inside epoch 2, the last
        p.send_signal(signal.SIGKILL if how == 'kill' else signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=60)
        ck = torch.load(out / 'checkpoint.pt', weights_only=False)
        assert not (out / 'model').exists() and ck['step'] < 2 * per_epoch, (how, ck['step'])
        if how == 'term':
            assert p.returncode == 130 and 'stopped by SIGTERM' in stdout, (p.returncode, stdout, stderr)
            assert ck['why'] == 'signal' and 0 < ck['batch'] < per_epoch  # saved mid-epoch, right where it stopped
        else:
            assert p.returncode == -signal.SIGKILL
        r = run(prepared, '--out', out, *common, '--resume')
        assert f"resuming {out}" in r.stdout
        assert same_weights(weights(out), reference), how
        steps = pd.read_csv(out / 'metrics.csv').query("kind == 'step'").step
        assert list(steps) == list(range(1, 2 * per_epoch + 1)), how  # every step once, none twice
        a, b = (torch.load(d / 'checkpoint.pt', weights_only=False)['method'] for d in (tmp_path / 'ref', out))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), how  # the method's own state: BYOL's target network
        assert (len(a) > 0) == (mode == 'byol')


def test_torchrun_two_processes_gloo(prepared, text_cache, tmp_path):
    out = tmp_path / 'ddp'
    r = subprocess.run([str(BIN / 'torchrun'), '--standalone', '--nproc_per_node=2', str(BIN / 'etp_pretrain'), str(prepared), '--out', str(out),
                        '--epochs', '1', '--batch_size', '32', '--text_cache', str(text_cache), '--no_progress'],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('over 2 process(es)') == 1  # only rank 0 speaks
    m = pd.read_csv(out / 'metrics.csv')
    assert list(m.query("kind == 'step'").step) == list(range(1, n_train(prepared) // 32 + 1))  # only rank 0 writes: each step once
    assert json.loads((out / 'summary.json').read_text())['world_size'] == 2


def test_ddp_loss_and_gradients_equal_one_process(tmp_path):
    "2 gloo processes: the gathered loss and DDP-averaged gradients equal one process on the same global batch."
    out = tmp_path / 'ddp.json'
    r = subprocess.run([str(BIN / 'torchrun'), '--standalone', '--nproc_per_node=2', str(Path(__file__).parent / 'ddp_equivalence.py'), str(out)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(out.read_text())
    assert set(rep) == {'etp/none', 'etp/mask', 'simclr/none', 'byol/none', 'clocs/none'}
    for k, v in rep.items():
        assert v['ranks_agree'], k
        assert abs(v['ddp_loss'] - v['ref_loss']) < 1e-5, (k, v)
        assert v['max_grad_diff'] < 1e-5 * max(1.0, v['grad_scale']), (k, v)
    # without the gather, each rank would see only its own negatives: a different (smaller) loss
    assert rep['etp/none']['local_only_loss'] < rep['etp/none']['ref_loss'] - 0.1


def test_bad_input_is_named(prepared, text_cache, tmp_path):
    from etp_nbdev.synthetic import make_synthetic_cpsc2018
    from etp_nbdev.prepare import prepare
    # a dataset without reports in ETP mode
    make_synthetic_cpsc2018(tmp_path / 'cpsc', n_records=30, seed=0, seconds=(6, 8))
    prepare(tmp_path / 'cpsc', tmp_path / 'cpsc_prep', fs=100, n_jobs=1, verbose=False)
    r = run(tmp_path / 'cpsc_prep', '--out', tmp_path / 'o1', '--batch_size', 8, '--text_cache', text_cache, check=False)
    assert r.returncode == 2 and 'has a report' in r.stderr and '--mode simclr' in r.stderr, r.stderr
    # a batch larger than the data
    r = run(prepared, '--out', tmp_path / 'o2', '--batch_size', 4096, '--text_cache', text_cache, check=False)
    assert r.returncode == 2 and f'batch_size 4096 is larger than the {n_train(prepared)} training records' in r.stderr, r.stderr
    # an unknown mode
    r = run(prepared, '--out', tmp_path / 'o3', '--mode', 'moco', check=False)
    assert r.returncode == 2 and "mode must be one of ('etp', 'simclr'" in r.stderr, r.stderr


def test_a_cache_from_another_model_is_refused(prepared, tmp_path):
    from etp_nbdev.pretrain import report_features
    from etp_nbdev.prepare import Prepared
    from etp_nbdev.text import EmbeddingCache, TextEncoder
    cache, enc, p = EmbeddingCache(tmp_path / 'cache'), TextEncoder(), Prepared(prepared)
    good = report_features(p, enc, cache)
    shard = next(cache.folder(enc.cache_key).glob('*.npz'))
    z = dict(np.load(shard))
    z['emb'] = np.random.default_rng(0).standard_normal(z['emb'].shape).astype(np.float32)  # vectors of "some other model"
    with open(shard, 'wb') as f: np.savez(f, **z)
    r = run(prepared, '--out', tmp_path / 'o', '--batch_size', 32, '--text_cache', tmp_path / 'cache', check=False)
    assert r.returncode == 2 and 'do not match the text model' in r.stderr and str(cache.folder(enc.cache_key)) in r.stderr, r.stderr
    assert good.shape == (len(p.reports), enc.hidden_size)


def test_nan_stops_with_the_step_and_the_record_named(prepared, text_cache, tmp_path):
    import shutil
    from etp_nbdev.prepare import Prepared
    bad = tmp_path / 'prep'
    shutil.copytree(prepared, bad)
    p = Prepared(bad)
    row = int(p.indices('train')[5])
    sig = np.memmap(bad / 'signals.f16', dtype=np.float16, mode='r+', shape=p.signals.shape)
    sig[row, 3, 100:110] = np.nan  # corrupted after preparation (a bit flip, a bad copy)
    sig.flush(); del sig
    r = run(bad, '--out', tmp_path / 'o', '--batch_size', 32, '--text_cache', text_cache, '--no_progress', check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert 'loss is nan at step' in r.stderr and repr(p.meta['id'].iloc[row]) in r.stderr and 'last good state' in r.stderr, r.stderr
    ck = torch.load(tmp_path / 'o' / 'checkpoint.pt', weights_only=False)
    assert ck['why'] == 'nan' and all(torch.isfinite(v).all() for v in ck['model'].values() if v.is_floating_point())


def test_streaming_from_disk_trains_exactly_like_preloading(prepared, text_cache, tmp_path):
    "The loader path (--preload no, background workers) feeds the same batches as the preloaded path: same weights."
    common = ['--epochs', 1, '--batch_size', 32, '--text_cache', text_cache, '--no_progress']
    run(prepared, '--out', tmp_path / 'pre', '--preload', 'yes', *common)
    r = run(prepared, '--out', tmp_path / 'stream', '--preload', 'no', '--num_workers', 1, *common)
    assert 'streamed by 1 workers' in r.stdout, r.stdout
    assert same_weights(weights(tmp_path / 'pre'), weights(tmp_path / 'stream'))


def reference_weights(prepared, mode: str, text_cache, epochs=2, batch_size=32, seed=0) -> dict:
    "The paper's training loop written plainly (no engine): seeded init, (seed, epoch) batch order, the loss, Adam."
    from etp_nbdev.augment import TwoViews
    from etp_nbdev.losses import clip_loss, nt_xent_loss
    from etp_nbdev.model import ETPConfig, ETPModel
    from etp_nbdev.prepare import Prepared
    from etp_nbdev.pretrain import BatchFeeder, epoch_batches, report_features
    from etp_nbdev.text import EmbeddingCache, TextEncoder
    p = Prepared(prepared)
    feeder = BatchFeeder(p, 'train', torch.device('cpu'), preload='yes')
    enc = TextEncoder() if mode == 'etp' else None
    feats = report_features(p, enc, EmbeddingCache(text_cache)) if enc else None
    torch.manual_seed(seed)
    model = ETPModel(ETPConfig(text_dim=enc.hidden_size if enc else None, fs=100))
    views = TwoViews(fs=100)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    step = 0
    model.train()
    for epoch in range(epochs):
        for b in epoch_batches(len(feeder), batch_size, epoch, seed):
            ecg, rid = feeder.signals[torch.as_tensor(b)].float(), feeder.report_ids[torch.as_tensor(b)]
            if mode == 'etp': loss = clip_loss(*model(ecg, feats[rid]), 0.07)
            else:
                v1, v2 = views(ecg, torch.Generator().manual_seed(seed * 1_000_003 + step))
                loss = nt_xent_loss(*model.encode_ecg(torch.cat([v1, v2])).chunk(2), 0.07)
            opt.zero_grad(); loss.backward(); opt.step(); step += 1
    return {k: v for k, v in model.state_dict().items()}


@pytest.mark.parametrize('mode', ['etp', 'simclr'])
def test_the_engine_trains_exactly_like_the_plain_loop(prepared, text_cache, tmp_path, mode):
    "Bit-identical weights: the plug-in engine (methods, Trainer) adds checkpoints, validation and guards, and changes no number."
    run(prepared, '--out', tmp_path / mode, '--mode', mode, '--epochs', 2, '--batch_size', 32, '--text_cache', text_cache, '--no_progress')
    assert same_weights(weights(tmp_path / mode), reference_weights(prepared, mode, text_cache))


PRELOAD_PEAK = """
import sys, threading, time
from etp_nbdev.prepare import Prepared
from etp_nbdev.pretrain import BatchFeeder
import torch
def anon():  # resident anonymous memory (kB): what the process holds, the memory map's file pages aside
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon:'): return int(line.split()[1])
peak, done = [0], [False]
def watch():
    while not done[0]: peak[0] = max(peak[0], anon()); time.sleep(0.002)
p = Prepared(sys.argv[1])
base = anon()
t = threading.Thread(target=watch); t.start()
f = BatchFeeder(p, 'train', torch.device('cpu'), preload='yes')
done[0] = True; t.join()
print((peak[0] - base) * 1024 / f.nbytes)
"""


def test_preloading_holds_the_split_once(tmp_path):
    "Found by bench/full_scale.py: preloading PTB-XL's 2.1 GB train split made two host copies at once. Now one, filled chunk by chunk."
    import numpy as np
    from etp_nbdev.core import PTBXL_SUPERCLASSES
    from etp_nbdev.prepare import write_prepared
    n = 8000  # 8000 x 12 x 1000 float16: 192 MB
    rng = np.random.default_rng(0)
    write_prepared(tmp_path / 'p', rng.normal(0, 0.2, (n, 12, 1000)).astype(np.float32), rng.integers(0, 5, n), ['train'] * n,
                   PTBXL_SUPERCLASSES, fs=100, reports=['sinus rhythm'] * n)
    r = subprocess.run([sys.executable, '-c', PRELOAD_PEAK, str(tmp_path / 'p')], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    ratio = float(r.stdout.strip().splitlines()[-1])
    assert 0.9 < ratio < 1.4, f"preloading held {ratio:.2f}x the split's size at its peak (one copy and a chunk expected)"
