"""The contrastive losses keep every target tensor on the embeddings' device, checked without a
GPU: ``ContrastiveTargets.to`` on 'meta', and a forward pass under a simulated second device."""
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from ctglip.models.losses import ContrastiveTargets, DiagnosisContrastiveLoss

FAKE = torch.device('cuda', 0)


class SimulatedDevice(TorchFunctionMode):
    """Runs on the CPU but treats some tensors as living on ``FAKE`` (a GPU).

    ``x.device`` reports ``FAKE`` for them, ``x.to(FAKE)`` makes one, results of an op on them
    are on it too, and an op that mixes them with CPU tensors raises as CUDA does, so that no
    CPU tensor can meet one unnoticed.
    """

    def __init__(self, *on_device):
        super().__init__()
        self.ids = set()
        self.keep = []  # the marked tensors stay alive, so that their ids stay theirs
        for t in on_device:
            self.mark(t)

    def mark(self, t):
        if isinstance(t, torch.Tensor):
            self.ids.add(id(t))
            self.keep.append(t)
        return t

    def on_fake(self, t):
        return id(t) in self.ids

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, '__self__', None) is torch.Tensor.device:  # the x.device getter
            return FAKE if self.on_fake(args[0]) else torch.device('cpu')
        if func is torch.Tensor.to:
            targets = [a for a in (*args[1:], kwargs.get('device')) if a is not None]
            devices = [torch.device(a) for a in targets if isinstance(a, (str, torch.device))]
            if devices:
                if devices[0] == FAKE:
                    return self.mark(args[0].clone())
                if devices[0].type == 'cpu' and self.on_fake(args[0]):
                    return args[0].clone()
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        places = {self.on_fake(t) for t in tensors}
        if len(places) > 1:
            raise RuntimeError(f'{func}: expected all tensors to be on the same device, found '
                               f'{FAKE} and cpu')
        out = func(*args, **kwargs)
        if places == {True}:
            tree_map(self.mark, out)
        return out


def test_simulated_device_catches_a_cpu_tensor_meeting_a_device_one():
    x = torch.ones(3)
    with SimulatedDevice(x) as mode:
        assert x.device == FAKE and x.to('cpu').device.type == 'cpu'
        assert mode.on_fake(x * 2)
        try:
            x + torch.ones(3)
        except RuntimeError as e:
            assert 'same device' in str(e)
        else:
            raise AssertionError('a CPU tensor met a device tensor unnoticed')


def test_targets_to_moves_every_tensor():
    t = ContrastiveTargets(['a', 'b'], torch.eye(2, dtype=torch.bool), rows=torch.tensor([0, 1]),
                           ignore=torch.zeros(2, 2, dtype=torch.bool),
                           row_weights=torch.tensor([0.5, 0.5]),
                           row_groups=dict(abnormal=torch.tensor([True, False])))
    m = t.to('meta')
    assert m.texts == ['a', 'b']
    assert all(x.device.type == 'meta'
               for x in (m.pos, m.rows, m.ignore, m.row_weights, m.row_groups['abnormal']))
    assert t.pos.device.type == 'cpu'  # a copy: the original stays where it was
    bare = ContrastiveTargets(['a'], torch.ones(1, 1, dtype=torch.bool)).to('meta')
    assert bare.pos.device.type == 'meta' and bare.rows is None and bare.row_groups is None


def test_forward_keeps_every_tensor_on_the_embeddings_device(tmp_path):
    """With rows, ignore, row weights and an abnormal row group, all built on the CPU."""
    import json
    d = tmp_path / 'dict.json'
    d.write_text(json.dumps({'liver': {'liver cyst': ['Hepatic cyst.'],
                                       'liver mass': ['Hepatic mass.']}}))
    loss = DiagnosisContrastiveLoss(dictionary=str(d), dictionary_own='ignore',
                                    organs='grouped')
    studies = [dict(report='r0', findings={'liver': ['A 9 mm cyst in the liver.']},
                    status={'liver': 'abnormal', 'kidney_left': 'normal'},
                    abnormalities={'liver': ['liver cyst']}),
               dict(report='r1', findings={}, status={'liver': 'normal'}, abnormalities={})]
    t = loss.build_targets([(0, 'liver'), (1, 'liver'), (0, 'kidney_left'), (0, 'aorta')],
                           studies)
    assert t.ignore is not None and t.row_weights is not None and t.rows is not None
    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(len(t.texts), 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    expected = loss(image, text, t, scale)
    with SimulatedDevice(image, text, scale) as mode:
        out = loss(image, text, t, scale)
    assert set(out) == {'loss_diagnosis', 'acc_diagnosis', 'acc_diagnosis_abnormal'}
    assert all(mode.on_fake(v) for v in out.values())
    assert all(torch.equal(out[k], expected[k]) for k in out)
