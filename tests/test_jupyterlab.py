"""JupyterLab as a person uses it (`make lab`): the server starts on nbs/, lists the notebooks, serves the Lab page,
and a notebook runs top to bottom in a kernel over the same websocket the browser uses."""
import configparser, datetime, json, os, secrets, signal, socket, subprocess, sys, time, urllib.error, urllib.request, uuid
import pytest

websocket = pytest.importorskip('websocket', reason='websocket-client (a dependency of jupyter_server) talks to the kernel')
pytest.importorskip('jupyterlab')

NOTEBOOK = '20_losses.ipynb'  # small and quick (about 5 s), with equations, tests and a figure


class Lab:
    "A JupyterLab server started on a folder, with its REST API."
    def __init__(self, folder, tmp, timeout=90):
        self.token, self.folder = secrets.token_hex(16), folder
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        self.url, self.ws_url = f'http://127.0.0.1:{port}', f'ws://127.0.0.1:{port}'
        env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernel's own inline backend, as in Lab
        env |= {'PATH': os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', ''),  # the kernel is .venv's python
                'JUPYTER_CONFIG_DIR': str(tmp / 'config'), 'JUPYTER_RUNTIME_DIR': str(tmp / 'runtime'),  # no user config
                'JUPYTERLAB_WORKSPACES_DIR': str(tmp / 'workspaces')}
        self.log = open(tmp / 'server.log', 'w+')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
             f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={folder}',
             *(['--allow-root'] if os.geteuid() == 0 else [])],  # CI containers run as root
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            try:
                self.api('GET', '/api/status'); break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > end:
                    log = self.log_tail(); self.close()
                    raise RuntimeError(f"JupyterLab did not answer within {timeout} s (exit {self.proc.poll()}):\n{log}")
                time.sleep(0.2)

    def log_tail(self, n=3000) -> str:
        self.log.seek(0); return self.log.read()[-n:]

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={'Authorization': f'token {self.token}', 'Content-Type': 'application/json'})
        return urllib.request.urlopen(req, timeout=30)

    def api(self, method, path, body=None):
        with self.request(method, path, body) as r:
            text = r.read()
            return json.loads(text) if text else None

    def close(self):
        "Stop the server as `jupyter lab` stops on Ctrl-C: kernels shut down first. Then make sure it is gone."
        if self.proc.poll() is None:
            try: self.api('POST', '/api/shutdown')
            except (urllib.error.URLError, ConnectionError): pass
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait()
        self.log.close()


@pytest.fixture(scope='module')
def lab(root, tmp_path_factory):
    server = Lab(root / 'nbs', tmp_path_factory.mktemp('jupyterlab'))
    try: yield server
    finally: server.close()


def test_lab_lists_the_notebooks_and_serves_its_page(lab, root):
    listing = lab.api('GET', '/api/contents')
    notebooks = {c['name'] for c in listing['content'] if c['type'] == 'notebook'}
    assert {'00_core.ipynb', '20_losses.ipynb', 'index.ipynb'} <= notebooks, notebooks
    assert notebooks == {p.name for p in (root / 'nbs').glob('*.ipynb')}
    with lab.request('GET', '/lab') as r:
        assert r.status == 200 and 'jupyter-config-data' in r.read().decode()


def cells_to_run(nb: dict, settings) -> list[str]:
    "The code cells nbdev_test runs: not those calling nbdev_export(), `#| eval: false`, or flagged with settings.ini's tst_flags."
    cfg = configparser.ConfigParser(); cfg.read(settings)
    skip = set(cfg['DEFAULT'].get('tst_flags', '').split())
    def runs(src):
        directives = {d[0]: d[1:] for line in src.splitlines() if line.startswith('#|') and (d := line[2:].split())}
        return 'nbdev_export(' not in src and directives.get('eval:', [''])[0].lower() != 'false' and not skip & directives.keys()
    return [src for c in nb['cells'] if c['cell_type'] == 'code' and runs(src := ''.join(c['source']))]


