"""`AnnDataModel`: what the cell models (:class:`~sdd.SDD`, :class:`~sdd.SDDBlackout`) share.

Registration of an AnnData (``setup_anndata`` results in ``adata.uns``), re-checks of data
that changed after setup, attaching new training data to a loaded model, the training
label mix (``generate(labels="training")``), and generated cells as an AnnData that fits
scanpy: unique ``obs_names`` per run, a categorical ``obs["source"]``, the training
``var`` columns and ``uns["log1p"]``.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from ..data.annotate import SOURCE_CATEGORIES, plain_var
from ..data.composition import composition, mix_labels
from ..data.registry import Setup, check_var_names, obs_categories, obs_codes, plain
from ..data.validate import check_int, get_matrix, matrix_name
from ..nn import SkipMLP
from ._base import DiffusionModel

logger = logging.getLogger("sdd")

TRAINING = "training"
"""``generate(labels=TRAINING)``: the training data's label composition."""
AUTO = "auto"
"""``generate(labels=AUTO)``, the default: the training label mix for a conditional model
(as the command line does), unconditional otherwise."""
DEFAULT_N_CELLS = 10_000


class AnnDataModel(DiffusionModel):
    """A model trained on the rows of an AnnData (see :class:`DiffusionModel`).

    Subclasses supply ``setup_anndata`` (built on :meth:`_setup_values`) and
    ``_check_data(matrix, where=)``.
    """

    _data_params = ("adata",)
    _unit = "cells"
    _arrays_hint = "sdd.SDDImage"

    @classmethod
    def default_layer(cls, adata: AnnData) -> str | None:
        """The layer the model learns when none is named: the ``layer`` default of
        :meth:`setup_anndata` if ``adata`` has that layer, else ``X`` (``None``).

        Examples
        --------
        >>> import anndata as ad, numpy as np, sdd
        >>> sdd.SDDBlackout.default_layer(ad.AnnData(np.ones((2, 2)))) is None
        True
        """
        layer = inspect.signature(cls.setup_anndata).parameters["layer"].default
        return layer if layer is None or layer in adata.layers else None

    @classmethod
    def _setup_values(
        cls,
        adata: AnnData,
        layer: str | None,
        labels_key: str | None,
        categorical_covariate_keys: Sequence[str] | None,
    ) -> tuple[Any, dict[str, Any]]:
        """Check the matrix and the condition columns; the matrix and the common setup."""
        matrix = get_matrix(adata, layer)
        cls._check_data(matrix, where=matrix_name(layer))
        if isinstance(categorical_covariate_keys, str):
            raise TypeError(
                "categorical_covariate_keys must be a list of obs columns, got the string "
                f"{categorical_covariate_keys!r}; pass [{categorical_covariate_keys!r}]."
            )
        keys = [k for k in [labels_key, *(categorical_covariate_keys or [])] if k is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Conditioning keys must be distinct, got {keys}.")
        return matrix, {
            "layer": layer,
            "labels_key": labels_key,
            "categorical_covariate_keys": list(categorical_covariate_keys or []),
            "categories": {key: obs_categories(adata, key) for key in keys},
        }

    def _use_anndata(self, adata: AnnData) -> None:
        """Set ``setup_args_``, ``_matrix``, ``var_names_``, ``var_`` and ``composition_``.

        Registers ``adata`` with :meth:`setup_anndata` (on :meth:`default_layer`) if it is
        not registered yet; otherwise checks the data and the registered label columns
        again, since the AnnData may have changed after ``setup_anndata`` checked it.
        """
        if not isinstance(adata, AnnData):
            raise TypeError(
                f"Expected an AnnData object, got {type(adata).__name__}"
                + (
                    f"; for arrays use {self._arrays_hint}."
                    if isinstance(adata, np.ndarray)
                    else "."
                )
            )
        setup = Setup.of(adata, self._model_class)
        if setup is None:
            self.setup_anndata(adata, layer=self.default_layer(adata))
            self.setup_ = Setup.of(adata, self._model_class)
            self._matrix = get_matrix(adata, self.setup_.layer)
        else:  # the data may have changed since setup_anndata checked them
            self.setup_ = setup
            self._matrix = setup.validate(adata, self._check_data)
        self.var_names_ = check_var_names(adata)
        self.var_ = plain_var(adata.var)
        self.log1p_ = plain(dict(adata.uns["log1p"])) if "log1p" in adata.uns else None
        self.adata = adata
        # the training label mix (raises on missing columns or unknown labels)
        self.composition_ = composition(obs_codes(adata, self.categories_))

    @property
    def setup_args_(self) -> dict[str, Any]:
        """What :meth:`setup_anndata` registered (plain values; see ``setup_``)."""
        return dict(self.setup_.args)

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

    @property
    def data_dim(self) -> int:
        """Length of the vector the diffusion runs on."""
        return self.n_genes

    def _build_network(self) -> SkipMLP:
        a = self.init_args_
        labels = [len(c) for c in self.categories_.values()]
        return SkipMLP(
            self.data_dim, hidden=a["hidden"], emb_dim=a["emb_dim"], dropout=a["dropout"],
            n_categories=labels + self._cell_conditions(), n_guided=len(labels),
        )  # fmt: skip

    def _cell_conditions(self) -> list[int]:
        """Sizes of per-cell conditions after the labels (none here; see ``SDD``)."""
        return []

    def _sample_shape(self) -> tuple[int, ...]:
        return (self.data_dim,)

    # ------------------------------------------------------------------ labels
    def _generation_labels(
        self, n_cells: int | None, labels: Any
    ) -> tuple[int, np.ndarray | None, dict[str, np.ndarray]]:
        """The number of cells, their condition codes and their labels per key.

        ``labels="training"``: the training composition (``n_cells`` cells in its
        proportions, or as many as the training data had); ``labels="auto"``: that
        composition for a conditional model (:data:`DEFAULT_N_CELLS` cells when
        ``n_cells`` is ``None``), unconditional otherwise; ``n_cells=None``: the length of
        per-cell labels, else :data:`DEFAULT_N_CELLS`.
        """
        if isinstance(labels, str) and labels == AUTO:
            if self.composition_ is None:
                labels = None
            else:
                labels = TRAINING
                n_cells = DEFAULT_N_CELLS if n_cells is None else n_cells
        if isinstance(labels, str) and labels == TRAINING:
            labels, n_cells = self._training_labels(n_cells), None
        if n_cells is None:
            values = labels.values() if isinstance(labels, Mapping) else [labels]
            lengths = {len(v) for v in values if v is not None and np.ndim(v) > 0}
            if len(lengths) > 1:
                raise ValueError(f"Per-cell label arrays differ in length: {sorted(lengths)}.")
            n_cells = lengths.pop() if lengths else DEFAULT_N_CELLS
        n_cells = check_int(n_cells, "n_cells", 1)
        return n_cells, *self._label_codes(labels, n_cells)

    def _training_labels(self, n_cells: int | None) -> dict[str, np.ndarray]:
        """Per-cell labels in the training data's composition, grouped by label."""
        if self.composition_ is None:
            raise ValueError(
                f"labels={TRAINING!r} needs a model set up with labels_key or "
                "categorical_covariate_keys."
            )
        key = self._default_key()
        if TRAINING in self.categories_[key]:
            raise ValueError(
                f"labels={TRAINING!r} is ambiguous: {key!r} has a label named {TRAINING!r}. "
                f"Pass labels={{{key!r}: {TRAINING!r}}} to generate cells of that label."
            )
        n = None if n_cells is None else check_int(n_cells, "n_cells", 1)
        return mix_labels(self.composition_, self.categories_, n)

    def _summary(self) -> tuple[str, str, str]:
        shape = self.setup_args_.get("image_shape")
        what = f"image {tuple(shape)}" if shape else f"{self.n_genes} genes"
        cond = f", conditioned on {list(self.categories_)}" if self.categories_ else ""
        layer = self.setup_args_["layer"] or "X"
        return (
            self._kind,
            f"{what}, MLP hidden {tuple(self.init_args_['hidden'])}",
            f"{cond}; layer={layer!r}",
        )

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
        logger.info("\n".join(lines))

    # ------------------------------------------------------------------ checkpoints
    def _data_state(self) -> dict[str, Any]:
        if self.composition_ is None:
            return {}
        return {"composition": {k: torch.as_tensor(v) for k, v in self.composition_.items()}}

    def _data_config(self) -> dict[str, Any]:
        return {
            "setup_args": self.setup_args_,
            "var_names": self.var_names_,
            "var": self.var_,
            "log1p": self.log1p_,
        }

    def _restore_data(self, state: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        self.setup_ = Setup(self._model_class, config["setup_args"])
        self.var_names_ = [str(v) for v in config["var_names"]]
        if len(set(self.var_names_)) != len(self.var_names_):
            raise ValueError("var_names are not unique.")
        self.var_ = dict(config.get("var") or {})
        for name, values in self.var_.items():
            if len(values) != self.n_genes:
                raise ValueError(
                    f"var column {name!r} has {len(values)} values for {self.n_genes} genes."
                )
        self.log1p_ = config.get("log1p")
        self.adata, self._matrix = None, None
        composition = state.get("composition")
        self.composition_ = (
            None if composition is None else {k: v.numpy() for k, v in composition.items()}
        )

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
        matrix = self.setup_.transfer(adata, self._check_data)
        self.adata, self._matrix = adata, matrix

    # ------------------------------------------------------------------ output
    def _cells(
        self,
        X: sp.spmatrix,
        *,
        layers: Mapping[str, Any],
        uns: Mapping[str, Any],
        labels: Mapping[str, np.ndarray] | None = None,
        obs: pd.DataFrame | None = None,
        dtype: Any = np.float32,
    ) -> AnnData:
        """Cells as an AnnData (CSR ``X``, ``layers["sparsity_bits"]`` = ``X != 0``).

        ``obs`` defaults to new ``obs_names`` with ``source == "generated"`` and ``labels``.
        """
        X = sp.csr_matrix(X, dtype=dtype)
        X.eliminate_zeros()
        bits = sp.csr_matrix(X, dtype=np.float32, copy=True)
        bits.data[:] = 1.0
        if obs is None:
            run = uuid.uuid4().hex[:8]
            obs = pd.DataFrame(
                {
                    "source": pd.Categorical(
                        ["generated"] * X.shape[0], categories=SOURCE_CATEGORIES
                    ),
                    **{
                        key: pd.Categorical(
                            [str(v) for v in values],
                            categories=[str(c) for c in self.categories_[key]],
                        )
                        for key, values in (labels or {}).items()
                    },
                },
                index=[f"gen-{run}-{i}" for i in range(X.shape[0])],
            )
        var = pd.DataFrame(self.var_, index=pd.Index(self.var_names_))
        out = AnnData(X=X, obs=obs, var=var, layers={"sparsity_bits": bits, **layers})
        out.uns["sdd"] = dict(uns)
        if self.log1p_ is not None:
            out.uns["log1p"] = dict(self.log1p_)
        verb = "imputed" if uns.get("imputed") else "generated"
        logger.info("%s %d cells with %s", verb, X.shape[0], self._model_class)
        return out
