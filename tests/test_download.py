"`etp_download` against a generated PTB-XL-like release served from 127.0.0.1 by a small HTTP server that honours Range."
import hashlib, random, re, shutil, socket, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
import etp_nbdev.download as dl
from etp_nbdev.core import OutputFolder
from etp_nbdev.download import ChecksumMismatch, DownloadError, download, etp_download, fetch_file, sha256_file


def sha(b: bytes) -> str: return hashlib.sha256(b).hexdigest()


def make_release(n_records=3, seed=1) -> dict:
    "PTB-XL's layout in miniature: top-level CSVs and licence, WFDB pairs at 100 Hz and 500 Hz of the real sizes."
    rng = random.Random(seed)
    files = {'LICENSE.txt': b'CC BY 4.0\n', 'RECORDS': b'', 'ptbxl_database.csv': b'ecg_id,report\n1,sinusrhythmus\n',
             'scp_statements.csv': b',diagnostic_class\nNORM,NORM\n'}
    for i in range(1, n_records + 1):
        for folder, tag, fs in (('records100', 'lr', 100), ('records500', 'hr', 500)):
            stem = f'{folder}/00000/{i:05d}_{tag}'
            files['RECORDS'] += f'{stem}\n'.encode()
            files[stem + '.hea'] = f'{i:05d}_{tag} 12 {fs} {10 * fs}\n'.encode()
            files[stem + '.dat'] = rng.randbytes(24 * 10 * fs)
    return files


class Mirror:
    """Serves `files` and their SHA256SUMS.txt on 127.0.0.1. `corrupt` maps a path to the bytes actually sent,
    `cut` a path to a byte count after which the first response for it is dropped (Content-Length stays the full size),
    `range_ok=False` makes it ignore Range headers, `drop_files=True` hangs up on every file but the checksum list.
    `requests` lists (path, Range header, status) in order."""
    def __init__(self, files, corrupt=None, cut=None, range_ok=True, drop_files=False, checksums=None):
        self.files, self.corrupt, self.cut = dict(files), dict(corrupt or {}), dict(cut or {})
        self.range_ok, self.drop_files, self.requests = range_ok, drop_files, []
        self.files['SHA256SUMS.txt'] = checksums if checksums is not None else \
            ''.join(f'{sha(b)}  {p}\n' for p, b in sorted(files.items())).encode()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass

            def do_GET(self):
                path, rng = self.path.lstrip('/'), self.headers.get('Range')
                body = mirror.corrupt.get(path, mirror.files.get(path))
                if body is None:
                    mirror.requests.append((path, rng, 404)); return self.send_error(404)
                if mirror.drop_files and path != 'SHA256SUMS.txt':
                    mirror.requests.append((path, rng, None)); self.close_connection = True; return
                m = re.fullmatch(r'bytes=(\d+)-', rng or '') if mirror.range_ok else None
                start = int(m[1]) if m else 0
                if m and start >= len(body):
                    mirror.requests.append((path, rng, 416))
                    self.send_response(416); self.send_header('Content-Range', f'bytes */{len(body)}')
                    self.send_header('Content-Length', '0'); self.end_headers(); return
                status = 206 if m else 200
                mirror.requests.append((path, rng, status))
                self.send_response(status)
                if m: self.send_header('Content-Range', f'bytes {start}-{len(body) - 1}/{len(body)}')
                self.send_header('Content-Length', str(len(body) - start)); self.end_headers()
                payload = body[start:]
                if path in mirror.cut: payload = payload[:mirror.cut.pop(path)]  # hang up half-way, once
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}/'

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True).start()
        return self

    def __exit__(self, *exc): self.server.shutdown(); self.server.server_close()

    def got(self, path): return [r for r in self.requests if r[0] == path]


def closed_port_url():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}/'


def cli(*args, timeout=60):
    exe = shutil.which('etp_download') or str(Path(sys.executable).with_name('etp_download'))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


def quiet(msg): pass


@pytest.fixture
def release(): return make_release()


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch): monkeypatch.setattr(dl, 'RETRY_PAUSE', 0.0)


def assert_all_verified(dest, files):
    for p, b in files.items(): assert sha256_file(dest / p) == sha(b), p
    assert not list(dest.rglob('*.part'))


# -- the four promises of the brief ----------------------------------------------------------------------------


def interrupted_download(dest):
    "Mark `dest` as the folder of an earlier etp_download that was interrupted (which is what leaves .part files behind)."
    OutputFolder(dest, 'etp_download', in_place=True, writes=('*',)).open_in_place()

