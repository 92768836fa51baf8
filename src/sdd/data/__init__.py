"""The data layer: matrix access and checks, the AnnData registry, scaling, counts, loaders.

Everything between a user's AnnData (or array) and the tensors the engine trains on.
No :class:`torch.nn.Module` lives here; models, ``tl``, ``pl`` and the CLI import these
public names.
"""

__all__: list[str] = []
