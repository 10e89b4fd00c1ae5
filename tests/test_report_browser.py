"""Every page of a freshly built ``smoke`` report, opened offline in headless Chromium.

Drives Debian's ``chromium`` through the DevTools protocol (``websocket-client``) with every host
name unresolvable, and fails on: a failed ``file:`` request, any network request, a script error,
MathJax errors or fallback fonts, raw TeX outside code, a literal backslash in typeset maths, broken
images, a notebook page without a link back to the index. Set ``MCAL_SCREENSHOTS=<folder>`` to keep
a PNG of every page. Without Chromium the test is skipped with the install command.
Run as a script to check a built report: `python tests/test_report_browser.py reports [screenshots/]`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from mcal_utils.report import cli, mathjax, pages, runs

ROOT = Path(__file__).resolve().parents[1]
# Cheap under `smoke`, and between them: tables, display maths, \text{}, $ in prose, figures.
BROWSER_NOTEBOOKS = ("00", "04")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "install Chromium to run it: `sudo apt-get install chromium` (Debian/Ubuntu)"
PAGE_TIMEOUT_S = 60

LOAD_ALL_IMAGES = r"""
Promise.race([
  Promise.all([...document.images].map(img => {
    img.loading = "eager";
    return img.complete ? true : new Promise(done => {
      img.addEventListener("load", () => done(true));
      img.addEventListener("error", () => done(false));
    });
  })),
  new Promise(done => setTimeout(() => done(false), 10000)),
]).then(() => true)
"""

# Evaluated in the page once MathJax has finished: returns a list of problems (strings).
PAGE_CHECKS = r"""
(() => {
  const problems = [];
  const isIndex = /(^|\/)index\.html$/.test(location.pathname);
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) problems.push("broken image " + img.getAttribute("src"));
  }
  if (!isIndex && !document.querySelector('a[href="index.html"]')) problems.push("no link back to index.html");
  if (window.MathJax) {
    const errs = document.querySelectorAll(".MathJax_Error, .merror, .noError");
    if (errs.length) problems.push(errs.length + " MathJax error(s): " + errs[0].textContent.slice(0, 80));
    const html_css = MathJax.OutputJax && MathJax.OutputJax["HTML-CSS"];
    const typeset = document.querySelectorAll(".MathJax, .MathJax_Display").length;
    if (typeset && !(html_css && html_css.fontInUse === "STIX-Web" && !html_css.imgFonts))
      problems.push("MathJax fell back from the STIX-Web web font: " + (html_css && html_css.fontInUse));
    for (const m of document.querySelectorAll(".MathJax, .MathJax_Display")) {
      if (m.textContent.includes("\\")) {
        problems.push("literal backslash in typeset maths: " + m.textContent.slice(0, 60));
        break;
      }
    }
    // prose between two stray $: the TeX source (kept by MathJax) has 3+ plain words outside \text{}
    for (const src of document.querySelectorAll('script[type^="math/tex"]')) {
      const bare = src.textContent.replace(/\\(text|mathrm|operatorname|textrm|mbox)\{[^}]*\}/g, " ")
                                  .replace(/\\[A-Za-z]+/g, " ").replace(/\{[a-z]+\*?\}/g, " ");
      const words = bare.match(/\b[a-z]{3,}\b/g) || [];
      if (words.length >= 3) {
        problems.push("prose typeset as maths (a literal $?): " + src.textContent.slice(0, 60));
        break;
      }
    }
  }
  const skip = ["SCRIPT", "STYLE", "CODE", "PRE", "TEXTAREA", "NOSCRIPT"];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.includes(el.tagName) || el.classList.contains("MathJax") ||
            el.classList.contains("MathJax_Display") || el.classList.contains("MathJax_Preview") ||
            el.classList.contains("tex2jax_ignore") || el.classList.contains("highlight"))
          return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }});
  const tex = /\\[A-Za-z]{2,}|[_^]\{|\$\$/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = n.textContent.match(tex);
    if (m) {
      problems.push("raw TeX outside code: …" + n.textContent.slice(Math.max(0, m.index - 30), m.index + 40));
      break;
    }
  }
  return problems;
})()
"""


def _chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal DevTools-protocol client of one page target (commands in, events collected)."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=PAGE_TIMEOUT_S, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, deadline: float) -> dict:
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} event within {PAGE_TIMEOUT_S} s")

    def evaluate(self, expression: str, await_promise: bool = False):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self):
        self.ws.close()


def launch_chromium(binary: str, profile_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start headless Chromium offline; return (process, websocket URL of its first page)."""
    proc = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--allow-file-access-from-files",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile_dir}",
            "--window-size=1280,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{binary} did not start its DevTools endpoint")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
        pages = [t for t in json.load(resp) if t["type"] == "page"]
    return proc, pages[0]["webSocketDebuggerUrl"]


