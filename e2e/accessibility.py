"""Accessibility checks and review screenshots for the pages a customer or an agent sees (docs/api.md, "Checkout
page" and "Languages").

:class:`Review` is what a test calls at each state it reaches: it runs axe-core (the copy packaged by
``axe-playwright-python``, https://github.com/deque-labs/axe-playwright-python — nothing is fetched) with the
WCAG 2.0 / 2.1 level A and AA rules at a phone's width (375 px) and a desktop's (1280 px), keeps every violation,
and for ``en`` and ``ar`` saves a full-page screenshot at each width as
``<test state dir>/screenshots/<language>-<state>-<width>.png`` (``scripts/test.sh`` copies the folder to
``build/screenshots`` when it ends). axe is injected with ``page.evaluate`` (the DevTools protocol's
``Runtime.evaluate``), which the page's Content-Security-Policy does not govern. axe needs JavaScript: in a
browser context with JavaScript disabled its timers never fire and ``axe.run`` never ends, so a page is checked
"without JavaScript" by keeping its own script from loading (``page.route``) instead.

The states are named in :data:`STATES`; each test asserts it visited the ones it is responsible for, so a new
page state is one more name here and one more ``review.check(page, "<name>")`` in a journey.
"""

from __future__ import annotations

from pathlib import Path

from axe_playwright_python.sync_playwright import Axe

from tests import services

LANGUAGES = ("en", "es", "fr", "de", "pt-BR", "ar")
"""Every shipped language, as a session's ``locale``."""
SCREENSHOT_LANGUAGES = ("en", "ar")
WIDTHS = {375: 812, 1280: 900}
"""Viewport width → height (px) of each check; full-page screenshots grow past the height."""
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
"""axe-core's rule tags for WCAG 2.0 and 2.1, levels A and AA (https://github.com/dequelabs/axe-core/blob/develop/doc/API.md#axe-core-tags)."""

CARD_STATES = ("form", "field-error", "decline", "approved")
"""Reached by e2e/test_languages.py: the form, a field error from the page's script, a decline, the outcome."""
OTHER_STATES = (
    "server-error",        # the form as the server renders its field errors, without the page's script
    "amount-form",         # a session whose customer types the amount (amount_range)
    "hold-form",           # an authorization hold's form (intent hold)
    "subscription-form",   # a subscription's form, with its renewal note
    "busy",                # another payment of the same customer is still processing (HTTP 409)
    "processing",          # the gateway's answer is not known yet
    "requires-agent",      # every attempt declined
    "canceled",
    "unavailable",         # a link that is not valid (404 page)
    "failed",              # the reconciler found no payment
    "expired",
    "agent-pending",       # the agent view with its buttons
    "agent-canceled",      # the agent view after the agent canceled (notice)
    "agent-approved",      # the agent view of an approved payment (brand and last four)
)
"""Reached by e2e/test_accessibility.py."""
STATES = CARD_STATES + OTHER_STATES

_axe = Axe()


def screenshot_dir() -> Path:
    """``<test state dir>/screenshots`` (created): where :class:`Review` saves its screenshots."""
    path = services.state_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe(violations: list[dict]) -> str:
    """One line per violation and node: rule id, impact, target and help (with its URL)."""
    lines = []
    for v in violations:
        for node in v["nodes"]:
            lines.append(f"  {v['state']} @{v['width']}px  {v['id']} ({v['impact']}) {node['target']}: {v['help']} "
                         f"<{v['helpUrl']}>\n      {node.get('failureSummary', '').strip().replace(chr(10), ' ')}")
    return "\n".join(lines)


class Review:
    """Checks (axe) and photographs each state of one language's journey; :meth:`assert_clean` fails the test with
    every violation found."""

    def __init__(self, language: str):
        self.language = language
        self.violations: list[dict] = []
        self.visited: list[str] = []
        self.overflows: list[str] = []

    def check(self, page, state: str) -> None:
        """Runs axe on ``page`` as it is now at each width of :data:`WIDTHS` and notes any horizontal scrolling
        (screenshots for en and ar), then puts the viewport back to the phone's size."""
        assert state in STATES, f"{state} is not in e2e/accessibility.py STATES"
        self.visited.append(state)
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            results = _axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS},
                                              "resultTypes": ["violations"]})
            for v in results.response["violations"]:
                self.violations.append({**v, "state": state, "width": width})
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:  # WCAG 2.1 1.4.10 Reflow: no horizontal scrolling
                self.overflows.append(f"{state} @{width}px: the page is {scroll_width}px wide")
            if self.language in SCREENSHOT_LANGUAGES:
                page.screenshot(path=str(screenshot_dir() / f"{self.language}-{state}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 375, "height": WIDTHS[375]})

    def assert_clean(self, expected_states=()) -> None:
        """Fails on any violation or horizontal scrolling seen (all of them listed) or any state of
        ``expected_states`` not checked."""
        assert not self.violations, (f"axe-core: {len(self.violations)} WCAG 2.1 AA violation(s) in "
                                     f"{self.language}:\n{describe(self.violations)}")
        assert not self.overflows, f"horizontal scrolling in {self.language}: {self.overflows}"
        missing = [s for s in expected_states if s not in self.visited]
        assert not missing, f"states not checked in {self.language}: {missing}"
