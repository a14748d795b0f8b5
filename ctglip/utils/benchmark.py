"""Measuring a training step: times and their spread, FLOPs, the machine's GEMM and Conv3d
peaks, memory, text-encoder work. The pieces of ``tools/analysis_tools/benchmark.py`` (and of
the older timing scripts in ``tools/analysis_tools/``), kept here so that every timing in the
repository is made the same way.

Conventions: times are wall-clock seconds with the device synchronised around each timed
call; a spread is the interquartile range (IQR) of the repeats, since on a shared machine
single repeats are inflated by other processes; FLOPs count a multiply-add as two, as
``torch.utils.flop_counter.FlopCounterMode`` does; MiB and GiB are powers of two.
"""
import contextlib
import platform
import resource
import statistics
import time
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten


# -- time ------------------------------------------------------------------------------------
def synchronize(device):
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device='cpu'):
    """``(fn(), seconds)``, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def summarize(values):
    """Median, quartiles, IQR, min and max of repeated measurements.

    Args:
        values (Sequence[float]): at least one value.

    Returns:
        dict: ``median``, ``q1``, ``q3``, ``iqr``, ``min``, ``max``, ``n``. Quartiles are
        the ``statistics.quantiles`` inclusive ones (equal to the value for one repeat).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError('summarize needs at least one value.')
    if len(values) > 1:
        q1, _, q3 = statistics.quantiles(values, n=4, method='inclusive')
    else:
        q1 = q3 = values[0]
    return dict(median=statistics.median(values), q1=q1, q3=q3, iqr=q3 - q1,
                min=min(values), max=max(values), n=len(values))


# -- memory ----------------------------------------------------------------------------------
def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mib():
    """The process's resident-set high-water mark (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_device_peak(device):
    """Start a new CUDA peak-allocation window (nothing to do on the CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def device_peak_mib(device):
    """``torch.cuda.max_memory_allocated`` in MiB since the last reset; None on the CPU."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


class LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of live tensor storages while it is active (a dispatch mode).

    Every storage an op returns is counted once until it is freed (a weak reference), so
    the figure is what the tensors of a step need at its worst moment, whatever the device
    or allocator: comparable between two configs run in one process, and exact on fake
    tensors (shapes only). Storages that exist before (weights, optimizer states) count
    when given to the constructor.

    Args:
        *tracked: modules, optimizers and tensors whose storages exist already.
    """

    def __init__(self, *tracked):
        super().__init__()
        self._live = {}
        self.current = self.peak = 0
        for obj in tracked:
            for tensor in _tensors_of(obj):
                self._add(tensor)
        self.start = self.current

    def _add(self, tensor):
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse and other storage-less tensors
            return
        key = id(storage)
        if key in self._live:
            return
        nbytes = storage.nbytes()
        self._live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key):
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._add(leaf)
        return out


def _tensors_of(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, nn.Module):
        return list(obj.parameters()) + list(obj.buffers()) + [
            p.grad for p in obj.parameters() if p.grad is not None]
    if isinstance(obj, torch.optim.Optimizer):
        return [t for state in obj.state.values() for t in tree_leaves(state)
                if isinstance(t, torch.Tensor)]
    raise TypeError(f'cannot track {type(obj).__name__}; give modules, optimizers or tensors.')


def state_bytes(*tracked):
    """Bytes of the given modules' weights, buffers and gradients and optimizers' states."""
    seen, total = set(), 0
    for obj in tracked:
        for tensor in _tensors_of(obj):
            storage = tensor.untyped_storage()
            if id(storage) not in seen:
                seen.add(id(storage))
                total += storage.nbytes()
    return total


