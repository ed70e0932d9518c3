"""The fault matrix: every kind of bad input, injected into small copies of the real subsets (generated ones where those
are absent), through the real commands, in default and --strict mode. For each fault it checks the exit code, a message
that names the record and the problem, no traceback, exactly the bad records skipped with read + skipped = listed, and
every input file byte-identical afterwards. Then every command that writes is given a bad output folder (OUT = its
input, OUT above its input, OUT a file, OUT a foreign non-empty folder, OUT read-only): each must refuse before any work,
with one line and exit code 2, and touch nothing. The README's "Bad input" table lists the same faults."""
import hashlib, json, os, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from etp_nbdev.core import OUTPUT_MARKER

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'
BIN = Path(sys.executable).parent


def digest(root) -> dict:
    "SHA-256 of every file under `root`, by relative path."
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}


def run(capsys, fn, *args, **kwargs):
    "Call a command's function in-process as its console script would: (exit code, stdout, stderr). Any other exception fails the test."
    try:
        fn(*args, **kwargs); code = 0
    except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- small copies of the real subsets (or generated ones)
PTBXL_IDS = list(range(1, 13))


@pytest.fixture(scope='module')
def ptbxl_template(tmp_path_factory) -> Path:
    "12 PTB-XL records at 100 Hz with their metadata: copied from ../shared/data, else generated."
    d = tmp_path_factory.mktemp('ptbxl_template')
    if (SHARED / 'ptbxl' / 'ptbxl_database.csv').exists():
        db = pd.read_csv(SHARED / 'ptbxl' / 'ptbxl_database.csv')
        db = db[db.ecg_id.isin(PTBXL_IDS)]
        db.to_csv(d / 'ptbxl_database.csv', index=False)
        shutil.copy(SHARED / 'ptbxl' / 'scp_statements.csv', d)
        for f in db.filename_lr:
            (d / f).parent.mkdir(parents=True, exist_ok=True)
            for ext in ('.hea', '.dat'): shutil.copy(SHARED / 'ptbxl' / (f + ext), d / (f + ext))
    else:
        from etp_nbdev.synthetic import make_synthetic_ptbxl
        make_synthetic_ptbxl(d / 'gen', len(PTBXL_IDS), seed=0, rates=(100,))
        for p in (d / 'gen').iterdir():
            if p.name != OUTPUT_MARKER: shutil.move(str(p), d / p.name)
        shutil.rmtree(d / 'gen')
    return d


@pytest.fixture(scope='module')
def cpsc_template(tmp_path_factory) -> Path:
    "CPSC2018 records in both formats with a REFERENCE.csv that lists exactly them: copied from ../shared/data, else generated."
    d = tmp_path_factory.mktemp('cpsc_template')
    if (SHARED / 'cpsc2018' / 'REFERENCE.csv').exists():
        ids = []
        for sub, names in (('cinc2020_format', ['A0001', 'A0002', 'A0003', 'A0004', 'A0005', 'A0006']), ('original_format', ['A1980', 'A1981'])):
            (d / sub).mkdir()
            for n in names:
                for f in (SHARED / 'cpsc2018' / sub).glob(n + '.*'): shutil.copy(f, d / sub / f.name)
            ids += names
        ref = pd.read_csv(SHARED / 'cpsc2018' / 'REFERENCE.csv', dtype=str)
        ref[ref.Recording.isin(ids)].to_csv(d / 'REFERENCE.csv', index=False)
    else:
        from etp_nbdev.synthetic import make_synthetic_cpsc2018
        make_synthetic_cpsc2018(d / 'gen', 8, seed=0)
        for p in (d / 'gen').iterdir():
            if p.name != OUTPUT_MARKER: shutil.move(str(p), d / p.name)
        shutil.rmtree(d / 'gen')
    return d


def ptbxl_file(src: Path, ecg_id: int, ext: str) -> Path:
    db = pd.read_csv(src / 'ptbxl_database.csv')
    return src / (db.loc[db.ecg_id == ecg_id, 'filename_lr'].item() + ext)


