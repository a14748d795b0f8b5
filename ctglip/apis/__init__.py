"""Use a trained model on your own scans: ``CTGLIPInferencer`` (organ recognition, abnormality
read-outs, free-text queries, organ and text embeddings, pictures and overlays), model files
(``load_model``, ``export_model``: safetensors plus a JSON sidecar) and the schema of what a
checkpoint carries for inference (``inference_meta``). Command lines: ``tools/infer.py``,
``tools/export.py``; guide: ``docs/inference.md``.
"""
from .inferencer import CTGLIPInferencer
from .inputs import Case, resolve_cases
from .model_files import export_model, load_model

__all__ = ['CTGLIPInferencer', 'Case', 'resolve_cases', 'export_model', 'load_model']
