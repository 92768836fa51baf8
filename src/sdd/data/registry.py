"""What a model uses of an AnnData: the setup registry, condition categories and codes.

:class:`Setup` is the one registry of the package (in the spirit of scvi-tools'
``AnnDataManager``, smaller): what ``setup_anndata`` registered for one model class
(layer, condition columns and their categories, model-specific entries), stored as plain
values (h5ad-safe) under one key, ``adata.uns["sdd_setup"]``, one entry per model class,
and saved with the model. :func:`plain` turns what an h5ad round trip gives back (arrays,
NumPy scalars) into lists and Python scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["Setup", "plain", "obs_categories", "obs_codes", "check_var_names", "label_codes"]


def plain(value: Any) -> Any:
    """JSON-friendly copy of setup arguments (an h5ad round trip turns lists into arrays)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def obs_categories(adata: AnnData, key: str) -> list[str]:
    """Sorted (or categorical-order) labels of ``adata.obs[key]`` as strings."""
    if key not in adata.obs:
        raise ValueError(
            f"Column {key!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    if column.isna().any():
        raise ValueError(f"adata.obs[{key!r}] has missing values.")
    _check_not_continuous(column, key)
    cats = (
        column.cat.categories
        if isinstance(column.dtype, pd.CategoricalDtype)
        else np.unique(column)
    )
    return [str(c) for c in cats]


def _check_not_continuous(column: pd.Series, key: str) -> None:
    """Refuse a float column with fractional values: it would make one category per value.

    Whole-number floats (``1.0``, ``2.0``: integers read through a float column) and
    categorical, string, integer and boolean columns are accepted.
    """
    if isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_float_dtype(
        column.dtype
    ):
        return
    values = column.to_numpy(dtype=np.float64)
    fractional = values[np.isfinite(values) & (values != np.round(values))]
    if fractional.size or not np.isfinite(values).all():
        example = fractional[0] if fractional.size else values[~np.isfinite(values)][0]
        raise ValueError(
            f"adata.obs[{key!r}] is a float column (e.g. {float(example):g}) with "
            f"{column.nunique()} distinct values for {len(column)} rows: as a condition "
            "every distinct value would become its own category. Conditions must be "
            f"labels: convert the column, e.g. adata.obs[{key!r}] = "
            f"adata.obs[{key!r}].astype(str).astype('category') (or bin it with pd.cut), "
            "or choose another column."
        )


def _non_finite(value: Any) -> bool:
    return isinstance(value, float | np.floating) and not np.isfinite(value)


def obs_codes(adata: AnnData, categories: Mapping[str, list[str]]) -> np.ndarray | None:
    """Codes ``(n_obs, n_covariates)`` of ``adata.obs``'s labels; ``None`` without conditions."""
    if not categories:
        return None
    columns = []
    for key, cats in categories.items():
        if key not in adata.obs:
            raise ValueError(
                f"adata.obs lacks the condition column {key!r} the model conditions on "
                f"(columns: {list(adata.obs.columns)})."
            )
        column = adata.obs[key]
        if column.isna().any():
            raise ValueError(f"adata.obs[{key!r}] has missing values.")
        labels = column.astype(str).to_numpy()
        unknown = sorted(set(labels) - set(cats))
        if unknown:
            raise ValueError(
                f"adata.obs[{key!r}] has labels unknown to the model: {unknown[:5]} "
                f"(known: {cats})."
            )
        lookup = {c: i for i, c in enumerate(cats)}
        columns.append([lookup[v] for v in labels])
    return np.asarray(columns, dtype=np.int64).T


def check_var_names(adata: AnnData) -> list[str]:
    """Gene names as strings; raise if they are not unique (they key saved models)."""
    names = [str(v) for v in adata.var_names]
    if len(set(names)) != len(names):
        raise ValueError(
            "adata.var_names are not unique; call adata.var_names_make_unique() first."
        )
    return names


def label_codes(
    labels: Mapping[str, Any] | Any,
    categories: Mapping[str, Sequence[Any]],
    n: int,
    *,
    default_key: str | None = None,
    unit: str = "rows",
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Codes ``(n, n_covariates)`` of requested labels, the null token where none was asked.

    The one place where user labels become the integer codes a network embeds; every
    model and the CLI go through it.

    Parameters
    ----------
    labels
        ``None`` (unconditional), a value or per-row array for ``default_key``, or a dict
        ``{key: value or per-row array}``; covariates left out get the null token
        (code ``len(categories[key])``).
    categories
        Known labels per condition key, in code order. Labels are matched by their
        string form, so ``3`` and ``"3"`` name the same category.
    n
        Number of rows.
    default_key
        The key a bare value or array refers to (default: the first key).
    unit
        What a row is, for error messages (``"cells"``, ``"images"``).

    Returns
    -------
    The codes (``None`` when ``labels`` is ``None``) and, per requested key, the labels
    as the category objects (same length ``n``).

    Examples
    --------
    >>> codes, values = label_codes("B", {"cell_type": ["A", "B"]}, 2)
    >>> codes.tolist(), values["cell_type"].tolist()
    ([[1], [1]], ['B', 'B'])
    """
    if labels is None:
        return None, {}
    if not categories:
        raise ValueError(
            "labels were given but the model was trained without labels (set up without "
            "labels_key or categorical_covariate_keys)."
        )
    if not isinstance(labels, Mapping):
        labels = {default_key or next(iter(categories)): labels}
    unknown_keys = sorted(str(k) for k in set(labels) - set(categories))
    if unknown_keys:
        raise ValueError(f"Unknown condition key(s) {unknown_keys}; known: {list(categories)}.")
    codes = np.tile(np.asarray([len(c) for c in categories.values()], dtype=np.int64), (n, 1))
    values_out: dict[str, np.ndarray] = {}
    for k, (key, cats) in enumerate(categories.items()):
        if key not in labels:
            continue
        requested = labels[key]
        if hasattr(requested, "detach"):  # a torch tensor
            requested = requested.detach().cpu().numpy()
        values = np.asarray(requested, dtype=object)
        values = np.broadcast_to(values, (n,)) if values.ndim == 0 else values
        if values.shape != (n,):
            raise ValueError(f"labels[{key!r}] has {values.size} entries for {n} {unit}.")
        lookup = {str(c): i for i, c in enumerate(cats)}
        keys = [str(v.item() if isinstance(v, np.generic) else v) for v in values]
        bad = sorted({v for v, raw in zip(keys, values, strict=True)
                      if v not in lookup or _non_finite(raw)})  # fmt: skip
        if bad:
            raise ValueError(
                f"Unknown label(s) {bad[:5]} for {key!r}; known labels: {[str(c) for c in cats]}."
            )
        codes[:, k] = [lookup[v] for v in keys]
        values_out[key] = np.asarray(list(cats), dtype=object)[codes[:, k]]
    return codes, values_out


#: Entries every registered setup has.
SETUP_FIELDS = ("layer", "labels_key", "categories")


@dataclass(frozen=True)
class Setup:
    """What one model class registered of an AnnData (``setup_anndata``).

    Parameters
    ----------
    model
        The model class's name (``"SDD"``, ``"SDDBlackout"``): one AnnData can be set up
        for several model classes at once.
    args
        Plain values: ``layer``, ``labels_key``, ``categorical_covariate_keys``,
        ``categories`` (the categories of each condition column) and model-specific
        entries (``counts_layer``, ``image_shape``, ...).

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> adata = ad.AnnData(np.ones((2, 3)))
    >>> adata.obs["cell_type"] = ["B", "T"]
    >>> setup = Setup.register(adata, "SDD", {"layer": None, "labels_key": "cell_type",
    ...                                       "categories": {"cell_type": ["B", "T"]}})
    >>> Setup.of(adata, "SDD") == setup, setup.codes(adata).ravel().tolist()
    (True, [0, 1])
    """

    KEY: ClassVar[str] = "sdd_setup"
    #: where files written before the registry kept each model class's setup
    LEGACY_KEYS: ClassVar[dict[str, str]] = {"SDDBlackout": "sdd_blackout_setup"}

    model: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [k for k in SETUP_FIELDS if k not in self.args]
        if missing:
            raise ValueError(f"The setup of {self.model} lacks {missing}.")
        object.__setattr__(self, "args", plain(dict(self.args)))

    # ------------------------------------------------------------------ registry
    @classmethod
    def register(cls, adata: AnnData, model: str, args: Mapping[str, Any]) -> Setup:
        """Store ``args`` as ``model``'s entry of ``adata.uns["sdd_setup"]`` (other model
        classes' entries are kept) and return the setup."""
        setup = cls(model, args)
        stored = adata.uns.get(cls.KEY)
        entries = {"SDD": dict(stored)} if _is_legacy_entry(stored) else dict(stored or {})
        entries.pop(model, None)
        adata.uns[cls.KEY] = {**entries, model: dict(setup.args)}
        adata.uns.pop(cls.LEGACY_KEYS.get(model, ""), None)
        return setup

    @classmethod
    def of(cls, adata: AnnData, model: str) -> Setup | None:
        """``model``'s registered setup on ``adata`` (``None``: not registered); reads the
        layouts of older files too (one flat ``sdd_setup`` entry, ``sdd_blackout_setup``)."""
        stored = adata.uns.get(cls.KEY)
        if _is_legacy_entry(stored):
            if model == "SDD":
                return cls(model, stored)
        elif stored is not None and model in stored:
            return cls(model, stored[model])
        legacy = adata.uns.get(cls.LEGACY_KEYS.get(model, ""))
        return None if legacy is None else cls(model, legacy)

    def transfer(self, adata: AnnData, check_data: Callable[..., Any]) -> Any:
        """Validate ``adata`` against this setup and register it there; return its matrix."""
        matrix = self.validate(adata, check_data)
        type(self).register(adata, self.model, self.args)
        return matrix

    # ------------------------------------------------------------------ reading
    @property
    def layer(self) -> str | None:
        return self.args["layer"]

    @property
    def categories(self) -> dict[str, list[str]]:
        return dict(self.args["categories"])

    def validate(self, adata: AnnData, check_data: Callable[..., Any]) -> Any:
        """The registered matrix of ``adata``, checked with ``check_data(matrix, where=)``;
        raises on missing condition columns or labels outside the registered categories."""
        from .validate import get_matrix, matrix_name

        matrix = get_matrix(adata, self.layer)
        check_data(matrix, where=matrix_name(self.layer))
        self.codes(adata)
        return matrix

    def codes(self, adata: AnnData) -> np.ndarray | None:
        """Integer codes of the condition columns (``None`` without conditions)."""
        return obs_codes(adata, self.categories)


def _is_legacy_entry(stored: Any) -> bool:
    """Whether ``uns["sdd_setup"]`` holds one flat setup (files written before the registry)."""
    return isinstance(stored, Mapping) and "layer" in stored