def set_db(src: Path, ecg_id: int, col: str, value):
    db = pd.read_csv(src / 'ptbxl_database.csv')
    db[col] = db[col].astype(object)
    db.loc[db.ecg_id == ecg_id, col] = value
    db.to_csv(src / 'ptbxl_database.csv', index=False)


def set_samples(src: Path, ecg_id: int, lead: int, value: int, samples=slice(None)):
    "Overwrite raw 16-bit samples of one lead of a PTB-XL record (format 16, 12 interleaved leads)."
    f = ptbxl_file(src, ecg_id, '.dat')
    a = np.fromfile(f, '<i2').reshape(-1, 12)
    a[samples, lead] = value
    a.tofile(f)


def set_gain(src: Path, ecg_id: int, lead: int, gain: str):
    "Rewrite the ADC gain of one lead in a record's header (its samples then mean other millivolts)."
    f = ptbxl_file(src, ecg_id, '.hea')
    lines = f.read_text().splitlines()
    lines[1 + lead] = re.sub(r' 16 [0-9.]+\(', f' 16 {gain}(', lines[1 + lead], count=1)
    f.write_text('\n'.join(lines) + '\n')


# Each PTB-XL fault: (name, inject(src), ecg_id whose record is skipped, part of the reason). In default mode exactly that
# record is skipped with that reason; under --strict the run stops with exit code 2 and a message naming it.
PTBXL_RECORD_FAULTS = [
    ('truncated .dat', lambda s: ptbxl_file(s, 2, '.dat').write_bytes(ptbxl_file(s, 2, '.dat').read_bytes()[:3000]), 2, ''),
    ('malformed header', lambda s: ptbxl_file(s, 3, '.hea').write_text('garbage 12 100 1000\nthis is not a signal line\n'), 3, 'header'),
    ('missing .dat', lambda s: ptbxl_file(s, 4, '.dat').unlink(), 4, ''),
    ('missing header', lambda s: ptbxl_file(s, 4, '.hea').unlink(), 4, 'not found'),
    ('NaN samples (WFDB missing value)', lambda s: set_samples(s, 5, 6, -32768, slice(10, 20)), 5, 'NaN/inf samples in lead(s) V1'),
    ('beyond float16 (gain off by 10^6)', lambda s: set_gain(s, 6, 3, '0.001'), 6, 'beyond the range of float16'),
    ('lead stuck at the ADC limit (32.8 mV)', lambda s: set_samples(s, 7, 7, 32767), 7, 'implausible amplitude 32.8 mV in lead(s) V2'),
    ('empty report', lambda s: set_db(s, 8, 'report', ''), 8, 'empty report'),
    ('unknown SCP code', lambda s: set_db(s, 9, 'scp_codes', "{'NORM': 100.0, 'NOTACODE': 20.0}"), 9, 'unknown SCP code'),
    ('fold out of range', lambda s: set_db(s, 10, 'strat_fold', 11), 10, 'strat_fold must be 1-10'),
    ('scp_codes not a dict', lambda s: set_db(s, 11, 'scp_codes', 'NORM'), 11, 'scp_codes is not a dictionary'),
    ('filename missing', lambda s: set_db(s, 12, 'filename_lr', ''), 12, 'filename_lr is missing'),
]

# Faults of the whole dataset: exit code 2 in both modes, one message naming the file and what is wrong.
PTBXL_GLOBAL_FAULTS = [
    ('no patient_id column', lambda s: pd.read_csv(s / 'ptbxl_database.csv').drop(columns='patient_id').to_csv(s / 'ptbxl_database.csv', index=False),
     'ptbxl_database.csv lacks the column(s) patient_id'),
    ('no scp_statements.csv', lambda s: (s / 'scp_statements.csv').unlink(), 'scp_statements.csv not found'),
    ('not a dataset folder', lambda s: [p.unlink() for p in (s / 'ptbxl_database.csv', s / 'scp_statements.csv')], 'neither a PTB-XL folder'),
]


def cpsc_ref_code(src, rid, code):
    ref = pd.read_csv(src / 'REFERENCE.csv', dtype=str)
    ref.loc[ref.Recording == rid, 'First_label'] = code
    ref.to_csv(src / 'REFERENCE.csv', index=False)


