"""The demo report in a real browser (headless Chromium, installed by `scripts/setup --system`; never skipped):
at a phone's width (390 px) and a desktop's (1366 px) the verdict is on the first screen and nothing runs off
the right edge; the page reads verdict, hosts, matrix, failures, tests, environment; text has AA contrast."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from tests.report.test_html_report import demo  # noqa: F401  (the module fixture: the demo's page)

# Runs in the page's parent once everything loaded (the report's own script included), and reads the report
# through its iframe, so the report is laid out at exactly the iframe's width.
PROBE = """
window.addEventListener('load', function () {
  var w = document.getElementById('report').contentWindow, d = w.document;
  function box(e) { var r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left,
                                                              right: r.right}; }
  function rgb(text) { var m = text.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m : m.concat([1]); }
  function luminance(c) { return c.slice(0, 3).map(function (v) { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce(function (s, v, i) { return s + v * [0.2126, 0.7152, 0.0722][i]; }, 0); }
  function background(e) { for (; e && e.nodeType === 1; e = e.parentElement) {
    var c = rgb(w.getComputedStyle(e).backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; }
  function contrast(e) { var a = luminance(rgb(w.getComputedStyle(e).color)), b = luminance(background(e));
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); }
  var order = ['xp-verdict', 'xp-hosts', 'xp-matrix', 'xp-failures', 'results-table', 'environment']
    .map(function (id) { var e = d.getElementById(id); return e ? Array.prototype.indexOf.call(
      d.getElementsByTagName('*'), e) : -1; });
  var low = [];
  d.querySelectorAll('body *').forEach(function (e) {
    var own = Array.prototype.some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.data.trim(); });
    var style = w.getComputedStyle(e);
    if (!own || style.display === 'none' || style.visibility === 'hidden' || !e.getClientRects().length) return;
    var ratio = contrast(e);
    if (ratio < 4.5) low.push(e.tagName + '.' + e.className + ' ' + ratio.toFixed(2) + ' ' + e.textContent.trim()
      .slice(0, 40));
  });
  var out = {width: w.innerWidth, height: w.innerHeight, scrollWidth: d.documentElement.scrollWidth,
             verdict: box(d.getElementById('xp-verdict')), headline: d.querySelector('.xp-headline').textContent,
             cards: [].map.call(d.querySelectorAll('.xp-card'), box), order: order, low: low};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run scripts/setup --system"
    return found


@cache
def layout(report: Path, width: int, height: int) -> dict:
    """What the report looks like in Chromium at width x height."""
    frame = report.with_name(f"probe-{width}.html")
    frame.write_text(f"<!DOCTYPE html><html><body style='margin:0'><iframe id='report' src='{report.name}' "
                     f"width='{width}' height='{height}' style='border:0'></iframe><script>{PROBE}</script>"
                     "</body></html>")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--hide-scrollbars", "--allow-file-access-from-files",
                               f"--user-data-dir={profile}", f"--window-size={width + 50},{height + 50}",
                               "--dump-dom", frame.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


@pytest.fixture(scope="module")
def report(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("chromium") / "report.html"
    path.write_text(demo[0], encoding="utf-8")
    return path


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1366, 900)])
def test_verdict_on_the_first_screen_and_nothing_runs_off_the_edge(report, width, height):
    seen = layout(report, width, height)
    assert seen["width"] == width
    assert seen["headline"] == "1 of 2 hosts non-compliant"
    assert seen["verdict"]["top"] >= 0 and seen["verdict"]["bottom"] <= height  # the whole verdict, unscrolled
    assert seen["scrollWidth"] <= width, "the page scrolls sideways"
    assert len(seen["cards"]) == 2
    for box in [seen["verdict"], *seen["cards"]]:
        assert box["left"] >= 0 and box["right"] <= width


def test_reading_order_ends_with_the_environment(report):
    order = layout(report, 1366, 900)["order"]
    assert -1 not in order and order == sorted(order), order


def test_text_has_aa_contrast(report):
    assert layout(report, 1366, 900)["low"] == []
