"""The real gather path: two gloo processes on loopback each hold half of a batch; their loss
equals the single-process loss on the whole batch, and their DDP-averaged gradients equal the
single-process gradients. Ranks holding different numbers of rows go through the padding path
and still get the rank-ordered rows and their own gradients."""
import os
import os.path as osp
import socket

import pytest
import torch
import torch.multiprocessing as mp

from conftest import REPO
from ctglip.models.losses.gather import gather_features  # before the fork: workers start fast


def _build(bert):
    from mmengine.config import Config

    from ctglip.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/tests/tiny_ctglip.py'))
    cfg.model.text_encoder.model_path = bert
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()  # eval: fixed anatomy template, no drop-path


def _batch(data_root):
    from mmengine.config import Config

    from ctglip.datasets import CTReportDataset
    cfg = Config.fromfile(osp.join(REPO, 'configs/tests/tiny_ctglip.py'))
    ds = CTReportDataset(data_root, split=None, pipeline=cfg.test_pipeline)
    items = [ds[i] for i in range(4)]
    return dict(inputs=[i['inputs'] for i in items],
                data_samples=[i['data_samples'] for i in items])


def _loss_and_grad(model, batch):
    data = model.data_preprocessor(batch)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = losses['loss_anatomy'] + losses['loss_diagnosis']
    model.zero_grad()
    total.backward()
    return total.detach(), model.image_proj.net.weight.grad.clone()


def _worker(rank, port, bert, data_root, out):
    import torch.distributed as dist
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    model, batch = _build(bert), _batch(data_root)
    half = {k: v[2 * rank:2 * rank + 2] for k, v in batch.items()}
    loss, grad = _loss_and_grad(model, half)
    dist.all_reduce(grad)
    grad /= 2  # what DDP does
    torch.save(dict(loss=loss, grad=grad), osp.join(out, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_match_one_process(tiny_bert, tiny_data, tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, tiny_bert, tiny_data, str(tmp_path)), nprocs=2,
                       start_method='fork')
    single_loss, single_grad = _loss_and_grad(_build(tiny_bert), _batch(tiny_data))
    for rank in range(2):
        out = torch.load(tmp_path / f'rank{rank}.pt')
        assert torch.allclose(out['loss'], single_loss, atol=1e-5)
        assert torch.allclose(out['grad'], single_grad, atol=1e-5)


def _gather_worker(rank, port, sizes, out):
    """Rank ``k`` holds ``sizes[k]`` rows; its loss weighs the gathered rows by ``(k + 1) * W``."""
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=len(sizes))
    rows = _ranked_rows(sizes)
    x = rows[rank].clone().requires_grad_()
    gathered = gather_features(x)
    (gathered * _row_weights(sum(sizes)) * (rank + 1)).sum().backward()
    torch.save(dict(gathered=gathered.detach(), grad=x.grad), osp.join(out, f'rank{rank}.pt'))
    dist.destroy_process_group()


def _ranked_rows(sizes, dim=4):
    """Distinct rows per rank: rank ``k`` holds ``sizes[k] x dim`` values from ``100 * k``."""
    return [100.0 * k + torch.arange(n * dim, dtype=torch.float32).view(n, dim)
            for k, n in enumerate(sizes)]


def _row_weights(total, dim=4):
    """A different weight for every element, so a row sent back to the wrong place shows."""
    return torch.arange(1, total * dim + 1, dtype=torch.float32).view(total, dim)


@pytest.mark.parametrize('sizes', [(3, 5), (0, 2)])
def test_gather_of_uneven_ranks_pads_and_returns_each_rank_its_gradient(sizes, tmp_path):
    """Ranks with different row counts: the padding path of ``gather_features``.

    Every rank gets the rank-ordered concatenation without padding rows. The backward of the
    gather sums, over ranks, the gradient each rank's loss puts on a row and hands it to the
    rank owning that row: with rank ``k`` weighting by ``(k + 1) * W``, rank ``r`` receives
    ``(1 + 2) * W`` on its own slice of rows, and nothing of the padding.
    """
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_gather_worker, args=(port, sizes, str(tmp_path)), nprocs=len(sizes),
                       start_method='fork')
    expected = torch.cat(_ranked_rows(sizes))
    weights = _row_weights(sum(sizes))
    start = 0
    for rank, n in enumerate(sizes):
        out = torch.load(tmp_path / f'rank{rank}.pt')
        assert torch.equal(out['gathered'], expected)
        assert out['grad'].shape == (n, 4)
        assert torch.equal(out['grad'], 3 * weights[start:start + n])
        start += n
