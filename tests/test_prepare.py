"`etp_prepare` as a user runs it: on the real subsets, on broken input, and its help."
import json, subprocess
import numpy as np
import pytest
from etp_nbdev.prepare import Prepared, PreparedECG, make_broken_ptbxl


def test_help_explains_every_option():
    out = subprocess.run(['etp_prepare', '--help'], capture_output=True, text=True, check=True).stdout
    for opt in ('--fs', '--seconds', '--n_jobs', '--strict', '--limit', '--overwrite', 'manifest'): assert opt in out


def test_prepare_shared_ptbxl_at_500hz_reports_missing_files(shared_data, tmp_path):
    r = subprocess.run(['etp_prepare', str(shared_data / 'ptbxl'), str(tmp_path / 'p'), '--fs', '500'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'p' / 'manifest.json').read_text())
    assert m['n_read'] + m['n_skipped'] == m['n_listed'] == 1267
    # records500/ ships ecg_id 1-500 only: every other record is reported as missing, none silently dropped
    missing = [s for s in m['skipped'] if 'not found' in s['reason']]
    assert m['n_read'] == 500 - sum(s['reason'] == 'empty report' and int(s['record']) <= 500 for s in m['skipped'])
    assert len(missing) == 1267 - 500 - sum(s['reason'] == 'empty report' and int(s['record']) > 500 for s in m['skipped'])
    p = Prepared(tmp_path / 'p', verify=True)
    assert p.signals.shape == (m['n_read'], 12, 5000)
    b = PreparedECG(p, 'train').__getitems__([0, 1, 2])
    assert b['ecg'].shape == (3, 12, 5000) and np.isfinite(b['ecg'].numpy()).all()


def test_prepare_shared_cpsc2018_crops_and_resamples(shared_data, tmp_path):
    subprocess.run(['etp_prepare', str(shared_data / 'cpsc2018'), str(tmp_path / 'c'), '--fs', '100', '--seconds', '5'], check=True, capture_output=True)
    p = Prepared(tmp_path / 'c')
    assert p.signals.shape == (24, 12, 500) and p.manifest['dataset'] == 'cpsc2018'
    assert set(p.meta['split']) <= {'train', 'val', 'test'}


def test_every_broken_record_is_reported_and_strict_stops(tmp_path):
    broken = make_broken_ptbxl(tmp_path / 'src')
    r = subprocess.run(['etp_prepare', str(tmp_path / 'src'), str(tmp_path / 'out')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert sorted(int(s['record']) for s in m['skipped']) == sorted(broken)
    assert m['n_read'] + m['n_skipped'] == m['n_listed'] == 12
    r = subprocess.run(['etp_prepare', str(tmp_path / 'src'), str(tmp_path / 'strict'), '--strict'], capture_output=True, text=True)
    assert r.returncode != 0 and 'etp_prepare: ' in r.stderr and 'Traceback' not in r.stderr
    r = subprocess.run(['etp_prepare', str(tmp_path / 'nowhere'), str(tmp_path / 'x')], capture_output=True, text=True)
    assert r.returncode != 0 and 'does not exist' in r.stderr and 'Traceback' not in r.stderr
