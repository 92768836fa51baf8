"""Everything the package writes goes through here: atomic files and model directories."""

from .atomic import atomic_path, check_output_path, fsync_dir, write_csv, write_h5ad
from .checkpoint import (
    check_state_shapes,
    history_from_state,
    history_to_state,
    load_dir,
    save_dir,
    to_cpu,
)

__all__ = [
    "atomic_path",
    "check_output_path",
    "check_state_shapes",
    "fsync_dir",
    "history_from_state",
    "history_to_state",
    "load_dir",
    "save_dir",
    "to_cpu",
    "write_csv",
    "write_h5ad",
]
