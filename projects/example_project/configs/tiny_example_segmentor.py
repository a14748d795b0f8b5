# ctglip's tiny tumor fine-tuning run with the third-party backbone and its decoder swapped in.
_base_ = ['../../../configs/tests/tiny_finetune_scratch.py']
custom_imports = dict(imports=['projects.example_project.example_backbone',
                               'projects.example_project.example_decoder'],
                      allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='ExampleConvEncoder3D', channels=16),
             decoder=dict(_delete_=True, type='ExampleLinearDecoder3D'))