def cpsc_ref_add(src, rid, code='1'):
    ref = pd.read_csv(src / 'REFERENCE.csv', dtype=str)
    pd.concat([ref, pd.DataFrame([{'Recording': rid, 'First_label': code}])]).to_csv(src / 'REFERENCE.csv', index=False)


def cinc(src, rid, ext):
    return next(src.rglob(f'{rid}{ext}'))


CPSC_RECORD_FAULTS = [
    ('label code 10 in REFERENCE.csv', lambda s: cpsc_ref_code(s, 'A0002', '10'), 'A0002', 'not one of the nine classes'),
    ('REFERENCE.csv lists a record with no file', lambda s: cpsc_ref_add(s, 'A0999'), 'A0999', 'listed in REFERENCE.csv, but no A0999.hea or A0999.mat'),
    ('CinC .mat whose .hea is missing', lambda s: cinc(s, 'A0003', '.hea').unlink(), 'A0003', 'its header A0003.hea is missing'),
    ('unreadable .mat', lambda s: cinc(s, 'A0004', '.mat').write_bytes(b'not a mat file'), 'A0004', ''),
    ('header without #Dx, not in REFERENCE.csv', lambda s: (
        cinc(s, 'A0005', '.hea').write_text('\n'.join(l for l in cinc(s, 'A0005', '.hea').read_text().splitlines() if 'Dx' not in l) + '\n'),
        cpsc_ref_code(s, 'A0005', '99'), _drop_ref(s, 'A0005')), 'A0005', 'no labels'),
]


def _drop_ref(src, rid):
    ref = pd.read_csv(src / 'REFERENCE.csv', dtype=str)
    ref[ref.Recording != rid].to_csv(src / 'REFERENCE.csv', index=False)


@pytest.fixture(scope='module')
def baselines(ptbxl_template, cpsc_template, tmp_path_factory) -> dict:
    "What the clean copies prepare to: {dataset: manifest with the listed 'ids'} (the real subset's own skips, if any, stay expected)."
    from etp_nbdev.prepare import Prepared, prepare
    d, out = tmp_path_factory.mktemp('baselines'), {}
    for name, src in (('ptbxl', ptbxl_template), ('cpsc2018', cpsc_template)):
        m = prepare(src, d / name, n_jobs=1, verbose=False)
        out[name] = dict(m, ids=set(Prepared(d / name).meta['id']) | {s['record'] for s in m['skipped']})
    return out


def inject(template: Path, tmp_path: Path, fault) -> Path:
    src = tmp_path / 'src'
    shutil.copytree(template, src)
    fault(src)
    return src


def check_prepared_run(capsys, src, out, strict, rid, why, name_in_message, base):
    from etp_nbdev.prepare import etp_prepare
    before = digest(src)
    code, stdout, err = run(capsys, etp_prepare, str(src), str(out), n_jobs=1, strict=strict)
    assert digest(src) == before, "an input file changed"
    assert 'Traceback' not in err
    assert not [p for p in out.parent.iterdir() if 'partial' in p.name], "partial output left behind"
    if strict:
        assert code == 2, (code, err)
        assert err.startswith('etp_prepare: error: ') and name_in_message in err and why in err, err
        assert not out.exists()
        return
    assert code == 0, (code, err)
    m = json.loads((out / 'manifest.json').read_text())
    skipped = {s['record']: s['reason'] for s in m['skipped']}
    assert set(skipped) - {s['record'] for s in base['skipped']} == {rid}, skipped
    assert why in skipped[rid], skipped[rid]
    assert m['n_read'] + m['n_skipped'] == m['n_listed'] == base['n_listed'] + (rid not in base['ids'])
    assert name_in_message in stdout  # the summary names it as the dataset does


