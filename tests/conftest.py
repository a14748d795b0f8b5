"""Shared fixtures: a tiny random BERT and a tiny manifest dataset, built once per session."""
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REAL_DATA = osp.join(osp.dirname(REPO), 'shared', 'data', 'totalsegmentator')

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


@pytest.fixture(scope='session')
def tiny_bert(tmp_path_factory):
    from ctglip.testing import make_tiny_bert
    return make_tiny_bert(str(tmp_path_factory.mktemp('bert') / 'tiny_bert'))


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    from ctglip.testing import make_tiny_dataset
    return make_tiny_dataset(str(tmp_path_factory.mktemp('data') / 'tiny'), num_cases=8)


@pytest.fixture(scope='session')
def real_data():
    if not osp.isdir(REAL_DATA):
        pytest.skip(f'real CT fixtures not found at {REAL_DATA}')
    return REAL_DATA


@pytest.fixture
def process_group():
    """A one-process gloo group on the loopback address."""
    import socket

    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()
