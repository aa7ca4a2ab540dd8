"""Seeing a scan: Manhattan and QQ plots, lambda_GC and a one-page HTML report.

Three modules, imports flowing one way:

- :mod:`glimix_cli.report.data` - pure pandas/numpy preparation (chromosome order,
  cumulative positions, downsampling, QQ expectations and confidence band). Functions take
  arrays and return small frozen dataclasses of arrays, so tests check what would be drawn
  without looking at pixels.
- :mod:`glimix_cli.report.plots` - matplotlib rendering (Agg, no display). matplotlib is an
  optional extra (``pip install 'glimix-cli[plot]'``).
- :mod:`glimix_cli.report.html` - the self-contained HTML page.

This module stays light (no pandas, no matplotlib) so importing the package is cheap.
"""

from __future__ import annotations

from glimix_cli.io.atomic import write_bytes_atomic

__all__ = ["write_bytes_atomic"]
