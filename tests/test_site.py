"Stage 4 of `make test`: the documentation site builds offline, every notebook has a page, links and images resolve."
import pytest
import build_docs

pytestmark = pytest.mark.site


def test_every_notebook_has_a_page_and_all_links_resolve(built_site, root):
    site, _ = built_site
    problems = build_docs.check_site(site, root / 'nbs')
    assert not problems, '\n'.join(problems)
    print(f"{len(list(site.glob('**/*.html')))} pages checked")


def test_losses_page_has_equations_and_the_temperature_figure(built_site):
    page = (built_site[0] / 'losses.html').read_text()
    assert r'\mathcal{L}^{e2t}_i' in page and 'class="math display"' in page  # eq. 3-5, rendered by KaTeX in the browser
    assert page.count('data:image/png;base64') >= 1  # the temperature figure
    assert 'What the temperature does' in page


def test_readme_is_generated_from_the_index_notebook(built_site, root):
    _, before = built_site
    after = (root / 'README.md').read_text()
    assert after.startswith(build_docs.README_HEADER)
    assert before == after, "README.md is out of date with nbs/index.ipynb: run `make docs` and commit README.md"


def test_check_site_catches_a_broken_link_and_a_missing_page(tmp_path, root):
    (tmp_path / 'index.html').write_text('<a href="losses.html#nowhere">x</a><img src="fig.png"><a href="https://example.org">ok</a>')
    (tmp_path / 'losses.html').write_text('<h2 id="somewhere">y</h2>')
    problems = build_docs.check_site(tmp_path, root / 'nbs')
    assert any('fig.png' in p for p in problems)
    assert any('nowhere' in p for p in problems)
    assert any('no page for 90_demo.ipynb' in p for p in problems)
    assert not any('example.org' in p for p in problems)


def test_source_links_work_offline(built_site):
    "The `source` links of the API docs open the package's own copy in the site, not a repository address that is not online."
    site = built_site[0]
    page = (site / 'losses.html').read_text()
    assert 'src/etp_nbdev/losses.py' in page and (site / 'src' / 'etp_nbdev' / 'losses.py').exists()
    assert not [p.name for p in site.glob('*.html') if '/blob/main/etp_nbdev/' in p.read_text()]


def test_the_sidebar_lists_every_notebook_once(root):
    "The sidebar is written by hand (custom_sidebar): the learning path first, then the reference. A new notebook must be placed in it."
    import re
    listed = re.findall(r'-\s+(\S+\.ipynb)', (root / 'nbs' / 'sidebar.yml').read_text())
    assert sorted(listed) == sorted(p.name for p in (root / 'nbs').glob('*.ipynb')), set(listed) ^ {p.name for p in (root / 'nbs').glob('*.ipynb')}
    assert listed[:2] == ['index.ipynb', '20_losses.ipynb']