@pytest.mark.parametrize('strict', [False, True], ids=['default', 'strict'])
@pytest.mark.parametrize('name,fault,ecg_id,why', PTBXL_RECORD_FAULTS, ids=[f[0] for f in PTBXL_RECORD_FAULTS])
def test_ptbxl_record_fault(capsys, tmp_path, ptbxl_template, baselines, name, fault, ecg_id, why, strict):
    src = inject(ptbxl_template, tmp_path, fault)
    check_prepared_run(capsys, src, tmp_path / 'out', strict, str(ecg_id), why, f'ecg_id {ecg_id}', baselines['ptbxl'])


@pytest.mark.parametrize('strict', [False, True], ids=['default', 'strict'])
@pytest.mark.parametrize('name,fault,rid,why', CPSC_RECORD_FAULTS, ids=[f[0] for f in CPSC_RECORD_FAULTS])
def test_cpsc_record_fault(capsys, tmp_path, cpsc_template, baselines, name, fault, rid, why, strict):
    src = inject(cpsc_template, tmp_path, fault)
    check_prepared_run(capsys, src, tmp_path / 'out', strict, rid, why, rid, baselines['cpsc2018'])


@pytest.mark.parametrize('strict', [False, True], ids=['default', 'strict'])
@pytest.mark.parametrize('name,fault,why', PTBXL_GLOBAL_FAULTS, ids=[f[0] for f in PTBXL_GLOBAL_FAULTS])
def test_dataset_fault(capsys, tmp_path, ptbxl_template, name, fault, why, strict):
    from etp_nbdev.prepare import etp_prepare
    src = inject(ptbxl_template, tmp_path, fault)
    before = digest(src)
    code, _, err = run(capsys, etp_prepare, str(src), str(tmp_path / 'out'), n_jobs=1, strict=strict)
    assert (code, 'Traceback' in err) == (2, False) and err.startswith('etp_prepare: error: ') and why in err, err
    assert digest(src) == before and not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- output folders, for every command that writes
@pytest.fixture(scope='module')
def inputs(tmp_path_factory, ptbxl_template) -> dict:
    "One input of each kind a command reads: a dataset folder, a prepared folder, a checkpoint, probe results, a mirror."
    from etp_nbdev.prepare import prepare
    from etp_nbdev.probe import linear_probe, make_toy_prepared
    from etp_nbdev.model import ETPConfig, save_etp
    from etp_nbdev.checkpoint import seeded_model
    d = tmp_path_factory.mktemp('inputs')
    shutil.copytree(ptbxl_template, d / 'ptbxl')
    make_toy_prepared(d / 'prepared', n=(40, 20, 20), fs=100, seconds=5)
    save_etp(seeded_model(ETPConfig(fs=100), 0), d / 'checkpoint')
    linear_probe('random', d / 'prepared', d / 'results', fractions=(1.0,), seeds=(0,), n_boot=0, verbose=False)
    (d / 'mirror').mkdir()
    return {k: d / k for k in ('ptbxl', 'prepared', 'checkpoint', 'results', 'mirror')}


def commands(inputs):
    "{command: (function, the input its OUT is tested against, how to call it with OUT)}"
    from etp_nbdev.prepare import etp_prepare
    from etp_nbdev.synthetic import etp_synth
    from etp_nbdev.download import etp_download
    from etp_nbdev.pretrain import etp_pretrain
    from etp_nbdev.probe import etp_probe
    from etp_nbdev.zeroshot import etp_zeroshot
    from etp_nbdev.results import etp_report
    from etp_nbdev.demo import etp_demo
    i = inputs
    return {
        'etp_prepare': (i['ptbxl'], lambda out: (etp_prepare, (str(i['ptbxl']), str(out)), dict(n_jobs=1))),
        'etp_synth': (None, lambda out: (etp_synth, (str(out),), dict(n_records=2, rates='100', quiet=True))),
        'etp_download': (i['mirror'], lambda out: (etp_download, ('ptbxl',), dict(dest=str(out), base_url=i['mirror'].as_uri()))),
        'etp_pretrain': (i['prepared'], lambda out: (etp_pretrain, (str(i['prepared']),), dict(out=str(out), epochs=1, batch_size=8, max_steps=1, no_progress=True))),
        'etp_probe': (i['prepared'], lambda out: (etp_probe, (str(i['prepared']),), dict(checkpoint=str(i['checkpoint']), out=str(out), fractions='1', seeds='0', n_boot=0, quiet=True))),
        'etp_zeroshot': (i['prepared'], lambda out: (etp_zeroshot, (str(i['prepared']),), dict(out=str(out), n_boot=0, quiet=True))),
        'etp_report': (i['results'], lambda out: (etp_report, ([str(i['results'])],), dict(out=str(out), no_plots=True, quiet=True))),
        'etp_demo': (i['ptbxl'], lambda out: (etp_demo, (), dict(out=str(out), ptbxl=str(i['ptbxl']), preset='tiny', quiet=True))),
    }


