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
    assert f'profiles.resolve_parameters("{path.stem}", globals())' in code[1].source, \
        f"{path.name}: the cell after the parameters must call profiles.resolve_parameters(...) first"


def _assigned_names(source: str) -> dict[str, object]:
    """Top-level ``name = value`` assignments of a parameters cell -> value (a literal)."""
    import ast

    out = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"the parameters cell may only hold `name = value` lines, got {ast.dump(node)[:80]}"
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_knob_is_a_papermill_parameter(path):
    """``papermill --help-notebook`` lists every knob, with its comment: each is a top-level variable,
    None = the profile's value (papermill skips a line holding a second ``=``, e.g. in its comment)."""
    import papermill

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    names = _assigned_names(cell.source)
    knobs = set(profiles.NOTEBOOKS[path.stem]["default"])
    assert set(names) == knobs | {"profile"}, \
        f"{path.name}: parameters {sorted(set(names) ^ (knobs | {'profile'}))} differ from its profile entry"
    assert all(v is None for v in names.values()), f"{path.name}: parameters must default to None"
    listed = papermill.inspect_notebook(str(path))
    assert set(listed) == set(names), \
        f"{path.name}: papermill does not list {sorted(set(names) - set(listed))} (a '=' in the comment?)"
    undocumented = sorted(k for k, v in listed.items() if not v["help"])
    assert not undocumented, f"{path.name}: parameters without a comment: {undocumented}"
