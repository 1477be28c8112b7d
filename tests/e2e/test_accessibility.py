"""Accessibility and layout checks on every console page, in the browser: titles, headings,
labels, contrast (WCAG AA) in light and dark, keyboard reach, phone width, no external assets."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from e2e_helpers import PHONE, Console, seed_tour, sign_in_locally
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Problems on the current page: a title, exactly one h1, a label for every form control and
# aria-describedby that points at elements which exist.
STRUCTURE_JS = """() => {
  const problems = [];
  if (!document.title.trim() || !document.title.includes('Gatehouse')) problems.push('no title');
  const h1s = document.querySelectorAll('h1');
  if (h1s.length !== 1 || !h1s[0].innerText.trim()) problems.push(`${h1s.length} h1`);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const named = el.labels.length > 0 || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby');
    if (!named) problems.push(`unlabelled ${el.tagName} name=${el.name}`);
    for (const id of (el.getAttribute('aria-describedby') || '').split(/\\s+/)) {
      if (id && !document.getElementById(id)) problems.push(`${el.name}: no #${id}`);
    }
  }
  for (const a of document.querySelectorAll('a, button')) {
    if (!(a.textContent.trim() || a.getAttribute('aria-label'))) {
      problems.push(`nameless ${a.outerHTML}`);
    }
  }
  return problems;
}"""

# Every visible piece of text whose contrast with what is behind it is below WCAG AA:
# 4.5:1, or 3:1 for large text (24px, or 18.66px bold). Disabled controls are exempt.
CONTRAST_JS = """() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g) || [0, 0, 0, 0];
    return [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (top, under) => { const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const background = (el) => { const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const bg = parse(getComputedStyle(n).backgroundColor);
      if (bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour; };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || seen.has(el)) continue;
    seen.add(el);
    const rect = el.getBoundingClientRect();
    if (!rect.width || !rect.height || el.closest('.visually-hidden, .skip, [hidden]')) continue;
    if (el.closest('[disabled], [aria-disabled="true"]')) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    const fg = over(parse(style.color), background(el));
    const bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) {
      const text = el.innerText.trim().slice(0, 40);
      const under = `rgb(${bg.slice(0, 3).map(Math.round)})`;
      failures.push(`${ratio.toFixed(2)} < ${need}: "${text}" (${style.color} on ${under})`);
    }
  }
  return failures;
}"""


def tour(page: Page, console: Console, paths: list[str], check: Callable[[str], list[str]]) -> None:
    """Sign out-page first, then every signed-in page; collect every problem, fail once."""
    problems: list[str] = []
    page.goto(console.at("/login"))
    problems += [f"/login: {p}" for p in check("/login")]
    sign_in_locally(page, console)
    for path in paths:
        page.goto(console.at(path))
        problems += [f"{path}: {p}" for p in check(path)]
    assert not problems, "\n".join(problems)


def test_every_page_has_a_title_one_h1_and_a_label_for_every_field(
    page: Page, console: Console
) -> None:
    paths = seed_tour(console)
    tour(page, console, paths, lambda _path: page.evaluate(STRUCTURE_JS))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa_on_every_page(
    new_page: Callable[..., Page], console: Console, scheme: str
) -> None:
    paths = seed_tour(console)
    page = new_page(color_scheme=scheme)
    tour(page, console, paths, lambda _path: page.evaluate(CONTRAST_JS))
    page.goto(console.at("/users/new"))
    page.get_by_label("Username").fill("not a valid name!")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".field-error")).to_be_visible()
    assert page.evaluate(CONTRAST_JS) == []


def test_pages_fit_a_phone_screen_without_sideways_scrolling(
    new_page: Callable[..., Page], console: Console
) -> None:
    paths = seed_tour(console)
    page = new_page(viewport=PHONE)

    def overflow(_path: str) -> list[str]:
        width = page.evaluate("document.documentElement.scrollWidth")
        return [f"{width}px wide"] if width > PHONE["width"] else []

    tour(page, console, paths, overflow)


def test_every_asset_is_served_by_gatehouse(page: Page, console: Console) -> None:
    paths = seed_tour(console)
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(urlsplit(request.url).netloc))
    tour(page, console, paths, lambda _path: [])
    assert origins == {urlsplit(console.url).netloc}


def focus_sequence(page: Page, presses: int) -> list[str]:
    """Press Tab ``presses`` times; the id (or text) of each focused element, in order."""
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return e.id ? '#' + e.id : (e.innerText || e.name || e.tagName).trim(); }"
            )
        )
    return seen


def test_keyboard_alone_reaches_the_main_actions_with_a_visible_focus(
    page: Page, console: Console
) -> None:
    seed_tour(console)
    page.goto(console.at("/login"))
    assert focus_sequence(page, 3) == ["Skip to content", "Gatehouse", "#sso"]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused element shows no outline"
    page.keyboard.press("Tab")  # the break-glass <summary>
    page.keyboard.press("Enter")  # opens it
    assert focus_sequence(page, 3)[:3] == ["#username", "#password", "#local-submit"]
    page.fill("#username", "root")
    sign_in_locally(page, console)

    page.goto(console.at("/users"))
    reached = focus_sequence(page, 19)
    assert reached[0] == "Skip to content"
    for target in ("Users", "Sign out", "#new-user", "#q", "#status", "Search", "alice"):
        assert target in reached, f"{target} not reached by Tab: {reached}"
    page.keyboard.press("Shift+Tab")
    page.goto(console.at("/users"))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # skip link: the next Tab lands inside <main>
    assert page.evaluate("location.hash") == "#main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")

    page.goto(console.at("/settings/idp"))
    assert "#idp-save" in focus_sequence(page, 40)