def test_full_download_verifies_every_file_and_a_rerun_fetches_nothing(tmp_path, release):
    with Mirror(release) as m:
        first = download('ptbxl', tmp_path, base_url=m.url, workers=3, log=quiet)
        n = len(m.requests)
        again = download('ptbxl', tmp_path, base_url=m.url, workers=3, log=quiet)
    assert first.ok and sorted(first.fetched) == sorted(release) and first.nbytes == sum(map(len, release.values()))
    assert_all_verified(tmp_path, release)
    assert n == 1 + len(release) and all(r[2] == 200 for r in m.requests[:n])  # the list, then each file once
    assert m.requests[n:] == [('SHA256SUMS.txt', None, 200)]  # the re-run asks for the list only
    assert again.ok and again.fetched == [] and again.present == sorted(release) and again.nbytes == 0
    assert (tmp_path / 'SHA256SUMS.txt').read_bytes() == m.files['SHA256SUMS.txt']


def test_a_truncated_part_is_continued_with_a_range_request(tmp_path, release):
    interrupted_download(tmp_path)
    big = 'records500/00000/00002_hr.dat'
    (tmp_path / big).parent.mkdir(parents=True)
    (tmp_path / (big + '.part')).write_bytes(release[big][:50_000])
    msgs = []
    with Mirror(release) as m: rep = download('ptbxl', tmp_path, base_url=m.url, log=msgs.append)
    assert rep.ok
    assert m.got(big) == [(big, 'bytes=50000-', 206)]
    assert rep.nbytes == sum(map(len, release.values())) - 50_000  # only the rest crossed the wire
    assert_all_verified(tmp_path, release)
    assert any('resuming at byte 50,000' in s for s in msgs)


def test_a_corrupted_file_is_named_with_both_hashes_and_fails_the_run_while_the_rest_lands(tmp_path, release):
    bad = 'records100/00000/00002_lr.dat'
    served = release[bad][:100] + b'\x00' * 8 + release[bad][108:]
    msgs = []
    with Mirror(release, corrupt={bad: served}) as m:
        rep = download('ptbxl', tmp_path, base_url=m.url, log=msgs.append)
    assert not rep.ok and list(rep.failed) == [bad]
    assert sha(release[bad]) in rep.failed[bad] and sha(served) in rep.failed[bad]
    assert len(m.got(bad)) == 2  # tried, deleted, retried once
    assert not (tmp_path / bad).exists() and not (tmp_path / (bad + '.part')).exists()
    assert_all_verified(tmp_path, {p: b for p, b in release.items() if p != bad})
    assert sorted(rep.fetched + list(rep.failed)) == sorted(release)  # nothing dropped
    summary = msgs[-1]
    assert 'FAILED         1' in summary and bad in summary and sha(served) in summary and 'INCOMPLETE' in summary
    assert (tmp_path / dl.FAILED_LIST).read_text().startswith(bad + '\t')
    with Mirror(release) as m:  # the mirror is repaired: the next run fetches only the missing file
        rep = download('ptbxl', tmp_path, base_url=m.url, log=quiet)
    assert rep.ok and rep.fetched == [bad] and not (tmp_path / dl.FAILED_LIST).exists()


def test_offline_gives_the_clear_message_quickly(tmp_path):
    t0 = time.time()
    with pytest.raises(DownloadError, match=r'cannot reach 127\.0\.0\.1:\d+: you seem to be offline .*--base_url to a mirror'):
        download('ptbxl', tmp_path / 'd', base_url=closed_port_url(), log=quiet)
    assert time.time() - t0 < 3 and not (tmp_path / 'd').exists()


def test_an_unresolvable_host_gives_the_same_message(tmp_path):
    t0 = time.time()
    with pytest.raises(DownloadError, match='cannot reach no-such-host.invalid: you seem to be offline'):
        download('ptbxl', tmp_path, base_url='http://no-such-host.invalid/ptb-xl/', timeout=3, log=quiet)
    assert time.time() - t0 < 5


# -- the command line, as a user runs it ----------------------------------------------------------------------

def test_cli_help_explains_the_command():
    r = cli('--help')
    assert r.returncode == 0, r.stderr
    for word in ('ptbxl', 'cpsc2018', 'SHA256SUMS.txt', '--dest', '--base_url', '--rates', '--workers', '--dry_run', 'resume'):
        assert word in r.stdout, word


def test_cli_downloads_from_a_mirror_and_accepts_hyphenated_options(tmp_path, release):
    with Mirror(release) as m:
        r = cli('ptbxl', '--dest', str(tmp_path / 'ptbxl'), '--base-url', m.url, '--rates', '100', '--workers', '2')
    assert r.returncode == 0, r.stdout + r.stderr
    want = {p: b for p, b in release.items() if not p.startswith('records500/')}
    assert_all_verified(tmp_path / 'ptbxl', want)
    assert not (tmp_path / 'ptbxl' / 'records500').exists()
    assert f'OK: all {len(want)} files' in r.stdout and 'Traceback' not in r.stderr


