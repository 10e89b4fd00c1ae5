"""Structure of the committed notebooks (their execution is checked by nbval under `smoke`)."""
from pathlib import Path

import nbformat
import pytest

from mcal_utils import profiles

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; run `make strip-notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_and_profile_entry(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), \
        f"{path.name}: the first code cell must be tagged 'parameters'"
    assert "profile = None" in code[0].source
    assert path.stem in profiles.NOTEBOOKS, f"{path.stem} has no entry in profiles.NOTEBOOKS"
    assert f'profiles.resolve("{path.stem}"' in "".join(c.source for c in code)
