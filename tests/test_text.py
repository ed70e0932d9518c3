"The text encoder and its cache as separate processes see them: a cache shared between runs, a hub model out of reach, the benchmark."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from etp_nbdev.text import EmbeddingCache, TextEncoder, make_tiny_bert

ROOT = Path(__file__).resolve().parents[1]

# A worker: load the model, say it is ready, wait for the go, then encode texts lo..hi through the shared cache.
WORKER = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
from etp_nbdev.text import EmbeddingCache, TextEncoder
torch.set_num_threads(1)  # two of us share the machine
model, cache_dir, lo, hi, out, sync = sys.argv[1:]
enc = TextEncoder(model)
texts = [f"report {i}: sinus rhythm, left axis deviation" for i in range(int(lo), int(hi))]
cache = EmbeddingCache(cache_dir)
Path(out + '.ready').touch()
while not Path(sync).exists(): time.sleep(0.01)
np.save(out, cache.encode(texts, enc))
print(json.dumps(dict(encoded=cache.last['encoded'], model_texts=enc.n_encoded)))
"""


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp('model') / 'tiny')


def _worker(tiny, cache, lo, hi, out, sync):
    return subprocess.Popen([sys.executable, '-c', WORKER, str(tiny), str(cache), str(lo), str(hi), str(out), str(sync)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p):
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_cache_shared_by_two_processes_encodes_each_text_once(tiny, tmp_path):
    cache, go = tmp_path / 'cache', tmp_path / 'go'
    a = _worker(tiny, cache, 0, 400, tmp_path / 'a.npy', go)
    b = _worker(tiny, cache, 200, 600, tmp_path / 'b.npy', go)
    deadline = time.time() + 120
    while not ((tmp_path / 'a.npy.ready').exists() and (tmp_path / 'b.npy.ready').exists()):
        assert time.time() < deadline and a.poll() is None and b.poll() is None, 'workers did not start'
        time.sleep(0.02)
    go.touch()  # both ask for their 400 texts at the same moment; 200 of them are the same
    ra, rb = _result(a), _result(b)
    if os.name == 'posix':  # under the lock the second one finds the first one's shard and encodes only its own 200
        assert ra['encoded'] + rb['encoded'] == 600 and 200 in (ra['encoded'], rb['encoded']), (ra, rb)
    ea, eb = np.load(tmp_path / 'a.npy'), np.load(tmp_path / 'b.npy')
    assert ea[200:].tobytes() == eb[:200].tobytes()  # both got the very same stored vectors
    # a third run, later: everything is a hit, bit for bit, and the model runs on nothing
    c = _worker(tiny, cache, 0, 600, tmp_path / 'c.npy', go)
    rc = _result(c)
    assert rc == dict(encoded=0, model_texts=0)
    assert np.load(tmp_path / 'c.npy').tobytes() == np.concatenate([ea, eb[200:]]).tobytes()


HOLDER = r"""
import sys, time
from pathlib import Path
from etp_nbdev.text import EmbeddingCache, TextEncoder
model, cache_dir, flag = sys.argv[1:]
enc = TextEncoder(model)
real = enc.encode
def slow(texts, **kw):
    Path(flag).touch()  # inside the lock, before any shard is written
    time.sleep(120)
    return real(texts, **kw)