COMMANDS = ['etp_prepare', 'etp_synth', 'etp_download', 'etp_pretrain', 'etp_probe', 'etp_zeroshot', 'etp_report', 'etp_demo']
CASES = {
    'OUT is the input': (lambda inp, tmp: inp, 'is the input'),
    'OUT contains the input': (lambda inp, tmp: inp.parent, 'contains the input'),
    'OUT lies inside the input': (lambda inp, tmp: inp / 'out', 'lies inside the input'),
    'OUT is a file': (lambda inp, tmp: tmp / 'a_file.txt', 'is a file'),
    'OUT is a foreign non-empty folder': (lambda inp, tmp: tmp / 'home', 'was not written by'),
}


def user_files(tmp):
    "A user's own files, next to where the output goes."
    (tmp / 'a_file.txt').write_text('my notes')
    (tmp / 'home').mkdir(exist_ok=True); (tmp / 'home' / 'thesis.tex').write_text('years of work')


@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('command', COMMANDS)
def test_output_folder_refused(capsys, tmp_path, inputs, command, case):
    inp, call = commands(inputs)[command]
    where, why = CASES[case]
    if inp is None and 'input' in case: pytest.skip(f"{command} reads no input folder")
    user_files(tmp_path)
    out = where(inp, tmp_path)
    watched = [inputs['ptbxl'].parent, tmp_path]
    before = [digest(w) for w in watched]
    fn, args, kwargs = call(out)
    code, _, err = run(capsys, fn, *args, **kwargs)
    assert code == 2 and err.startswith(f'{command}: error: ') and why in err and 'Traceback' not in err, (code, err)
    assert [digest(w) for w in watched] == before, "a file changed"
    assert not (inp is not None and (inp / 'out').exists())


def without_dac_override(cmd):
    "Run as root without the capability to ignore file permissions, so that a read-only folder is read-only (as for any user)."
    if os.geteuid() == 0:
        if not shutil.which('setpriv'): pytest.skip('running as root without setpriv: read-only folders cannot be tested')
        return ['setpriv', '--bounding-set=-dac_override,-dac_read_search', *cmd]
    return cmd


@pytest.mark.parametrize('command', COMMANDS)
def test_output_folder_read_only(tmp_path, inputs, command):
    "OUT inside a read-only folder: one clear line and exit code 2 before any work (run as a subprocess, as a user would)."
    inp, call = commands(inputs)[command]
    ro = tmp_path / 'readonly'; ro.mkdir()
    fn, args, kwargs = call(ro / 'out')
    argv = [str(BIN / command)] + [str(a) for a in (args[0] if command == 'etp_report' else args)]
    for k, v in kwargs.items():
        if v is True: argv.append(f'--{k}')
        elif v is not False: argv += [f'--{k}', str(v)]
    for p in tmp_path.rglob('*'): p.chmod(0o555 if p.is_dir() else 0o444)
    os.chmod(tmp_path, 0o755)
    try:
        r = subprocess.run(without_dac_override(argv), capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, HF_HUB_OFFLINE='1', MPLBACKEND='Agg', HOME=str(tmp_path)))
    finally:
        for p in tmp_path.rglob('*'): p.chmod(0o755 if p.is_dir() else 0o644)
    assert r.returncode == 2 and 'permission denied' in r.stderr and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
    assert r.stderr.strip().count('\n') == 0, r.stderr  # one line
    assert list(ro.iterdir()) == []


