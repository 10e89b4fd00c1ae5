"""The report pipeline on two tiny notebooks: one that runs, one that fails."""
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mcal_utils import report


def _notebook(path: Path, body: str) -> None:
    params = new_code_cell("profile = None\noverrides = {}")
    params.metadata["tags"] = ["parameters"]
    fig = new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display\nfig, ax = plt.subplots(); ax.plot([0, 1]); display(fig); plt.close(fig)")
    fig.metadata["tags"] = ["key-figure"]
    nb = new_notebook(cells=[new_markdown_cell("# Title\nInline maths $a^2 + b^2$."), params, fig,
                             new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_build_report_marks_failures_and_renders_everything(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "00_good.ipynb", "assert profile == 'smoke'\nprint('fine')")
    _notebook(nbs / "01_bad.ipynb", "raise RuntimeError('boom in the notebook')")
    out = tmp_path / "reports"

    code = report.main(["--profile", "smoke", "--notebooks", str(nbs), "--out", str(out)])

    assert code == 1  # a failed notebook makes the command fail
    summary = json.loads((out / "run.json").read_text())
    status = {n["name"]: n["status"] for n in summary["notebooks"]}
    assert status == {"00_good": "ok", "01_bad": "failed"}
    assert summary["profile"] == "smoke"
    assert all(n["commit"] == summary["commit"] for n in summary["notebooks"])

    # --only re-runs one notebook and keeps the other's row (and the commit it ran at)
    summary["notebooks"][1]["commit"] = "older"
    (out / "run.json").write_text(json.dumps(summary))
    assert report.main(["--profile", "smoke", "--notebooks", str(nbs), "--out", str(out), "--only", "00"]) == 1
    rows = {n["name"]: n for n in json.loads((out / "run.json").read_text())["notebooks"]}
    assert rows["01_bad"]["commit"] == "older" and rows["01_bad"]["status"] == "failed"
    assert rows["00_good"]["status"] == "ok"
    for name in ("00_good", "01_bad"):
        page = (out / f"{name}.html").read_text()
        assert "mathjax/MathJax.js" in page  # maths renders offline
        assert not re.search(r'<script[^>]+src="https?://', page), "the page loads a script from the network"
        assert (out / f"{name}.ipynb").is_file()
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "boom in the notebook" in (out / "01_bad.html").read_text()
    index = (out / "index.html").read_text()
    assert 'class="failed"' in index and 'class="ok"' in index and "figures/00_good.png" in index
    assert (out / "mathjax" / "MathJax.js").is_file()
    # the executed notebook received the injected profile
    executed = nbformat.read(out / "00_good.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_strip_outputs(tmp_path):
    path = tmp_path / "00_x.ipynb"
    nb = new_notebook(cells=[new_code_cell("1 + 1", execution_count=3,
                                           outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"})])])
    nbformat.write(nb, path)
    assert report.strip_outputs(path) is True
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None
    assert report.strip_outputs(path) is False


def test_unknown_profile_is_refused_before_running(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "00_good.ipynb", "pass")
    assert report.main(["--profile", "turbo", "--notebooks", str(nbs), "--out", str(tmp_path / "r")]) == 2


def test_no_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        report.list_notebooks(tmp_path)