enc.encode = slow
EmbeddingCache(cache_dir).encode(['a', 'b', 'c'], enc)
"""


@pytest.mark.skipif(os.name != 'posix', reason='the cache lock is POSIX fcntl')
def test_a_run_killed_while_encoding_leaves_the_cache_usable(tiny, tmp_path):
    cache, flag = tmp_path / 'cache', tmp_path / 'inside'
    p = subprocess.Popen([sys.executable, '-c', HOLDER, str(tiny), str(cache), str(flag)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not flag.exists():
        assert time.time() < deadline and p.poll() is None, p.stderr.read() if p.poll() is not None else 'timeout'
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    enc = TextEncoder(tiny)
    t = time.time()
    c = EmbeddingCache(cache)
    e = c.encode(['a', 'b', 'c', 'd'], enc)  # the dead run's lock is gone with it, and it left no shard
    assert time.time() - t < 10 and c.last['encoded'] == 4 and e.shape == (4, 32)
    assert not any(f.suffix == '.npz' and f.stat().st_size == 0 for f in cache.rglob('*'))


@pytest.mark.parametrize('offline', [True, False], ids=['HF_HUB_OFFLINE=1', 'hub-not-switched-off'])
def test_hub_model_out_of_reach_fails_within_seconds_with_advice(offline):
    env = {k: v for k, v in os.environ.items() if k not in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    if offline: env['HF_HUB_OFFLINE'] = '1'
    code = ("import json, sys, time\nfrom etp_nbdev.text import TextEncoder, TextModelNotFound\n"
            "for name in sys.argv[1:]:\n"
            "    t = time.time()\n"
            "    try: TextEncoder(name); r = dict(name=name, loaded=True)\n"
            "    except TextModelNotFound as e: r = dict(name=name, seconds=time.time() - t, message=str(e))\n"
            "    print(json.dumps(r))\n")
    names = ['etp-nbdev/no-such-model-7f3a'] + (['emilyalsentzer/Bio_ClinicalBERT'] if offline else [])  # never download 400 MB in a test
    r = subprocess.run([sys.executable, '-c', code, *names], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for res in map(json.loads, r.stdout.strip().splitlines()):
        if res.get('loaded'):  # the paper's model may sit in a developer's local Hugging Face cache
            assert res['name'] != names[0]; continue
        assert res['seconds'] < 8, res
        m = res['message']
        assert "TextEncoder('FOLDER')" in m and 'TextEncoder()' in m and res['name'] in m
        if offline: assert 'HF_HUB_OFFLINE=1' in m


def test_importing_the_module_does_not_load_transformers():
    r = subprocess.run([sys.executable, '-c', "import sys, etp_nbdev.text; print('transformers' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == 'False'


@pytest.mark.parametrize('reports', ['default', 'generated'])
def test_bench_quick(tmp_path, reports):
    extra = ['--reports', str(tmp_path / 'absent.csv')] if reports == 'generated' else []
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'text_encoding.py'), '--quick', '--json', str(tmp_path / 'r.json'), *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 'sentences/s' in r.stdout and 'cold cache' in r.stdout and 'warm cache' in r.stdout
    if reports == 'generated': assert 'generated reports' in r.stdout
    res = json.loads((tmp_path / 'r.json').read_text())
    assert res['sorted_per_s'] > 0 and res['unsorted_per_s'] > 0
    assert res['encoded_cold'] == res['n_distinct'] < res['n_reports'] and res['tokens_distinct'] < res['tokens_all']
    assert res['warm_disk_seconds'] < res['all_seconds']


def test_hub_download_fetches_only_what_the_encoder_needs(tiny, monkeypatch):
    "With the hub reachable (simulated), a PyTorch-only repo such as Bio_ClinicalBERT's is fetched without its TF/Flax copies."
    import huggingface_hub, etp_nbdev.text as text
    asked = {}
    class Info: siblings = [type('S', (), {'rfilename': f})() for f in
                            ('.gitattributes', 'README.md', 'config.json', 'flax_model.msgpack', 'pytorch_model.bin', 'tf_model.h5', 'vocab.txt')]
    def fake_snapshot(name, local_files_only=False, allow_patterns=None, **kw):
        if local_files_only: raise FileNotFoundError('not cached')
        asked.update(name=name, allow=allow_patterns)
        return str(tiny)
    monkeypatch.setattr(huggingface_hub, 'model_info', lambda name, timeout=None: Info())
    monkeypatch.setattr(huggingface_hub, 'snapshot_download', fake_snapshot)
    monkeypatch.setattr(text, 'hub_offline', lambda: False)
    enc = TextEncoder(text.PAPER_TEXT_MODEL)
    assert asked == dict(name=text.PAPER_TEXT_MODEL, allow=['config.json', 'pytorch_model.bin', 'vocab.txt'])
    assert enc.model_id.startswith(text.PAPER_TEXT_MODEL + '@') and enc.pooling == 'mean'