def check_page(tab: DevTools, url: str, screenshot: Path | None = None) -> list[str]:
    """Open ``url`` and return its problems (empty list = the page passes)."""
    tab.events.clear()
    tab.send("Page.navigate", url=url)
    tab.wait_for("Page.loadEventFired", time.monotonic() + PAGE_TIMEOUT_S)
    # wait until MathJax has typeset everything (its queue runs our callback last)
    tab.evaluate(
        "new Promise(done => window.MathJax && MathJax.Hub ? MathJax.Hub.Queue(() => done(true)) : done(false))",
        await_promise=True,
    )
    tab.evaluate("document.fonts.ready.then(() => true)", await_promise=True)
    # lazy images below the fold load only when scrolled to: load every image now (10 s at most), so that
    # a missing file is told apart from one not yet loaded
    tab.evaluate(LOAD_ALL_IMAGES, await_promise=True)
    tab.evaluate("new Promise(done => setTimeout(() => done(true), 200))", await_promise=True)
    problems = list(tab.evaluate(PAGE_CHECKS))
    urls = {}
    for ev in tab.events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = req = params["request"]["url"]
            if not req.startswith(("file:", "data:", "blob:", "about:")):
                problems.append(f"network request {req}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            failed = urls.get(params["requestId"], "?")
            if not failed.startswith("about:"):
                problems.append(f"failed request ({params.get('errorText')}) {failed}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            problems.append(
                f"script error: {details.get('text')} {details.get('exception', {}).get('description', '')[:120]}"
            )
    if screenshot is not None:
        height = tab.evaluate("Math.min(document.documentElement.scrollHeight, 6000)")
        shot = tab.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return problems


def check_report(folder: Path, screenshots: Path | None = None) -> dict[str, list[str]]:
    """Open every ``*.html`` of ``folder`` in headless Chromium; {page: problems} for the failing ones."""
    binary = _chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium found ({', '.join(CHROMIUM_NAMES)}); {INSTALL_HINT}")
    pages = sorted(folder.glob("*.html"))
    profile_dir = Path(tempfile.mkdtemp(prefix="mcal-chromium-"))
    proc, ws_url = launch_chromium(binary, profile_dir)
    failures = {}
    try:
        tab = DevTools(ws_url)
        tab.send("Page.enable")
        tab.send("Network.enable")
        tab.send("Runtime.enable")
        for page in pages:
            shot = screenshots / f"{page.stem}.png" if screenshots else None
            problems = check_page(tab, page.resolve().as_uri(), shot)
            if problems:
                failures[page.name] = problems
        tab.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile_dir, ignore_errors=True)
    return failures


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    if _chromium() is None:
        pytest.skip(f"the browser test needs Chromium; {INSTALL_HINT}")
    out = tmp_path_factory.mktemp("report")
    bench = ROOT / "reports" / "benchmarks.md"
    code = cli.main(
        ["--profile", "smoke", "--notebooks", str(ROOT / "notebooks"), "--out", str(out), "--only", *BROWSER_NOTEBOOKS]
        + (["--benchmarks", str(bench)] if bench.is_file() else [])
    )
    assert code == 0, f"the smoke report failed to build; see {out / 'run.json'}"
    # a long-profile build of the last notebook (its row, relabelled): the index shows its link too
    built = runs.read_run(out)
    long_row = dataclasses.replace(built.notebooks[-1], profile="long", predicted_s=3600.0)
    runs.write_run(out / runs.LONG_DIR, dataclasses.replace(built, profile="long", notebooks=[long_row]))
    assert cli.main(["--index-only", "--notebooks", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    assert f'href="long/{long_row.html}"' in (out / "index.html").read_text()
    return out


@pytest.mark.slow
def test_every_page_passes_offline_in_chromium(smoke_report):
    built_pages = {p.name for p in smoke_report.glob("*.html")}
    assert "index.html" in built_pages and {f"{p}.html" for p in _built_notebooks(smoke_report)} <= built_pages
    shots = os.environ.get("MCAL_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    failures = check_report(smoke_report, Path(shots) if shots else None)
    assert not failures, "pages with problems:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(problems) for page, problems in failures.items()
    )


def _built_notebooks(folder: Path) -> list[str]:
    return [n["name"] for n in json.loads((folder / "run.json").read_text())["notebooks"]]


def test_the_checks_catch_broken_pages(tmp_path):
    """The checker itself fails on a broken page (else a passing report proves nothing)."""
    if _chromium() is None:
        pytest.skip(f"the browser test needs Chromium; {INSTALL_HINT}")
    url = mathjax.install_mathjax(tmp_path)
    (tmp_path / "index.html").write_text("<html><body>fine</body></html>")
    bad = pages.render_page(
        "bad",
        "<p>raw \\frac{a}{b} here, maths $\\text{max\\_angle}$</p>"
        "<p>Set $MCAL_OFFLINE=1 and then point $MCAL_DATA_DIR elsewhere.</p>"
        '<img src="missing.png"><script src="https://example.org/x.js"></script>',
        url,
    )
    (tmp_path / "bad.html").write_text(bad)
    problems = " | ".join(check_report(tmp_path)["bad.html"])
    for expected in (
        "broken image missing.png",
        "no link back to index.html",
        "network request https://example.org",
        "raw TeX outside code",
        "literal backslash in typeset maths",
        "failed request",
        "prose typeset as maths",
    ):
        assert expected in problems, f"{expected!r} not reported; got: {problems}"


if __name__ == "__main__":  # check a built report, e.g. `python tests/test_report_browser.py reports`
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    found = check_report(folder, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    for page, problems in found.items():
        print(f"{page}:\n  " + "\n  ".join(problems))
    print(f"{len(list(folder.glob('*.html')))} pages checked, {len(found)} with problems")
    raise SystemExit(1 if found else 0)
