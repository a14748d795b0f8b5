"""ctglip's own transforms: label-swapping flip, organ-aware crop, packing."""
import numpy as np
import pytest
import torch

from ctglip.datasets.organs import organ_vocabulary, readable_name, swap_side
from ctglip.datasets.transforms import RandFlipLR, RandOrganCrop
from ctglip.datasets.transforms.processing import crop_or_pad, swap_laterality_words

VOCAB = organ_vocabulary()


def label_of(name):
    return VOCAB.index(name) + 1


def test_flip_swaps_left_and_right_organs_and_texts():
    label = torch.zeros(1, 8, 4, 4, dtype=torch.long)
    label[0, :2] = label_of('kidney_left')
    label[0, 6:] = label_of('liver')
    results = dict(image=label.float(), organ_label=label.clone(),
                   findings={'kidney_left': ['A stone in the left kidney.']},
                   abnormalities={'kidney_left': ['kidney stone']},
                   report='A stone in the left kidney. Right kidney normal.')
    out = RandFlipLR(prob=1.0)(results)
    flipped = out['organ_label'][0]
    assert (flipped[6:] == label_of('kidney_right')).all()  # moved and renamed
    assert (flipped[:2] == label_of('liver')).all()  # unpaired organ keeps its name
    assert out['findings'] == {'kidney_right': ['A stone in the right kidney.']}
    assert out['abnormalities'] == {'kidney_right': ['kidney stone']}
    assert out['report'] == 'A stone in the right kidney. Left kidney normal.'


def test_swap_side_covers_all_paired_organs():
    paired = [o for o in VOCAB if 'left' in o or 'right' in o]
    assert all(swap_side(swap_side(o, VOCAB), VOCAB) == o for o in paired)
    assert swap_side('lung_middle_lobe_right', VOCAB) == 'lung_middle_lobe_right'
    assert swap_side('kidney_left', VOCAB) == 'kidney_right'
    assert sum(swap_side(o, VOCAB) != o for o in VOCAB) == len(paired) - 1
    assert swap_side('rib_left_3') == 'rib_right_3'
    assert readable_name('lung_upper_lobe_left') == 'upper lobe of the left lung'
    assert readable_name('inferior_vena_cava') == 'inferior vena cava'


def test_laterality_words():
    assert swap_laterality_words('Left lobe, right lobe') == 'Right lobe, left lobe'
    assert swap_laterality_words('bright') == 'bright'


def test_organ_crop_keeps_organs_and_pads():
    np.random.seed(0)
    label = torch.zeros(1, 40, 40, 10, dtype=torch.long)
    label[0, 30:34, 30:34, 4:6] = 5
    out = RandOrganCrop((16, 16, 16))(dict(image=label.float(), organ_label=label))
    assert out['organ_label'].shape == (1, 16, 16, 16)
    assert (out['organ_label'] == 5).sum() == 32  # the whole organ is inside the crop


def test_crop_or_pad():
    x = torch.arange(4 * 4 * 4).view(1, 4, 4, 4)
    out = crop_or_pad(x, np.array([2, 0, 0]), np.array([4, 4, 4]))
    assert out.shape == (1, 4, 4, 4) and (out[0, 2:] == 0).all()
    assert torch.equal(out[0, :2], x[0, 2:])


def test_multi_window_gives_one_clipped_channel_per_window():
    from ctglip.datasets.transforms import MultiWindowd
    hu = torch.tensor([-1200.0, -1000.0, -160.0, 40.0, 240.0, 1000.0, 1500.0]).view(1, 7, 1, 1)
    out = MultiWindowd(windows=[(-1000, 1000), (-160, 240)])({'image': hu})['image']
    assert out.shape == (2, 7, 1, 1)
    torch.testing.assert_close(out[0].flatten(), torch.tensor([0, 0, .42, .52, .62, 1, 1]))
    torch.testing.assert_close(out[1].flatten(), torch.tensor([0, 0, 0, .5, 1, 1, 1]))
    # numpy input gives the same numbers
    out_np = MultiWindowd(windows=[(-160, 240)])({'image': hu.numpy()})['image']
    np.testing.assert_allclose(out_np, out[1:].numpy(), rtol=1e-6)


