"""Shared pieces of the browser tests (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The random test models must not stop by themselves before Stop is clicked. Set in the page's own fetch
# rather than by Playwright's request interception, which may hand the page a streamed response at once.
ENDLESS_ANSWERS = """
const originalFetch = window.fetch;
window.fetch = (url, options) => {
  if (window.flashvqaTestIgnoreEos && String(url).endsWith("/v1/chat/completions")) {
    options = { ...options, body: JSON.stringify({ ...JSON.parse(options.body), ignore_eos: true }) };
  }
  return originalFetch(url, options);
};
"""
