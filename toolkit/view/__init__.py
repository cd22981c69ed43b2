"""What the analyst sees in a notebook: widgets, charts, and ``connect()``.

Needs the ``notebook`` extra (ipywidgets, matplotlib). Sits on top of :mod:`toolkit.core`
and :mod:`toolkit.send`; nothing below imports it.
"""
