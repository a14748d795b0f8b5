"""ctglip: 3D grounded language-image pretraining (CT-GLIP) on CT scans and radiology reports.

``import ctglip`` is all a user needs: the registries in ``ctglip.registry`` import the
modules that fill them on first use, so this stays fast (no torch import here).
"""
from ctglip.utils.compat import apply_setuptools_fix
from ctglip.version import __version__

apply_setuptools_fix()

from ctglip import registry  # noqa: E402

__all__ = ['__version__', 'registry']
