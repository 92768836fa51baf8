"""Everything the package writes goes through here: atomic files and model directories."""

from .atomic import atomic_path, check_output_path, fsync_dir, write_csv, write_h5ad
from .checkpoint import load_dir, save_dir

__all__ = [
    "atomic_path",
    "check_output_path",
    "fsync_dir",
    "load_dir",
    "save_dir",
    "write_csv",
    "write_h5ad",
]
