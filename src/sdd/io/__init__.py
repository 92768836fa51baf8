"""Everything the package writes goes through here: atomic files and model directories."""

__all__: list[str] = []
