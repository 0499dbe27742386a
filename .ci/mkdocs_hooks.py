"""MkDocs hook: heading anchors spelled as GitHub spells them.

The pages are read on GitHub as well as on the site, so a link such as
``diagnostics.md#dlt505--tensorboard-logging-not-installed`` must find its heading in both:
lower case, every character but letters, digits, ``_``, ``-`` and spaces dropped, each space a
hyphen (Python-Markdown's own slugs would squeeze ``--`` into ``-``).
"""
from __future__ import annotations

import re


def github_slug(value: str, separator: str = "-") -> str:
    return re.sub(r"[^\w\- ]", "", value.strip().lower()).replace(" ", separator)


def on_config(config):
    config.mdx_configs.setdefault("toc", {})["slugify"] = github_slug
    return config