def test_multi_window_refuses_bad_windows_and_multichannel_input():
    from ctglip.datasets.transforms import MultiWindowd
    with pytest.raises(ValueError, match='high > low'):
        MultiWindowd(windows=[(240, -160)])
    with pytest.raises(ValueError, match='one channel in HU'):
        MultiWindowd()({'image': torch.zeros(2, 4, 4, 4)})


def test_crops_remove_organs_cut_below_min_visible():
    from ctglip.datasets.transforms import CenterPadCrop
    from ctglip.datasets.transforms.processing import drop_cut_organs
    label = torch.zeros(1, 20, 8, 8, dtype=torch.long)
    label[0, 0:4] = 1   # the organs' box is x 0..11: the 8-voxel crop keeps x 1..8
    label[0, 5:8] = 2
    label[0, 8:12] = 3
    out = CenterPadCrop((8, 8, 8), min_visible=0.5)(dict(image=label.float(),
                                                         organ_label=label.clone()))
    assert out['organ_label'][0, :, 0, 0].tolist() == [1, 1, 1, 0, 2, 2, 2, 0]  # 3 kept 1/4
    assert out['image'][0, -1, 0, 0] == 3  # only the labels change
    plain = CenterPadCrop((8, 8, 8))(dict(image=label.float(), organ_label=label.clone()))
    assert plain['organ_label'][0, -1, 0, 0] == 3  # min_visible=0 keeps every organ
    cropped = label[:, 1:9]
    assert drop_cut_organs(label, cropped, 0.8).unique().tolist() == [0, 2]  # 1 kept 3/4
    with pytest.raises(ValueError, match='min_visible'):
        RandOrganCrop((8, 8, 8), min_visible=1.5)


def test_organ_box_crop_keeps_every_organ_whole():
    from ctglip.datasets.transforms import OrganBoxCrop
    label = torch.zeros(1, 30, 20, 10, dtype=torch.long)
    label[0, 5:9, 4:6, 2:4] = 1
    label[0, 20:25, 10:15, 5:7] = 2
    out = OrganBoxCrop(margin=1)(dict(image=label.float(), organ_label=label.clone()))
    assert tuple(out['organ_label'].shape[1:]) == (22, 13, 7)  # box 5..24 x 4..14 x 2..6, +1
    assert (out['organ_label'] == 1).sum() == (label == 1).sum()
    assert (out['organ_label'] == 2).sum() == (label == 2).sum()
    capped = OrganBoxCrop(margin=1, max_size=(16, 16, 16), min_visible=0.5)(
        dict(image=label.float(), organ_label=label.clone()))
    assert tuple(capped['organ_label'].shape[1:]) == (16, 13, 7)
    # the box centre is x = 15: x 7..22 keeps half of organ 1 and 3 of 5 slices of organ 2
    assert set(capped['organ_label'].unique().tolist()) == {0, 1, 2}


def test_pack_ct_inputs_organ_cells_stride():
    """PackCTInputs(organ_cells_stride=s) carries the label map's overlap with the stride-s
    grid (the pooler's input, computed in the loader's workers); a size that s does not
    divide carries none; a stride that is not 1-3 positive ints is refused at build time."""
    from ctglip.datasets.transforms import PackCTInputs
    from ctglip.models.poolers.base import organ_cells
    label = torch.zeros(1, 8, 8, 6, dtype=torch.long)
    label[0, :4, :4, :2] = 3
    label[0, 4:, 2:6, 2:] = 1
    results = dict(image=torch.zeros(1, 8, 8, 6), organ_label=label)
    sample = PackCTInputs(organ_cells_stride=2)(dict(results))['data_samples']
    cells, batch = sample.organ_cells, organ_cells(label, (4, 4, 3), 3)
    assert cells['grid'] == (4, 4, 3)
    assert torch.equal(cells['organ'].long(), batch.segment)
    assert torch.equal(cells['cell'].long(), batch.cell)
    assert torch.equal(cells['voxels'].float(), batch.voxels)
    assert 'organ_cells' not in PackCTInputs(organ_cells_stride=4)(dict(results))['data_samples']
    assert 'organ_cells' not in PackCTInputs()(dict(results))['data_samples']
    for bad in (0, 'two', (2, 2)):
        with pytest.raises(ValueError, match='organ_cells_stride'):
            PackCTInputs(organ_cells_stride=bad)
