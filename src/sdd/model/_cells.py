"""`AnnDataModel`: what the cell models (:class:`~sdd.SDD`, :class:`~sdd.SDDBlackout`) share.

Registration of an AnnData (``setup_anndata`` results in ``adata.uns``), re-checks of data
that changed after setup, attaching new training data to a loaded model, and generated
cells as an AnnData that fits scanpy: unique ``obs_names`` per run, a categorical
``obs["source"]``, the training ``var`` columns and ``uns["log1p"]``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..data import check_var_names, get_matrix, matrix_name, obs_codes, plain
from ._base import DiffusionModel

logger = logging.getLogger("sdd")

SOURCE_CATEGORIES = ["real", "generated"]


def plain_var(var: pd.DataFrame) -> dict[str, list]:
    """The ``var`` columns worth carrying into generated data, as JSON-friendly lists."""
    out = {}
    for name, column in var.items():
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[str(name)] = [plain(v) for v in column.to_numpy()]
        elif isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            out[str(name)] = column.astype(str).tolist()
    return out


def mark_source(adata: AnnData, source: str = "real") -> AnnData:
    """Set ``adata.obs["source"]`` (categorical ``real``/``generated``) in place and return it.

    Generated AnnData carry ``obs["source"] == "generated"``; marking the real cells lets
    ``anndata.concat([real, generated])`` colour by source in scanpy.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> mark_source(ad.AnnData(np.ones((2, 2)))).obs["source"].tolist()
    ['real', 'real']
    """
    if source not in SOURCE_CATEGORIES:
        raise ValueError(f"source must be one of {SOURCE_CATEGORIES}, got {source!r}.")
    adata.obs["source"] = pd.Categorical([source] * adata.n_obs, categories=SOURCE_CATEGORIES)
    return adata


class AnnDataModel(DiffusionModel):
    """A model trained on the rows of an AnnData (see :class:`DiffusionModel`)."""

    _setup_key = ""
    _data_params = ("adata",)
    _unit = "cells"
    _arrays_hint = "sdd.SDDImage"

    def _check_data(self, matrix: Any, *, where: str) -> None:
        raise NotImplementedError

    def _use_anndata(self, adata: AnnData, setup: Callable[[AnnData], None]) -> None:
        """Set ``setup_args_``, ``_matrix``, ``var_names_`` and ``var_`` from ``adata``.

        Runs ``setup(adata)`` if ``adata`` is not registered yet; otherwise checks the data
        and the registered label columns again, since the AnnData may have changed after
        ``setup_anndata`` checked it.
        """
        if not isinstance(adata, AnnData):
            raise TypeError(
                f"Expected an AnnData object, got {type(adata).__name__}"
                + (f"; for arrays use {self._arrays_hint}." if isinstance(adata, np.ndarray) else ".")
            )
        registered = self._setup_key in adata.uns
        if not registered:
            setup(adata)
        self.setup_args_ = plain(adata.uns[self._setup_key])
        layer = self.setup_args_["layer"]
        self._matrix = get_matrix(adata, layer)
        if registered:
            self._check_data(self._matrix, where=matrix_name(layer))
            obs_codes(adata, self.categories_)
        self.var_names_ = check_var_names(adata)
        self.var_ = plain_var(adata.var)
        self.log1p_ = plain(dict(adata.uns["log1p"])) if "log1p" in adata.uns else None
        self.adata = adata

    def _training_data(self) -> tuple[Any, np.ndarray | None]:
        if getattr(self, "_matrix", None) is None:
            raise ValueError(
                f"This model has no training data; load it with "
                f"{type(self).__name__}.load(path, adata) to train it further."
            )
        return self._matrix, obs_codes(self.adata, self.categories_)

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return len(self.var_names_)

    def view_anndata_setup(self) -> None:
        """Log what :meth:`setup_anndata` registered (``sdd`` logger, level INFO)."""
        s = self.setup_args_
        lines = [f"layer: {s['layer'] or 'X'}", f"genes: {self.n_genes}"]
        if s.get("image_shape"):
            lines.append(f"image shape: {tuple(s['image_shape'])}")
        lines += [f"condition {k!r}: {len(c)} categories" for k, c in self.categories_.items()]
        if s.get("counts_layer"):
            lines.append(f"library sizes: from counts layer {s['counts_layer']!r}")
        elif s.get("library_size_key"):
            lines.append(
                f"library sizes: adata.obs[{s['library_size_key']!r}], "
                f"target_sum {s['target_sum']:.6g}"
            )
        print("\n".join(lines))

    # ------------------------------------------------------------------ checkpoints
    def _data_config(self) -> dict[str, Any]:
        return {
            "setup_args": self.setup_args_,
            "var_names": self.var_names_,
            "var": self.var_,
            "log1p": self.log1p_,
        }

    def _restore_data(self, state: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        self.setup_args_ = plain(dict(config["setup_args"]))
        self.var_names_ = [str(v) for v in config["var_names"]]
        if len(set(self.var_names_)) != len(self.var_names_):
            raise ValueError("var_names are not unique.")
        missing = [k for k in ("layer", "labels_key", "categories") if k not in self.setup_args_]
        if missing:
            raise ValueError(f"setup_args lacks {missing}.")
        self.var_ = dict(config.get("var") or {})
        for name, values in self.var_.items():
            if len(values) != self.n_genes:
                raise ValueError(f"var column {name!r} has {len(values)} values for {self.n_genes} genes.")
        self.log1p_ = config.get("log1p")
        self.adata, self._matrix = None, None

    def _check_per_gene(self, **vectors: Any) -> None:
        for name, values in vectors.items():
            if tuple(np.shape(values)) != (self.n_genes,):
                raise ValueError(
                    f"{name} has shape {tuple(np.shape(values))}, expected ({self.n_genes},) "
                    "(one value per gene)."
                )

    def _attach(self, adata: AnnData) -> None:
        if not isinstance(adata, AnnData):
            raise TypeError(f"adata must be an AnnData object, got {type(adata).__name__}.")
        genes = [str(v) for v in adata.var_names]
        if genes != self.var_names_:
            missing = len(set(self.var_names_) - set(genes))
            extra = len(set(genes) - set(self.var_names_))
            raise ValueError(
                f"Gene mismatch: the model was trained on {self.n_genes} genes, adata has "
                f"{len(genes)} ({missing} missing, {extra} unexpected"
                f"{', same genes in a different order' if not missing and not extra else ''})."
            )
        matrix = get_matrix(adata, self.setup_args_["layer"])
        self._check_data(matrix, where="adata")
        obs_codes(adata, self.categories_)  # raises on missing columns or unknown labels
        adata.uns[self._setup_key] = dict(self.setup_args_)
        self.adata, self._matrix = adata, matrix

    # ------------------------------------------------------------------ output
    def _cells(
        self,
        X: sp.csr_matrix,
        *,
        layers: Mapping[str, Any],
        labels: Mapping[str, np.ndarray],
        uns: Mapping[str, Any],
    ) -> AnnData:
        """Generated cells as an AnnData (CSR ``X``, ``layers["sparsity_bits"]`` = ``X != 0``)."""
        X = sp.csr_matrix(X, dtype=np.float32)
        X.eliminate_zeros()
        bits = X.copy()
        bits.data[:] = 1.0
        run = uuid.uuid4().hex[:8]
        obs = pd.DataFrame(
            {
                "source": pd.Categorical(["generated"] * X.shape[0], categories=SOURCE_CATEGORIES),
                **{
                    key: pd.Categorical(
                        [str(v) for v in values], categories=[str(c) for c in self.categories_[key]]
                    )
                    for key, values in labels.items()
                },
            },
            index=[f"gen-{run}-{i}" for i in range(X.shape[0])],
        )
        var = pd.DataFrame(self.var_, index=pd.Index(self.var_names_))
        out = AnnData(X=X, obs=obs, var=var, layers={"sparsity_bits": bits, **layers})
        out.uns["sdd"] = dict(uns)
        if self.log1p_ is not None:
            out.uns["log1p"] = dict(self.log1p_)
        logger.info("generated %d cells with %s", X.shape[0], self._model_class)
        return out
