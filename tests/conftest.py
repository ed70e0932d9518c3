import os, sys
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
