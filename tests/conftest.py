import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / 'shared' / 'data'
sys.path.insert(0, str(ROOT / 'tools'))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


def pytest_configure(config):
    config.addinivalue_line('markers', 'site: builds and checks the documentation site (stage 4 of make test)')


@pytest.fixture(scope='session')
def root() -> Path: return ROOT


@pytest.fixture(scope='session')
def shared_data() -> Path:
    "The real PTB-XL/CPSC2018 subsets beside the checkout; tests that need them skip where they are absent."
    if not SHARED_DATA.exists(): pytest.skip(f"real-data subset not found at {SHARED_DATA} (it exists in CI and developer checkouts only)")
    return SHARED_DATA


@pytest.fixture(scope='session')
def built_site(root):
    "The documentation site built offline into _docs/ (once per session), and README.md as it was before the build."
    readme_before = (root / 'README.md').read_text()
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--offline'], cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    return root / '_docs', readme_before


if os.environ.get('PYTEST_XDIST_WORKER'):  # `make test` runs two pytest workers on a 2-core machine: one thread each, no oversubscription
    import torch
    torch.set_num_threads(1)