def test_overwrite_keeps_foreign_files_and_replaces_own(capsys, tmp_path, inputs):
    "--overwrite writes beside a user's files and never deletes them; a second run replaces only its own files."
    from etp_nbdev.prepare import etp_prepare
    out = tmp_path / 'home'; out.mkdir(); (out / 'thesis.tex').write_text('years of work')
    for _ in range(2):
        code, _, err = run(capsys, etp_prepare, str(inputs['ptbxl']), str(out), n_jobs=1, overwrite=True)
        assert code == 0, err
    assert (out / 'thesis.tex').read_text() == 'years of work'
    assert sorted(p.name for p in out.iterdir()) == sorted(['thesis.tex', OUTPUT_MARKER, 'signals.f16', 'meta.csv', 'reports.csv', 'manifest.json'])
    (out / 'meta.csv').unlink(); (tmp_path / 'mine').mkdir(); (tmp_path / 'mine' / 'meta.csv').write_text('a user file')
    code, _, err = run(capsys, etp_prepare, str(inputs['ptbxl']), str(tmp_path / 'mine'), n_jobs=1, overwrite=True)
    assert code == 2 and 'holds meta.csv' in err and (tmp_path / 'mine' / 'meta.csv').read_text() == 'a user file', err


def test_pretrain_overwrite_deletes_only_its_own_files(capsys, tmp_path, inputs):
    from etp_nbdev.pretrain import etp_pretrain
    run_dir = tmp_path / 'run'; run_dir.mkdir(); (run_dir / 'notes.md').write_text('my notes')
    args = dict(out=str(run_dir), epochs=1, batch_size=8, max_steps=2, no_progress=True, text_cache='none')
    code, _, err = run(capsys, etp_pretrain, str(inputs['prepared']), overwrite=True, mode='simclr', **args)
    assert code == 0, err
    (run_dir / 'later.txt').write_text('added after the run')  # a user file added to the run folder
    code, _, err = run(capsys, etp_pretrain, str(inputs['prepared']), overwrite=True, mode='simclr', **args)
    assert code == 0, err
    assert (run_dir / 'notes.md').read_text() == 'my notes' and (run_dir / 'later.txt').exists()
    assert (run_dir / 'checkpoint.pt').exists() and (run_dir / 'encoder').is_dir()


def test_nan_checkpoint_is_named(capsys, tmp_path, inputs):
    import torch
    from etp_nbdev.model import ETPConfig, save_etp
    from etp_nbdev.checkpoint import seeded_model
    from etp_nbdev.probe import etp_probe
    m = seeded_model(ETPConfig(fs=100), 0)
    with torch.no_grad(): next(m.ecg_encoder.parameters())[0] = float('nan')
    save_etp(m, tmp_path / 'diverged')
    code, _, err = run(capsys, etp_probe, str(inputs['prepared']), checkpoint=str(tmp_path / 'diverged'), out=str(tmp_path / 'p'), n_boot=0, quiet=True)
    assert code == 2 and 'diverged/model.safetensors holds NaN or infinite weights' in err and 'Traceback' not in err, err


def test_sigterm_removes_partial_output_and_stops_the_workers(tmp_path):
    "SIGTERM in the middle of etp_prepare (2 reading processes): exit 130 at once, no partial folder, no output, the source unchanged."
    import signal, time
    from etp_nbdev.synthetic import make_synthetic_ptbxl
    make_synthetic_ptbxl(tmp_path / 'src', 1500, seed=0, rates=(100,), n_jobs=2)
    before = digest(tmp_path / 'src')
    p = subprocess.Popen([str(BIN / 'etp_prepare'), str(tmp_path / 'src'), str(tmp_path / 'out'), '--n_jobs', '2'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not [q for q in tmp_path.iterdir() if 'partial' in q.name] and p.poll() is None and time.time() - t0 < 60: time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and 'etp_prepare: interrupted' in err and 'Traceback' not in err, (p.returncode, err)
    assert sorted(q.name for q in tmp_path.iterdir()) == ['src'] and digest(tmp_path / 'src') == before
