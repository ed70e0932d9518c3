"""Stage 4 of `make test`: the built site opened in headless Chromium as a reader opens it (tools/browse_site.py).

Screenshots of the pages (and of each page's first figure) are kept in `_screenshots/` at the repository root.
"""
import base64, io, os, shutil
import pytest
import browse_site

pytestmark = pytest.mark.site
PAGES = ['index.html', 'losses.html', 'model.html', 'pretrain.html', 'zeroshot.html', 'demo.html', 'resnet1d.html']  # the learning path, and a module page with figures


@pytest.fixture(scope='module')
def chromium() -> str:
    exe = browse_site.find_browser()
    if not exe:
        tried = os.environ.get('CHROMIUM') or ', '.join(browse_site.BROWSERS)
        pytest.skip(f"no Chromium on PATH (tried {tried}): tools/ensure_chromium.sh installs it "
                    "with apt-get when run as root; `make test` runs it before this stage")
    pytest.importorskip('websocket', reason='websocket-client drives the browser (jupyter_server depends on it)')
    return exe


def test_pages_render_in_chromium_with_every_image(chromium, built_site, root):  # skips before building without a browser
    site, _ = built_site
    out = root / '_screenshots'
    shutil.rmtree(out, ignore_errors=True)
    problems, shots = browse_site.browse(site, PAGES, out, exe=chromium)
    assert not problems, '\n'.join(problems)
    names = {p.name for p in shots}
    assert {'index.png', 'losses.png', 'resnet1d.png', 'losses_figure.png', 'resnet1d_figure.png'} <= names, names
    print(f"{len(PAGES)} pages opened in {chromium}, screenshots in {out}: {', '.join(sorted(names))}")


def png_bytes(w=60, h=40) -> bytes:
    "A small gradient PNG: an image that is fine."
    from PIL import Image
    im = Image.new('RGB', (w, h))
    im.putdata([(4 * x % 256, 6 * y % 256, 128) for y in range(h) for x in range(w)])
    buf = io.BytesIO(); im.save(buf, format='PNG'); return buf.getvalue()


def test_the_browser_check_fails_on_what_a_reader_would_see_broken(tmp_path, chromium):
    site = tmp_path / 'site'; site.mkdir()
    (site / 'fig.png').write_bytes(png_bytes())
    (site / 'wide.png').write_bytes(png_bytes(600, 40))
    garbage = base64.b64encode(b"not an image " * 20).decode()
    (site / 'page.html').write_text(
        '<link rel="stylesheet" href="gone.css"><h1>A page</h1><p>Some text a reader sees.</p>'
        f'<img src="fig.png"><img src="missing.png"><img src="data:image/png;base64,{garbage}">'
        '<span class="katex-error">\\frac{1}{</span><script>throw new Error("boom")</script>'
        '<img src="wide.png" style="width:120px"><pre style="white-space:pre;overflow:auto;width:120px">' + 'x' * 200 + '</pre>'
        '<div class="cell-output cell-output-stderr"><pre>/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found</pre></div>')
    (site / 'blank.html').write_text('<html><body></body></html>')
    problems, shots = browse_site.browse(site, ['page.html', 'blank.html', 'nothere.html'], tmp_path / 'shots', exe=chromium)
    text = '\n'.join(problems)
    assert 'image missing.png does not load' in text and 'image data:image/png;base64' in text, text
    assert 'gone.css failed to load' in text and 'boom' in text and 'an equation does not render' in text, text
    assert 'the screenshot blank.png is blank' in text, text
    assert 'nothere.html: cannot be opened' in text, text
    assert 'figure wide.png is shown at 20% of its size' in text and 'a code or output line is clipped' in text, text
    assert 'a warning is printed on the page: /site-packages/tqdm/auto.py:21: TqdmWarning' in text, text
    assert 'fig.png' not in text and 'page.png' not in text and 'page_figure.png' not in text, text  # what is fine passes
    assert [p.name for p in shots] == ['page.png', 'page_figure.png', 'blank.png']