def tensor_memory_peak(step, *tracked):
    """Peak bytes of live tensors during ``step()`` (``LiveTensorPeak``).

    Args:
        step (callable): one training step.
        *tracked: the modules and optimizers of the step (their tensors count).

    Returns:
        dict: ``total`` (the peak), ``state`` (weights, buffers, gradients and optimizer
        states after the step: what stays between steps) and ``transient`` (``total -
        state``: activations and temporaries at the peak, when gradients are freed between
        steps, as mmengine's ``zero_grad`` does).
    """
    with LiveTensorPeak(*tracked) as tracker:
        step()
    total = tracker.peak
    state = state_bytes(*tracked)
    return dict(total=total, state=state, transient=max(0, total - state))


# -- FLOPs -----------------------------------------------------------------------------------
def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_backward_flop_count
    return sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode counts the CUDA attention kernels but not the CPU flash kernel that
# F.scaled_dot_product_attention runs on the CPU (MiT3D's attention): the same formulas.
EXTRA_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


def flop_counter():
    """A ``FlopCounterMode`` (no printout) that also counts CPU attention."""
    from torch.utils.flop_counter import FlopCounterMode
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


def module_flops(counter, model, names):
    """FLOPs the counter attributed to some direct children of ``model``.

    Args:
        counter: a ``FlopCounterMode`` after use.
        model (nn.Module): the module the counted call ran.
        names (Iterable[str]): attribute names of children (``backbone``, ``text_encoder``).

    Returns:
        dict[str, int]: FLOPs per name (0 for a child that did no counted work).
    """
    counts = counter.get_flop_counts()
    prefix = type(model).__name__
    return {name: int(sum(counts.get(f'{prefix}.{name}', {}).values())) for name in names}


# -- the machine's peaks ---------------------------------------------------------------------
def _best_rate(fn, flops, device, repeats, min_seconds=0.2):
    """Best FLOP/s of ``fn`` over ``repeats`` timings of enough calls to last ``min_seconds``."""
    fn()  # first call: allocation, kernel selection
    _, once = timed(fn, device)
    calls = max(1, int(min_seconds / max(once, 1e-6)))
    best = 0.0
    for _ in range(repeats):
        _, seconds = timed(lambda: [fn() for _ in range(calls)], device)
        best = max(best, flops * calls / seconds)
    return best


