"""The public face: every exported name is documented in docs/api.md, and there are few."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
PACKAGES = (
    "sdd", "sdd.data", "sdd.datasets", "sdd.diffusion", "sdd.io", "sdd.metrics",
    "sdd.model", "sdd.nn", "sdd.pl", "sdd.sparse", "sdd.tl", "sdd.train",
)  # fmt: skip
#: Modules and attributes of ``sdd`` itself that need no API entry of their own.
TOP_LEVEL_MODULES = {"datasets", "diffusion", "metrics", "nn", "pl", "tl", "__version__"}


def documented() -> set[str]:
    """Fully qualified names listed in the autosummary blocks of docs/api.md."""
    names, current = set(), "sdd"
    for line in API.read_text().splitlines():
        line = line.strip()
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            current = match.group(1)
        elif re.fullmatch(r"[A-Za-z_][\w.]*", line):
            names.add(f"{current}.{line}")
    return names


def documented_in_submodule(name: str, entry: str) -> bool:
    """``sdd.nn.PAPER_UNET`` documented where it is defined, ``sdd.nn.unet.PAPER_UNET``
    (autodoc finds a constant's docstring only there)."""
    package, _, attr = name.rpartition(".")
    return entry.startswith(package + ".") and entry.endswith("." + attr) and entry != name


def exported() -> set[str]:
    return {
        f"{package}.{name}"
        for package in PACKAGES
        for name in importlib.import_module(package).__all__
        if not (package == "sdd" and name in TOP_LEVEL_MODULES)
    }


def test_every_exported_name_is_documented():
    docs = documented()
    # a model class exported by sdd.model and sdd is documented once, as sdd.X
    missing = {
        name for name in exported()
        if name not in docs and name.replace("sdd.model.", "sdd.", 1) not in docs
        and not any(documented_in_submodule(name, entry) for entry in docs)
    }  # fmt: skip
    assert not missing, f"exported but not in docs/api.md: {sorted(missing)}"


def test_documented_names_exist():
    for name in documented():
        module, _, attr = name.rpartition(".")
        try:
            target = importlib.import_module(module)
        except ModuleNotFoundError:
            parent, _, sub = module.rpartition(".")
            target = getattr(importlib.import_module(parent), sub)
        assert hasattr(target, attr), name


def test_public_face_is_small():
    names = {name for package in PACKAGES for name in importlib.import_module(package).__all__}
    count = sum(len(importlib.import_module(p).__all__) for p in PACKAGES)
    assert count <= 100, f"{count} public names"
    assert "check_int" not in names and "held_out_rows" not in names


@pytest.mark.parametrize("package", ["sdd.data", "sdd.io", "sdd.train"])
def test_internal_helpers_are_not_exported(package):
    exported_here = set(importlib.import_module(package).__all__)
    docs = {name.rpartition(".")[2] for name in documented() if name.startswith(package + ".")}
    assert exported_here <= docs


@pytest.mark.parametrize(
    "code",
    [
        "import sdd",
        "import sdd.cli, contextlib\nwith contextlib.suppress(SystemExit): sdd.cli.main(['--help'])",
    ],
)
def test_start_up_does_not_import_torch(code):
    """``import sdd`` and ``sdd --help`` start without torch, scanpy or scikit-learn."""
    probe = code + "\nimport sys\nprint(sorted({'torch', 'scanpy', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_lazy_attributes_resolve():
    import sdd

    assert sdd.SDD.__name__ == "SDD" and hasattr(sdd.tl, "fit") and "pl" in dir(sdd)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sdd.nope  # noqa: B018


def test_execution_options_live_in_one_frozen_object():
    quiet = sdd_module().Execution(progress=False)
    with pytest.raises(AttributeError):
        quiet.progress = True  # frozen: one instance is shared by many calls
    assert quiet.replace(accelerator="cpu").accelerator == "cpu" and quiet.accelerator == "auto"
    with pytest.raises(TypeError, match="no option 'speed'"):
        quiet.replace(speed=2)
    with pytest.raises(ValueError, match="accelerator"):
        sdd_module().Execution(accelerator="tpu")
    with pytest.raises(TypeError, match="progress"):
        sdd_module().Execution(progress="yes")


def sdd_module():
    return importlib.import_module("sdd")


def _named_parameters(func) -> list[str]:
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = inspect.signature(func).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind not in kinds]


EXECUTION_METHODS = [
    ("SDD", "train"), ("SDD", "generate"), ("SDD", "impute"), ("SDD", "calibrate"),
    ("SDDBlackout", "generate"), ("SDDImage", "generate"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "method"), EXECUTION_METHODS)
def test_models_take_execution_options_only_through_the_options_object(cls, method):
    names = _named_parameters(getattr(getattr(sdd_module(), cls), method))
    assert "execution" in names
    assert not {"accelerator", "device", "fast", "progress"} & set(names)


def test_old_execution_keywords_still_work_with_a_future_warning():
    from conftest import make_counts_adata

    sdd = sdd_module()
    adata = make_counts_adata(n_cells=40, n_genes=8)
    sdd.SDD.setup_anndata(adata)
    model = sdd.SDD(adata, hidden=(8,), emb_dim=4)
    with pytest.warns(FutureWarning, match=r"execution=sdd.Execution\(progress=False\)"):
        model.train(2, batch_size=16, progress=False)
    new = model.generate(3, n_steps=2, execution=sdd.Execution(progress=False))
    with pytest.warns(FutureWarning, match="accelerator='cpu'"):
        old = model.generate(3, n_steps=2, progress=False, accelerator="cpu")
    assert (new.X != old.X).nnz == 0  # the same call, spelled the old way
    with pytest.raises(ValueError, match="execution.distributed applies to training only"):
        model.generate(3, n_steps=2, execution=sdd.Execution(progress=False, distributed=True))
    with pytest.raises(TypeError, match="execution must be an sdd.Execution"):
        model.generate(3, n_steps=2, execution={"progress": False})


def _public_callables():
    """Every exported function and class, and the public methods of exported classes
    (inherited ones from sdd's own base classes included)."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                yield f"{package}.{name}", obj.__init__
                for base in obj.__mro__:
                    if not base.__module__.startswith("sdd"):
                        continue
                    for attr, member in vars(base).items():
                        if not attr.startswith("_") and inspect.isfunction(member):
                            yield f"{package}.{name}.{attr}", member
            elif callable(obj) and not inspect.ismodule(obj):
                yield f"{package}.{name}", obj


def test_no_public_function_takes_more_than_twelve_parameters():
    """Options beyond twelve travel in one options argument (``execution=``,
    ``train_kwargs=``, ``unet_kwargs=``, ...), not as more keywords."""
    too_many = {}
    for name, func in _public_callables():
        try:
            count = len(_named_parameters(func))
        except (TypeError, ValueError):  # builtins without a signature
            continue
        if count > 12:
            too_many[name] = count
    assert not too_many, too_many
    assert len(dict(_public_callables())) > 150  # the walk sees the whole public face
