"`etp_demo`, the main job, run as a user runs it: a console script in a fresh process."
import json, subprocess


def test_help_explains_the_command():
    out = subprocess.run(['etp_demo', '--help'], capture_output=True, text=True, check=True).stdout
    assert 'no network' in out and '--out' in out and '--steps' in out and '--seed' in out and '--n_records' in out


def test_demo_writes_report_metrics_and_figure(tmp_path):
    r = subprocess.run(['etp_demo', '--out', str(tmp_path / 'o'), '--steps', '150', '--n_records', '80'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert '[1/4]' in r.stdout and '[4/4]' in r.stdout and 'done in' in r.stdout
    m = json.loads((tmp_path / 'o' / 'metrics.json').read_text())
    assert m['steps'] == 150 and m['top1_after'] > 5 * max(m['top1_before'], m['chance'])
    assert m['data']['records'] + m['data']['skipped'] == 80 and sum(m['data']['splits'].values()) == m['data']['records']
    assert (tmp_path / 'o' / 'synthetic_ptbxl_100hz' / 'manifest.json').exists()
    assert abs(m['cross_entropy']['prediction 0.2 on the truth'] - 1.609) < 1e-3
    report = (tmp_path / 'o' / 'report.md').read_text()
    assert 'held-out top-1 retrieval' in report and 'toy_clip.png' in report
    assert (tmp_path / 'o' / 'toy_clip.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_demo_is_deterministic_for_a_seed(tmp_path):
    for d in ('a', 'b'): subprocess.run(['etp_demo', '--out', str(tmp_path / d), '--steps', '30', '--seed', '3', '--n_records', '20'], check=True, capture_output=True)
    a, b = (json.loads((tmp_path / d / 'metrics.json').read_text()) for d in 'ab')
    assert a['final_loss'] == b['final_loss'] and a['top1_after'] == b['top1_after'] and a['data'] == {**b['data'], 'prepared': a['data']['prepared']}


def test_bad_argument_is_refused_with_a_message():
    r = subprocess.run(['etp_demo', '--steps', 'many'], capture_output=True, text=True)
    assert r.returncode != 0 and 'steps' in r.stderr
