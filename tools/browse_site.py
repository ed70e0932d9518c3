"""Open pages of the built documentation site in headless Chromium, as a reader would, and report what is wrong.

    python tools/browse_site.py                                   # _docs/index.html, losses.html, resnet1d.html
    python tools/browse_site.py _docs core.html demo.html --out _screenshots

For each page it saves a 1280x2000 PNG screenshot (and one of the page's first figure) and reports a problem for: a
page that does not exist or does not finish loading, a local file the page asks for that fails to load (stylesheet,
script), an <img> the browser could not decode (missing file or broken inline data), an equation KaTeX could not
render, an uncaught JavaScript error, a screenshot that is blank (over 99.9% one colour), a figure shrunk below 60% of
its size (its text unreadable), a code or output line cut off at the column's edge, and a warning printed in a cell's
output. The browser is driven
over the DevTools protocol (websocket-client, which jupyter_server installs); the network is blocked, so the site is
judged as it works offline. Exit status 1 when there is any problem.
"""
import argparse, base64, itertools, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
         '--remote-debugging-port=0', '--remote-allow-origins=*']
WIDTH, HEIGHT = 1280, 2000
MIN_SCALE = 0.6  # a figure shown below 60% of its size has text (legends, ticks) too small to read at 1280 px
# Runs in the page after its load event: every image made eager (lazy ones would not load off screen) and decoded,
# then what a reader sees of the images (with their place on the page) and of the equations KaTeX failed to render.
PAGE_JS = """(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  return {images: imgs.map((i, n) => { const r = i.getBoundingClientRect();
            return {src: i.getAttribute('src') || '', ok: decoded[n] && i.complete && i.naturalWidth > 0, natural: i.naturalWidth,
                    x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; }),
          math_errors: Array.from(document.querySelectorAll('.katex-error')).map(e => e.textContent.slice(0, 80)),
          clipped: Array.from(document.querySelectorAll('pre')).filter(p => p.scrollWidth > p.clientWidth + 2)
                     .map(p => p.textContent.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '').slice(0, 60)),
          warnings: Array.from(document.querySelectorAll('.cell-output, .cell-output-stderr, .cell-output-stdout'))
                     .map(e => (e.textContent.match(/[^\\n]*\\b[A-Za-z]*Warning\\b[:(][^\\n]*/) || [''])[0]).filter(t => t).map(t => t.trim().slice(0, 120))};
})()"""


def find_browser() -> str | None:
    "The first Chromium-family browser on PATH (or $CHROMIUM), else None."
    if os.environ.get('CHROMIUM'): return shutil.which(os.environ['CHROMIUM'])
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def blank_fraction(png: Path) -> float:
    "The share of the screenshot's pixels that have its most common colour (1.0: a blank, uniform image)."
    from PIL import Image
    with Image.open(png) as im:
        im = im.convert('RGB')
        colours = im.getcolors(maxcolors=im.width * im.height)
        return max(n for n, _ in colours) / (im.width * im.height)