def test_cli_exits_non_zero_and_names_a_corrupted_file(tmp_path, release):
    bad = 'records500/00000/00001_hr.dat'
    with Mirror(release, corrupt={bad: b'not an ecg'}) as m:
        r = cli('ptbxl', '--dest', str(tmp_path), '--base_url', m.url)
    assert r.returncode == 1
    assert bad in r.stdout and sha(release[bad]) in r.stdout and sha(b'not an ecg') in r.stdout and 'INCOMPLETE' in r.stdout
    assert len([p for p in release if (tmp_path / p).exists()]) == len(release) - 1


def test_cli_offline_prints_the_message_without_a_traceback(tmp_path):
    t0 = time.time()
    r = cli('cpsc2018', '--dest', str(tmp_path), '--base_url', closed_port_url())
    assert r.returncode == 2 and time.time() - t0 < 20
    assert 'you seem to be offline' in r.stderr and 'Traceback' not in r.stderr


def test_cli_refuses_bad_options_with_a_message(tmp_path):
    r = cli('ptbxl', '--rates', '250', '--base_url', closed_port_url())
    assert r.returncode == 2 and 'no 250 Hz' in r.stderr and 'Traceback' not in r.stderr
    r = cli('mimic')
    assert r.returncode == 2 and 'invalid choice' in r.stderr


# -- resume and failure paths in detail -----------------------------------------------------------------------

def test_a_server_that_ignores_range_restarts_the_file_cleanly(tmp_path, release):
    interrupted_download(tmp_path)
    rel = 'records100/00000/00001_lr.dat'
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / (rel + '.part')).write_bytes(release[rel][:5000])
    with Mirror(release, range_ok=False) as m: rep = download('ptbxl', tmp_path, base_url=m.url, log=quiet)
    assert rep.ok and m.got(rel) == [(rel, 'bytes=5000-', 200)]
    assert_all_verified(tmp_path, release)


def test_a_connection_cut_mid_file_is_resumed_on_the_retry(tmp_path, release):
    rel = 'records500/00000/00003_hr.dat'
    msgs = []
    with Mirror(release, cut={rel: 70_000}) as m: rep = download('ptbxl', tmp_path, base_url=m.url, log=msgs.append)
    assert rep.ok and m.got(rel) == [(rel, None, 200), (rel, 'bytes=70000-', 206)]
    assert any('connection closed after 70,000 of 120,000 bytes; retrying' in s for s in msgs)
    assert_all_verified(tmp_path, release)


def test_a_part_with_wrong_bytes_fails_the_check_and_the_retry_starts_from_zero(tmp_path, release):
    interrupted_download(tmp_path)
    rel = 'records100/00000/00003_lr.dat'
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / (rel + '.part')).write_bytes(b'garbage' * 100)
    with Mirror(release) as m: rep = download('ptbxl', tmp_path, base_url=m.url, log=quiet)
    assert rep.ok and m.got(rel) == [(rel, 'bytes=700-', 206), (rel, None, 200)]
    assert_all_verified(tmp_path, release)


def test_a_complete_part_gets_416_and_is_verified_and_renamed(tmp_path, release):
    interrupted_download(tmp_path)
    rel = 'records100/00000/00001_lr.hea'
    dest = tmp_path / rel
    dest.parent.mkdir(parents=True)
    (tmp_path / (rel + '.part')).write_bytes(release[rel])
    with Mirror(release) as m: n = fetch_file(m.url + rel, dest, sha(release[rel]))
    assert n == 0 and dest.read_bytes() == release[rel] and m.requests == [(rel, f'bytes={len(release[rel])}-', 416)]


def test_a_wrong_local_copy_is_replaced(tmp_path, release):
    with Mirror(release) as m:
        download('ptbxl', tmp_path, base_url=m.url, log=quiet)
        rel = 'ptbxl_database.csv'
        (tmp_path / rel).write_bytes(b'edited')
        msgs = []
        rep = download('ptbxl', tmp_path, base_url=m.url, log=msgs.append)
    assert rep.ok and rep.fetched == [rel] and any('wrong checksum' in s and rel in s for s in msgs)
    assert_all_verified(tmp_path, release)


def test_a_file_missing_on_the_server_is_listed_and_not_retried(tmp_path, release):
    listed = ''.join(f'{sha(b)}  {p}\n' for p, b in sorted(release.items())) + f'{"0" * 64}  records100/00000/00009_lr.dat\n'
    with Mirror(release, checksums=listed.encode()) as m:
        rep = download('ptbxl', tmp_path, base_url=m.url, log=quiet)
    assert rep.failed == {'records100/00000/00009_lr.dat': 'HTTP 404 Not Found'}
    assert len(m.got('records100/00000/00009_lr.dat')) == 1 and sorted(rep.fetched) == sorted(release)


