"""Saving and loading model directories: ``model.pt`` + ``config.json``, atomically.

``model.pt`` holds only tensors and plain Python containers, so it loads with
``torch.load(weights_only=True)``; ``config.json`` holds the metadata needed to rebuild
the model (package version, class, init and setup arguments, genes, label categories).
The directory is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
FORMAT = "sdd-model"
FORMAT_VERSION = 1


def save_dir(
    path: str | os.PathLike, state: dict[str, Any], config: dict[str, Any], *, overwrite: bool
) -> Path:
    """Write ``state`` (torch) and ``config`` (JSON) into ``path`` atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory.")
    if path.exists() and any(path.iterdir()) and not _is_model_dir(path):
        raise ValueError(
            f"{path} is a directory that does not hold an sdd model; refusing to replace it "
            "even with overwrite=True. Choose a new path."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **config}
    text = json.dumps(config, indent=2)  # fail before touching the disk if not serialisable
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a normal mode
        torch.save(state, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(text)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_model_dir(path: Path) -> bool:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def load_dir(path: str | os.PathLike, *, model_class: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a directory written by :func:`save_dir`; clear errors for foreign or corrupt ones."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"No saved model directory at {path}.")
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise ValueError(
            f"{path} is not an sdd model directory (expected {CONFIG_FILE} and {WEIGHTS_FILE})."
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"Corrupt {config_file}: {err}") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by sdd (config.json has no sdd format tag).")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"Corrupt {config_file}: format_version {version!r} is not an integer.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses format version {config['format_version']}; this sdd reads up to "
            f"{FORMAT_VERSION}. Upgrade sdd."
        )
    if config.get("model_class") != model_class:
        raise ValueError(
            f"{path} holds a {config.get('model_class')!r} model, not {model_class!r}."
        )
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ValueError(f"Corrupt or unreadable weights file {weights_file}: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"Corrupt weights file {weights_file}: expected a dict.")
    return state, config