def execute(ws, session, code, timeout=120) -> tuple[dict, list[dict]]:
    "Run `code` on the kernel over its websocket, as the Lab frontend does: the execute_reply and the outputs."
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        'header': {'msg_id': msg_id, 'msg_type': 'execute_request', 'session': session, 'username': 'test', 'version': '5.3',
                   'date': datetime.datetime.now(datetime.timezone.utc).isoformat()},
        'parent_header': {}, 'metadata': {}, 'channel': 'shell', 'buffers': [],
        'content': {'code': code, 'silent': False, 'store_history': True, 'user_expressions': {}, 'allow_stdin': False,
                    'stop_on_error': True}}))
    reply, outputs, idle, end = None, [], False, time.monotonic() + timeout
    while reply is None or not idle:
        if time.monotonic() > end: raise TimeoutError(f"cell did not finish in {timeout} s:\n{code[:300]}")
        msg = json.loads(ws.recv())
        if msg.get('parent_header', {}).get('msg_id') != msg_id: continue
        kind = msg['msg_type']
        if kind == 'execute_reply': reply = msg['content']
        elif kind == 'status': idle = msg['content']['execution_state'] == 'idle'
        elif kind in ('stream', 'display_data', 'execute_result', 'error'): outputs.append(msg | {'kind': kind})
    return reply, outputs


def run_cells(ws, session, cells) -> tuple[list[str], int]:
    "Run `cells` in order, stopping at the first that fails: the failures (with their stderr), and the figures shown."
    problems, figures = [], 0
    for i, code in enumerate(cells):
        reply, outputs = execute(ws, session, code)
        errors = [f"{o['content']['ename']}: {o['content']['evalue']}" for o in outputs if o['kind'] == 'error']
        if reply['status'] != 'ok' or errors:
            stderr = ''.join(o['content']['text'] for o in outputs if o['kind'] == 'stream' and o['content']['name'] == 'stderr')
            return [f"cell {i}: {reply['status']} {errors}\n{stderr[-2000:]}\n{code[:500]}"], figures
        figures += sum('image/png' in o['content'].get('data', {}) for o in outputs)
    return problems, figures


def test_a_notebook_runs_top_to_bottom_in_a_lab_kernel(lab, root):
    nb = lab.api('GET', f'/api/contents/{NOTEBOOK}?type=notebook&content=1')['content']  # what Lab opens
    cells = cells_to_run(nb, root / 'settings.ini')
    assert len(cells) > 10
    kernel = lab.api('POST', '/api/kernels', {'name': 'python3'})
    session = uuid.uuid4().hex
    ws = websocket.create_connection(f"{lab.ws_url}/api/kernels/{kernel['id']}/channels?session_id={session}",
                                     header=[f'Authorization: token {lab.token}'], timeout=120, suppress_origin=True)
    try:
        start = time.monotonic()
        problems, figures = run_cells(ws, session, cells)
        assert not problems, f"{NOTEBOOK} fails in JupyterLab: {problems[0]}"
        assert figures >= 1, f"{NOTEBOOK} showed no figure in the kernel"
        print(f"{NOTEBOOK}: {len(cells)} cells ok in {time.monotonic() - start:.1f} s, {figures} figure(s)")
        # the check can fail: a cell that raises is caught, and the cells after it are not run
        problems, _ = run_cells(ws, session, ['x = 1', 'import sys; print("about to fail", file=sys.stderr); 1 / 0', 'x = 2'])
        assert len(problems) == 1 and 'cell 1: error' in problems[0] and 'ZeroDivisionError' in problems[0], problems
        assert 'about to fail' in problems[0]
        assert execute(ws, session, 'assert x == 1')[0]['status'] == 'ok'
    finally:
        ws.close()
        lab.request('DELETE', f"/api/kernels/{kernel['id']}").close()
    assert kernel['id'] not in {k['id'] for k in lab.api('GET', '/api/kernels')}
