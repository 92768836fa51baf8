"""The data layer: matrix access and checks, the AnnData registry, scaling, counts, loaders.

Everything between a user's AnnData (or array) and the tensors the engine trains on.
No :class:`torch.nn.Module` lives here; models, ``tl``, ``pl`` and the CLI import these
public names.
"""

from .counts import (
    dense_rows,
    infer_target_sum,
    invert_log1p,
    largest_remainder,
    library_sizes,
    size_factors_from_counts,
)
from .images import TRANSFORMS, ImageScaler, check_images, check_labels
from .loader import STORAGES, MinibatchSampler, RowBatches, is_in_memory, rows_dense
from .registry import check_var_names, label_codes, obs_categories, obs_codes, plain
from .scaling import ZERO_FILLS, Scaler, gene_max, gene_stats
from .validate import (
    check_int,
    check_matrix,
    check_seed,
    check_unit_interval,
    get_matrix,
    looks_like_counts,
    matrix_name,
    warn_if_raw_counts,
)

__all__ = [
    "ImageScaler",
    "RowBatches",
    "TRANSFORMS",
    "check_images",
    "check_labels",
    "MinibatchSampler",
    "STORAGES",
    "Scaler",
    "check_int",
    "check_matrix",
    "check_seed",
    "check_unit_interval",
    "check_var_names",
    "dense_rows",
    "gene_max",
    "gene_stats",
    "ZERO_FILLS",
    "get_matrix",
    "infer_target_sum",
    "invert_log1p",
    "is_in_memory",
    "label_codes",
    "largest_remainder",
    "looks_like_counts",
    "library_sizes",
    "matrix_name",
    "obs_categories",
    "obs_codes",
    "plain",
    "rows_dense",
    "size_factors_from_counts",
    "warn_if_raw_counts",
]