class Browser:
    "Headless Chromium with one tab, driven over the DevTools protocol. Use as a context manager."
    def __init__(self, exe: str | None = None, timeout: float = 30):
        self.exe, self.timeout = exe or find_browser(), timeout
        if not self.exe: raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(BROWSERS)})")

    def __enter__(self):
        import websocket  # websocket-client
        self._profile = tempfile.TemporaryDirectory(prefix='etp-chromium-')
        self._log = open(Path(self._profile.name) / 'chromium.log', 'w+')
        self.proc = subprocess.Popen([self.exe, *FLAGS, f'--user-data-dir={self._profile.name}', 'about:blank'],
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            port = self._port()
            tabs = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=self.timeout))
            page = next(t for t in tabs if t.get('type') == 'page')
            self.ws = websocket.create_connection(page['webSocketDebuggerUrl'], timeout=self.timeout, suppress_origin=True)
            self._ids, self.events = itertools.count(1), []
            for domain in ('Page', 'Network', 'Runtime'): self.send(f'{domain}.enable')
            self.send('Network.setBlockedURLs', urls=['http://*', 'https://*'])  # offline, and no waiting on a CDN
            self.send('Emulation.setDeviceMetricsOverride', width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__(); raise
        return self

    def _port(self) -> int:
        "The DevTools port Chromium picked; it writes it to DevToolsActivePort in the profile once it listens."
        f, end = Path(self._profile.name) / 'DevToolsActivePort', time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None: break
            if f.exists() and f.read_text().strip(): return int(f.read_text().split()[0])
            time.sleep(0.05)
        self._log.seek(0)
        raise RuntimeError(f"{self.exe} did not start (exit {self.proc.poll()}): {self._log.read()[-2000:]}")

    def __exit__(self, *exc):
        if getattr(self, 'ws', None): self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # Chromium's own helper processes are in its session
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait()
        self._log.close(); self._profile.cleanup()

    def send(self, method: str, **params) -> dict:
        "Call a DevTools method and return its result; events that arrive meanwhile are kept in `events`."
        i = next(self._ids)
        self.ws.send(json.dumps({'id': i, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == i:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})
            self.events.append(msg)

    def wait_for(self, method: str) -> dict:
        "The first event `method` (already received or still to come)."
        import websocket
        end = time.monotonic() + self.timeout
        while not (found := next((e for e in self.events if e.get('method') == method), None)):
            self.ws.settimeout(max(0.01, end - time.monotonic()))
            try: self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException: raise TimeoutError(f"no {method} within {self.timeout} s") from None
            finally: self.ws.settimeout(self.timeout)
        return found

    def visit(self, url: str, png: Path, name: str = '') -> tuple[list[str], list[Path]]:
        "Load `url`, save a screenshot to `png` (and of its first figure beside it): the problems a reader meets, the PNGs."
        self.events.clear()
        folder, name = url.rsplit('/', 1)[0] + '/', name or url
        nav = self.send('Page.navigate', url=url)
        if nav.get('errorText'): return [f"{name}: cannot be opened ({nav['errorText']})"], []
        try: self.wait_for('Page.loadEventFired')
        except TimeoutError as e: return [f"{name}: {e}"], []
        seen = self.send('Runtime.evaluate', expression=PAGE_JS, awaitPromise=True, returnByValue=True)['result']['value']
        shots = {png: self.send('Page.captureScreenshot', format='png')}
        figure = next((i for i in seen['images'] if i['ok'] and i['width'] > 0 and i['height'] > 0), None)
        if figure:  # the first figure as the reader sees it, wherever it is on the page
            clip = {k: figure[k] for k in ('x', 'y', 'width', 'height')} | {'scale': 1}
            shots[png.with_name(png.stem + '_figure.png')] = self.send('Page.captureScreenshot', format='png', clip=clip,
                                                                       captureBeyondViewport=True)
        problems = [f"{name}: image {short(i['src'])} does not load" for i in seen['images'] if not i['ok']]
        problems += [f"{name}: an equation does not render ({m!r})" for m in seen['math_errors']]
        problems += [f"{name}: figure {short(i['src'], 60)} is shown at {i['width'] / i['natural']:.0%} of its size, its text too small to "
                     f"read (make it narrower, or stack its panels)" for i in seen['images'] if i['ok'] and i['width'] < MIN_SCALE * i['natural']]
        problems += [f"{name}: a code or output line is clipped ({c!r}...)" for c in seen['clipped']]
        problems += [f"{name}: a warning is printed on the page: {w}" for w in seen['warnings']]
        for f, shot in shots.items():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(base64.b64decode(shot['data']))
            if (b := blank_fraction(f)) > 0.999:
                problems.append(f"{name}: the screenshot {f.name} is blank ({b:.2%} one colour)")
        requests = {e['params']['requestId']: e['params']['request']['url']
                    for e in self.events if e.get('method') == 'Network.requestWillBeSent'}
        for e in self.events:
            p = e.get('params', {})
            if e.get('method') == 'Network.loadingFailed' and p.get('type') != 'Image':  # images: reported above
                failed = requests.get(p['requestId'], '')
                if failed.startswith('file:'):
                    problems.append(f"{name}: {short(failed.removeprefix(folder))} failed to load ({p.get('errorText')})")
            if e.get('method') == 'Runtime.exceptionThrown':
                d = p['exceptionDetails']
                problems.append(f"{name}: JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}"[:300])
        return problems, list(shots)


def short(url: str, n: int = 80) -> str:
    return url if len(url) <= n else url[:n] + '...'


def browse(site: Path, pages: list[str], out: Path, **kw) -> tuple[list[str], list[Path]]:
    "Visit `pages` of `site` in one browser; return (problems, screenshots)."
    problems, shots = [], []
    with Browser(**kw) as b:
        for page in pages:
            found, pngs = b.visit((site / page).resolve().as_uri(), out / (Path(page).stem + '.png'), page)
            problems += found; shots += pngs
    return problems, shots


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('site', nargs='?', default='_docs', type=Path)
    ap.add_argument('pages', nargs='*', default=['index.html', 'losses.html', 'resnet1d.html'])
    ap.add_argument('--out', default=Path('_screenshots'), type=Path, help='folder for the PNG screenshots')
    a = ap.parse_args()
    for f in a.out.glob('*.png'): f.unlink()  # stale screenshots of an earlier run
    problems, shots = browse(a.site, a.pages, a.out)
    for s in shots: print(f"screenshot: {s}")
    for p in problems: print('PROBLEM', p)
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
