"""The report pipeline: two tiny notebooks (one runs, one fails), the page furniture, MathJax, locking."""

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mcal_utils import profiles
from mcal_utils.report import build, cli, content, mathjax, notebook, pages, provenance, runs

CLAIM = "**Central claim** (a paper, Section 4): the answer\nis forty-two."


def _notebook(path: Path, body: str, claim: str = "") -> None:
    params = new_code_cell("profile = None  # smoke | default | paper")
    params.metadata["tags"] = ["parameters"]
    fig = new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display\nfig, ax = plt.subplots(); ax.plot([0, 1]); display(fig); plt.close(fig)"
    )
    fig.metadata["tags"] = ["key-figure"]
    prose = new_code_cell(
        "from IPython.display import Markdown\n"
        "display(Markdown('Set $MCAL_DATA_DIR or \\\\$HOME; ' + f'profile {profile}'))"
    )
    prose.metadata["tags"] = ["hide-input"]
    finding = new_code_cell("display(Markdown(f'The answer is **{6 * 7}** with $x_1$.'))")
    finding.metadata["tags"] = ["finding", "hide-input"]
    intro = f"# Title of {path.stem}\nInline maths $a^2 + b^2$.\n\n" + (f"{claim}\n\n" if claim else "") + "## Part"
    nb = new_notebook(cells=[new_markdown_cell(intro), params, fig, prose, new_code_cell(body), finding])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_build_report_marks_failures_and_renders_everything(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "00_good.ipynb", "assert profile == 'smoke'\nprint('fine')", claim=CLAIM)
    _notebook(nbs / "01_bad.ipynb", "raise RuntimeError('boom in the notebook')")
    out = tmp_path / "reports"
    bench = tmp_path / "bench.md"
    bench.write_text("# Benchmarks\n\n| case | ours_s |\n|---|---|\n| a \\| b | 0.5 |\n")

    code = cli.main(["--profile", "smoke", "--notebooks", str(nbs), "--out", str(out), "--benchmarks", str(bench)])

    assert code == 1  # a failed notebook makes the command fail
    summary = json.loads((out / "run.json").read_text())
    status = {n["name"]: n["status"] for n in summary["notebooks"]}
    assert status == {"00_good": "ok", "01_bad": "failed"}
    assert summary["profile"] == "smoke"
    assert all(n["commit"] == summary["commit"] for n in summary["notebooks"])
    rows = {n["name"]: n for n in summary["notebooks"]}
    assert rows["00_good"]["finding"] == "The answer is **42** with $x_1$."  # the notebook's own output
    assert rows["01_bad"]["finding"] == ""  # it failed before its finding cell
    assert rows["00_good"]["title"] == "Title of 00_good"
    # the central claim (one line) and the finding's verdicts (none stated here); no predicted time
    assert rows["00_good"]["claim"] == "**Central claim** (a paper, Section 4): the answer is forty-two."
    assert rows["01_bad"]["claim"] == "" and rows["00_good"]["verdicts"] == rows["01_bad"]["verdicts"] == []
    assert not any("predicted_s" in row for row in rows.values())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", summary["built"])
    # the execution environment of the kernels is recorded and shown on the index
    env = summary["environment"]
    assert env["cpu"] and env["torch_cpu_capability"] and env["env"]["OMP_NUM_THREADS"]
    assert env["torch_threads"] == int(env["env"]["OMP_NUM_THREADS"])
    assert 'id="environment"' in (out / "index.html").read_text() and env["cpu"] in (out / "index.html").read_text()

    # --only re-runs one notebook and keeps the other's row (and the commit it ran at)
    summary["notebooks"][1]["commit"] = "older"
    (out / "run.json").write_text(json.dumps(summary))
    assert cli.main(["--profile", "smoke", "--notebooks", str(nbs), "--out", str(out), "--only", "00"]) == 1
    rows = {n["name"]: n for n in json.loads((out / "run.json").read_text())["notebooks"]}
    assert rows["01_bad"]["commit"] == "older" and rows["01_bad"]["status"] == "failed"
    assert rows["00_good"]["status"] == "ok"
    for name in ("00_good", "01_bad"):
        page = (out / f"{name}.html").read_text()
        assert "mathjax/MathJax.js" in page  # maths renders offline
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page), "the page loads from the network"
        assert '<a class="mcal-home" href="index.html">' in page  # the way back
        assert f'download="" href="{name}.ipynb">download .ipynb</a>' in page
        assert 'id="mcal-toc-list"' in page
        assert (out / f"{name}.ipynb").is_file()
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    good = (out / "00_good.html").read_text()
    assert 'href="01_bad.html" rel="next"' in good and 'rel="prev"' not in good
    assert 'href="00_good.html" rel="prev"' in (out / "01_bad.html").read_text()
    assert len(re.findall(r'<details class="mcal-code">\s*<summary>show code</summary>', good)) == 2  # hide-input cells
    assert 'id="key-figure"' in good and 'id="finding"' in good
    # a literal dollar (environment variable, or escaped) is kept out of MathJax's reach
    assert f"{mathjax.LITERAL_DOLLAR_HTML.replace('&#36;', '$')}MCAL_DATA_DIR" in good
    assert f"{mathjax.LITERAL_DOLLAR_HTML.replace('&#36;', '$')}HOME" in good
    assert "boom in the notebook" in (out / "01_bad.html").read_text()

    index = (out / "index.html").read_text()
    assert 'class="failed"' in index and 'class="ok"' in index
    assert 'href="00_good.html#key-figure"' in index and 'src="figures/00_good.png"' in index
    assert "The answer is <strong>42</strong> with $x_1$." in index  # the finding, rendered, maths intact
    assert index.count('class="mcal-claim"') == 1  # only the notebook with a claim shows one
    assert "<strong>Central claim</strong> (a paper, Section 4): the answer is forty-two." in index
    assert 'class="mcal-badge mcal-v-none"' in index and ">no verdict<" in index
    for paper in content.PAPERS.values():
        assert paper.title in index and paper.link in index
    assert all(f"<dt>{term}</dt>" in index for term, _ in content.GLOSSARY)
    assert "download>download .ipynb</a>" in index
    assert 'href="benchmarks.html"' in index
    bench_page = (out / "benchmarks.html").read_text()
    assert "<table>" in bench_page and "a | b" in bench_page and 'href="index.html"' in bench_page
    assert (out / "mathjax" / "MathJax.js").is_file()
    # --index-only re-renders the index from run.json, executing nothing
    (out / "index.html").unlink()
    assert cli.main(["--index-only", "--notebooks", str(nbs), "--out", str(out)]) == 0
    assert "The answer is <strong>42</strong> with $x_1$." in (out / "index.html").read_text()
    assert cli.main(["--index-only", "--out", str(tmp_path / "nothing-here")]) == 2
    # the executed notebook received the injected profile
    executed = nbformat.read(out / "00_good.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_literal_dollars_are_protected_outside_code_and_maths():
    ign = mathjax.LITERAL_DOLLAR_HTML
    text = r"Use $MCAL_DATA_DIR, \$5, `$MCAL_OFFLINE` and maths $X_S$, $\tau^{-1}$, $$a$$."
    assert mathjax.escape_env_dollars(text) == (
        f"Use {ign}MCAL_DATA_DIR, {ign}5, `$MCAL_OFFLINE` and maths $X_S$, $\\tau^{{-1}}$, $$a$$."
    )
    html = pages.markdown_html(r"cost \$3 and $x_1 + y_1$", inline=True)
    assert html == f"cost {ign.replace('&#36;', '$')}3 and $x_1 + y_1$"


def test_finding_and_title_extraction():
    cell = new_code_cell("x", outputs=[nbformat.v4.new_output("display_data", {"text/markdown": "One **line**."})])
    cell.metadata["tags"] = ["finding"]
    nb = new_notebook(cells=[new_markdown_cell("Intro paragraph\nover two lines.\n\n# The title"), cell])
    assert notebook.finding_markdown(nb) == "One **line**."
    assert notebook.notebook_title(nb, "fallback") == "The title"
    assert notebook.notebook_intro(nb) == "Intro paragraph over two lines."
    assert notebook.finding_markdown(new_notebook(cells=[new_code_cell("x")])) == ""


def test_mathjax_copy_is_trimmed_complete_and_redone_when_incomplete(tmp_path):
    url = mathjax.install_mathjax(tmp_path)
    mj = tmp_path / "mathjax"
    assert url.startswith("mathjax/MathJax.js?config=")
    assert (mj / mathjax.MATHJAX_MARKER).is_file()
    assert (mj / "jax/output/HTML-CSS/fonts/STIX-Web/fontdata.js").is_file()
    assert any((mj / "fonts/HTML-CSS/STIX-Web/woff").rglob("*.woff"))
    assert not (mj / "jax/output/SVG").exists() and not (mj / "localization").exists()
    assert [p.name for p in (mj / "extensions/a11y").iterdir()] == ["accessibility-menu.js"]
    size = sum(p.stat().st_size for p in mj.rglob("*") if p.is_file())
    assert size < 4 * 2**20, f"the MathJax copy is {size / 2**20:.1f} MiB"
    # an interrupted copy (no marker) is replaced; leftovers of temporary names do not stay behind
    (mj / mathjax.MATHJAX_MARKER).unlink()
    (mj / "MathJax.js").write_text("truncated")
    mathjax.install_mathjax(tmp_path)
    assert (mj / "MathJax.js").stat().st_size > 10_000 and (mj / mathjax.MATHJAX_MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mathjax"]
    head = pages.mathjax_head(url)
    assert '"webFont": "STIX-Web"' in head and '"imageFont": null' in head and '"processEscapes": true' in head


def test_a_second_build_into_the_same_folder_is_refused(tmp_path):
    with build.build_lock(tmp_path):
        with pytest.raises(RuntimeError, match="another report build is writing to"):
            with build.build_lock(tmp_path):
                pass
    with build.build_lock(tmp_path):  # released again
        pass


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True, capture_output=True
    )


def test_a_symlinked_venv_does_not_make_the_tree_dirty(tmp_path):
    """The project's .gitignore ignores ``.venv`` also as a symlink (``.venv/`` matches directories only)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text((Path(__file__).resolve().parents[1] / ".gitignore").read_text())
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "c")
    (tmp_path / "venv").mkdir()
    (repo / ".venv").symlink_to(tmp_path / "venv", target_is_directory=True)
    assert not provenance.git_commit(repo).endswith("-dirty")


def test_a_dirty_tree_is_stamped_dirty_or_refused(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    _notebook(repo / "notebooks" / "00_x.ipynb", "pass")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "c")
    out = repo / "reports"
    clean = provenance.git_commit(repo, exclude=out)
    assert re.fullmatch(r"[0-9a-f]{4,}", clean)
    out.mkdir()
    (out / "index.html").write_text("the build's own output does not make the tree dirty")
    assert provenance.git_commit(repo, exclude=out) == clean
    (repo / "notebooks" / "01_new.ipynb").write_text("{}")  # an untracked notebook counts
    assert provenance.git_commit(repo, exclude=out) == clean + "-dirty"
    code = cli.main(
        ["--profile", "smoke", "--notebooks", str(repo / "notebooks"), "--out", str(out), "--require-clean"]
    )
    assert code == 2 and "uncommitted changes" in capsys.readouterr().err


def test_strip_outputs(tmp_path):
    path = tmp_path / "00_x.ipynb"
    nb = new_notebook(
        cells=[
            new_code_cell(
                "1 + 1", execution_count=3, outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
            )
        ]
    )
    nbformat.write(nb, path)
    assert notebook.strip_outputs(path) is True
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None
    assert notebook.strip_outputs(path) is False
    nbformat.write(nb, path)
    assert cli.main(["--strip", str(tmp_path)]) == 0  # `make strip-notebooks`
    assert nbformat.read(path, as_version=4).cells[0].outputs == []


def test_unknown_profile_is_refused_before_running(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "00_good.ipynb", "pass")
    assert cli.main(["--profile", "turbo", "--notebooks", str(nbs), "--out", str(tmp_path / "r")]) == 2


def test_no_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        notebook.list_notebooks(tmp_path)


def test_scaled_down_labels_profile_values_as_the_paper_profile_not_the_paper():
    items = [s for name in profiles.NOTEBOOKS for s in content.scaled_down(name, "default")]
    assert items, "no notebook scales anything down under the default profile"
    assert all(isinstance(s, content.ScaledSetting) and s.value != s.paper for s in items)
    assert content.scaled_down(next(iter(profiles.NOTEBOOKS)), "paper") == []
    assert content.scaled_down(next(iter(profiles.NOTEBOOKS)), "no-such-profile") == []
    card = pages.make_card(
        runs.NotebookResult(name="01_concrete_dropout_model", status="ok", seconds=1.0, profile="default")
    )
    html = pages.index_html(runs.RunSummary("default", "abc", 1.0, {}, [card.result]), [card])
    assert "(<code>paper</code> profile: " in html and "(paper:" not in html
