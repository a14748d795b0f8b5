"""Gather embeddings (with gradient) and row metadata across ranks, open_clip style.

Every rank computes the loss over the global batch; ``torch.distributed.nn.all_gather`` sends
gradients back to the rank that owns each row, and DDP's gradient averaging then gives the
gradient of the global loss. Single-process runs pass through unchanged. Tests monkeypatch
``gather_features`` and ``gather_objects`` to check the multi-rank path.
"""
import torch
import torch.distributed as dist


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_features(x):
    """Concatenate ``N_r x D`` tensors of all ranks along dim 0, keeping the gradient."""
    if world_size() == 1:
        return x
    import torch.distributed.nn.functional as dist_fn
    sizes = [None] * world_size()
    dist.all_gather_object(sizes, x.shape[0])
    n = max(sizes)
    padded = torch.cat([x, x.new_zeros((n - x.shape[0],) + x.shape[1:])]) if n > x.shape[0] else x
    parts = dist_fn.all_gather(padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def gather_objects(items):
    """Concatenate the Python lists of all ranks (rank order)."""
    if world_size() == 1:
        return list(items)
    out = [None] * world_size()
    dist.all_gather_object(out, list(items))
    return [x for part in out for x in part]