@torch.no_grad()
def gemm_peak(device='cpu', dtype=torch.float32, size=1024, repeats=5):
    """FLOP/s of a square matrix multiply, the best of ``repeats`` (a practical GEMM peak).

    Returns:
        dict: ``flops_per_s``, ``dtype``, ``shape`` (``m=n=k``).
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    rate = _best_rate(lambda: a @ b, 2 * size ** 3, device, repeats)
    return dict(flops_per_s=rate, dtype=str(dtype).replace('torch.', ''),
                shape=f'{size}x{size}x{size}')


@torch.no_grad()
def conv3d_peak(device='cpu', dtype=torch.float32, channels=32, grid=32, batch=2, kernel=3,
                repeats=3):
    """FLOP/s of a dense 3^3 Conv3d forward (``batch x channels x grid^3``, same size out), the
    best of ``repeats``: the Conv3d peak of this machine at a 3D-CNN-like size.

    Returns:
        dict: ``flops_per_s``, ``dtype``, ``shape``.
    """
    x = torch.randn(batch, channels, grid, grid, grid, device=device).to(dtype)
    w = torch.randn(channels, channels, kernel, kernel, kernel, device=device).to(dtype) * 0.05
    flops = 2 * batch * channels * grid ** 3 * channels * kernel ** 3
    rate = _best_rate(lambda: nn.functional.conv3d(x, w, padding=kernel // 2), flops, device,
                      repeats)
    return dict(flops_per_s=rate, dtype=str(dtype).replace('torch.', ''),
                shape=f'{batch}x{channels}x{grid}^3, {channels}->{channels}, {kernel}^3')


# -- text side -------------------------------------------------------------------------------
class TextEncoderProbe:
    """Counts what a model's text encoder does: calls, sentences asked for, and the forwards
    of the language model under it (zero once every sentence is in a frozen encoder's cache).

    Attributes:
        calls (int): forwards of the text encoder module (one per ``encode_text``).
        texts (int): sentences asked for.
        forwards (int): forwards of the wrapped language model (``encoder.model``): batches
            that missed the cache.
        encoded (int): sentences those forwards encoded.
        tokens (int): token positions they ran, padding included.
    """

    def __init__(self, model):
        from ctglip.registry import TEXT_ENCODERS
        classes = tuple(TEXT_ENCODERS.module_dict.values())
        self.encoders = [m for m in model.modules() if isinstance(m, classes)]
        self.reset()
        self._handles = []
        for encoder in self.encoders:
            self._handles.append(encoder.register_forward_hook(self._on_call))
            inner = getattr(encoder, 'model', None)
            if isinstance(inner, nn.Module):
                self._handles.append(
                    inner.register_forward_pre_hook(self._on_forward, with_kwargs=True))

    def reset(self):
        self.calls = self.texts = self.forwards = self.encoded = self.tokens = 0

    def snapshot(self):
        return dict(calls=self.calls, texts=self.texts, forwards=self.forwards,
                    encoded=self.encoded, tokens=self.tokens, cached=self.cached)

    @property
    def cached(self):
        """Sentences held in the encoders' caches."""
        return sum(getattr(e, 'cache_size', 0) for e in self.encoders)

    def _on_call(self, module, args, output):
        self.calls += 1
        self.texts += len(args[0]) if args else 0

    def _on_forward(self, module, args, kwargs):
        ids = kwargs.get('input_ids', args[0] if args else None)
        self.forwards += 1
        if ids is not None:
            self.encoded += ids.shape[0]
            self.tokens += ids.numel()

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


# -- fake tensors: counts at sizes this machine cannot run -----------------------------------
def fakeify(module, fake_mode):
    """Replace a module's parameters and buffers (in place) by fake tensors of ``fake_mode``:
    the module then runs on shapes alone, with no memory and no compute."""
    for m in module.modules():
        for name, param in list(m._parameters.items()):
            if param is not None:
                m._parameters[name] = nn.Parameter(fake_mode.from_tensor(param.detach()),
                                                   requires_grad=param.requires_grad)
        for name, buf in list(m._buffers.items()):
            if buf is not None:
                m._buffers[name] = fake_mode.from_tensor(buf)
    return module


def fake_backbone_step(backbone, input_shape, amp=True, lr=1e-4):
    """Count one training step of a backbone (forward, the mean of its map as the loss,
    backward, AdamW) at any input size, on fake tensors. The mean's gradient costs no memory,
    so the count is the backbone's own; a model's loss side (pooling, projections) comes on
    top.

    Args:
        backbone (nn.Module): built on the CPU (its weights are replaced by fake ones).
        input_shape (tuple[int]): ``B x C x D x H x W``.
        amp (bool): bf16 autocast (as ``--amp`` on the CPU; CUDA bf16 is the same count).

    Returns:
        dict: ``flops`` (forward + backward, recomputation included), ``memory`` (the
        ``tensor_memory_peak`` dict of the second step, when optimizer states exist),
        ``params``, ``out_shape``.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    params = sum(p.numel() for p in backbone.parameters())
    mode = FakeTensorMode()
    fakeify(backbone.train(), mode)
    autocast = (torch.autocast('cpu', dtype=torch.bfloat16) if amp
                else contextlib.nullcontext())
    with mode:
        optimizer = torch.optim.AdamW(backbone.parameters(), lr=lr)
        x = torch.empty(*input_shape)
        out_shape = []

        def step():
            with autocast:
                feats = backbone(x)
            out_shape[:] = list(feats.shape)
            feats.mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        with flop_counter() as counter:
            with autocast:
                feats = backbone(x)
            feats.mean().backward()
        flops = counter.get_total_flops()
        optimizer.step()  # optimizer states exist from here on, as in a run's later steps
        optimizer.zero_grad(set_to_none=True)
        del feats
        memory = tensor_memory_peak(step, backbone, optimizer, x)
    return dict(flops=int(flops), memory=memory, params=params, out_shape=out_shape)
