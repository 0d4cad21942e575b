"""Adapters: the trained tensors of a run and their sharing, duck-typed on the model (below it).

- :mod:`.format`: the adapter file (``adapter.safetensors``: the trained tensors + metadata), portable metadata;
- :mod:`.card`: what a shared adapter says about itself (``config.json``, the model card);
- :mod:`.hub`: hub-style folders and the Hugging Face Hub (huggingface_hub's ``ModelHubMixin``).

Rebuilding a model from an adapter is :mod:`lorevit.factory` (``load_adapter``, ``from_pretrained``).
"""