def test_a_lost_connection_stops_the_run_early_and_lists_every_missing_file(tmp_path):
    files = {f'records100/{i:05d}_lr.dat': bytes([i]) * 100 for i in range(40)}
    with Mirror(files, drop_files=True) as m:
        rep = download('ptbxl', tmp_path, base_url=m.url, workers=1, retries=1, log=quiet)
    assert not rep.ok and len(rep.failed) == 5 and len(rep.not_attempted) == 35  # stops after 5 files in a row
    assert 'connection' in rep.stop_reason and len(m.requests) == 1 + 5 * 2
    assert sorted(list(rep.failed) + rep.not_attempted) == sorted(files)
    listed = (tmp_path / dl.FAILED_LIST).read_text().splitlines()
    assert len(listed) == 40 and sum(l.endswith('not attempted') for l in listed) == 35


def test_dry_run_lists_what_would_be_fetched_and_writes_nothing(tmp_path, release):
    with Mirror(release) as m:
        download('ptbxl', tmp_path / 'half', base_url=m.url, rates=100, log=quiet)
        msgs = []
        rep = download('ptbxl', tmp_path / 'half', base_url=m.url, dry_run=True, log=msgs.append)
    assert rep.ok and rep.would_fetch == sorted(p for p in release if p.startswith('records500/'))
    assert [s for s in msgs if s.startswith('would fetch')] == [f'would fetch {p}' for p in rep.would_fetch]
    assert not (tmp_path / 'half' / 'records500').exists()


def test_cpsc2018_takes_only_its_folder_of_the_challenge_release(tmp_path):
    files = {'LICENSE.txt': b'CC BY 4.0\n', 'RECORDS': b'training/cpsc_2018/g1/\n',
             'training/cpsc_2018/g1/A0001.hea': b'A0001 12 500 5000\n#Dx: 59118001\n',
             'training/cpsc_2018/g1/A0001.mat': b'\x00\x01' * 500,
             'training/cpsc_2018_extra/g1/Q0001.mat': b'extra', 'training/georgia/g1/E00001.mat': b'georgia'}
    with Mirror(files) as m: rep = download('cpsc2018', tmp_path, base_url=m.url, log=quiet)
    assert rep.ok and rep.fetched == ['LICENSE.txt', 'training/cpsc_2018/g1/A0001.hea', 'training/cpsc_2018/g1/A0001.mat']
    assert not (tmp_path / 'training' / 'cpsc_2018_extra').exists() and not (tmp_path / 'training' / 'georgia').exists()


def test_a_mirror_without_the_dataset_is_refused(tmp_path):
    with Mirror({'other/file.txt': b'x'}) as m:
        with pytest.raises(DownloadError, match='lists no file of cpsc2018'):
            download('cpsc2018', tmp_path, base_url=m.url, log=quiet)


def test_an_unsafe_path_in_the_checksum_list_is_refused(tmp_path, release):
    with Mirror(release, checksums=f'{"0" * 64}  ../outside.txt\n'.encode()) as m:
        with pytest.raises(DownloadError, match='unsafe path'):
            download('ptbxl', tmp_path / 'd', base_url=m.url, log=quiet)
    assert not (tmp_path / 'outside.txt').exists()


def test_fetch_file_raises_checksum_mismatch_with_both_hashes(tmp_path, release):
    rel = 'records100/00000/00001_lr.dat'
    with Mirror(release, corrupt={rel: b'x'}) as m:
        with pytest.raises(ChecksumMismatch) as e: fetch_file(m.url + rel, tmp_path / 'f.dat', sha(release[rel]))
    assert (e.value.expected, e.value.actual) == (sha(release[rel]), sha(b'x'))
    assert not list(tmp_path.iterdir())


def test_etp_download_from_python_returns_the_exit_status(tmp_path, release):
    with Mirror(release) as m: assert etp_download('ptbxl', dest=str(tmp_path), base_url=m.url) == 0
    with pytest.raises(SystemExit) as e: etp_download('ptbxl', dest=str(tmp_path), base_url=closed_port_url())
    assert e.value.code == 2  # like every command: one error line and exit code 2


def test_a_foreign_folder_is_refused_and_left_alone(tmp_path, release):
    (tmp_path / 'records100').mkdir(); (tmp_path / 'records100' / 'mine.dat').write_bytes(b'a user file')
    with Mirror(release) as m, pytest.raises(ValueError, match='was not written by etp_download: choose a new or empty folder'):
        download('ptbxl', tmp_path, base_url=m.url, log=quiet)
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['mine.dat', 'records100']
