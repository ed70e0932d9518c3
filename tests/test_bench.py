"The benchmark scripts that the README's numbers come from still run: each at a tiny size (their numbers at this size mean nothing)."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', MPLBACKEND='Agg', OMP_NUM_THREADS='1')


def test_full_scale_dry_run_every_stage_at_tiny_size(tmp_path):
    "bench/full_scale.py, every stage, 400 records at 100 Hz and a 2-layer BERT: the table has every row, measured and projected labelled."
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'full_scale.py'), '--work', str(tmp_path), '--records', '400', '--fs', '100',
                        '--sizes', '200,400', '--quick', '--text_sample', '16', '--pretrain_records', '400', '--warmup', '1', '--steps', '1',
                        '--probe_train', '150', '--fetch_batches', '2'], capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    R = json.loads((tmp_path / 'full_scale.json').read_text())
    assert set(R) == {'data', 'prepare', 'fetch', 'text', 'pretrain', 'probe', 'zeroshot'}
    assert [x['n'] for x in R['prepare']['runs']] == [200, 400]
    assert R['data']['folds']['test'] > 0 and R['data']['folds']['val'] > 0
    assert R['fetch']['preloaded']['records_per_s'] > 0 and R['pretrain']['efficiency'] > 0
    assert R['probe']['train_used'] == 150 and R['zeroshot']['records'] > 0
    for row in ('| prepare | 400 records', '| fetch | batches of 128, preloaded', '| pretrain | pipeline efficiency',
                '| 50 epochs | H100 SXM', 'projected from FLOPs', '| zeroshot |'):
        assert row in r.stdout, (row, r.stdout[-3000:])


def test_bert_base_folder_loads_as_a_text_model(tmp_path):
    "bench/bert_base_folder.py writes a folder that --text_model PATH loads (here at 2 layers, to keep the test small)."
    sys.path.insert(0, str(ROOT / 'bench'))
    from bert_base_folder import make_bert_base_folder
    from etp_nbdev.text import TextEncoder
    f = make_bert_base_folder(tmp_path / 'bert', num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128)
    enc = TextEncoder(str(f))
    v = enc.encode(['sinus rhythm', 'atrial fibrillation'])
    assert v.shape == (2, 64) and enc.tokenizer.vocab_size == 30522
    assert 'RANDOM' in (f / 'README.md').read_text()


def test_gpu_checks_pass_on_the_cpu(tmp_path):
    "bench/gpu_check.py --device cpu: bf16/fp16 autocast against float32 and a bf16 step of every method (it found NT-Xent's bf16 bug)."
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_check.py'), '--device', 'cpu', '--fs', '100', '--batch', '16', '--no_compile',
                        '--work', str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0 and 'all checks passed' in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    from etp_nbdev.methods import METHODS
    assert all(f"{m}: one bf16 training step" in r.stdout for m in METHODS)


def test_every_bench_script_compiles():
    "A syntax error in a script that only runs on a GPU would otherwise surface on the user's GPU (one did: an f-string in gpu_check.sh)."
    import py_compile
    scripts = sorted((ROOT / 'bench').glob('*.py'))
    assert len(scripts) >= 10
    for f in scripts: py_compile.compile(str(f), doraise=True)
    sh = [f for f in (ROOT / 'bench').glob('*.sh')]
    for f in sh:
        r = subprocess.run(['bash', '-n', str(f)], capture_output=True, text=True)
        assert r.returncode == 0, (f.name, r.stderr)
        assert '<<' not in f.read_text(), f"{f.name}: keep Python in bench/*.py files, where this test compiles it"
