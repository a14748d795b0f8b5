# ctglip's tiny CT-GLIP run with the third-party backbone swapped in.
_base_ = ['../../../configs/tests/tiny_ctglip.py']
custom_imports = dict(imports=['projects.example_project.example_backbone'],
                      allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='ExampleConvEncoder3D', channels=16))
