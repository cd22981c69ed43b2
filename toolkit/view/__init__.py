"""What the analyst sees in a notebook: widgets, charts, and ``connect()``.

Needs the ``notebook`` extra (ipywidgets, matplotlib): ``pip install 'toolkit[notebook]'``;
without it, importing this package raises :class:`~toolkit.errors.MissingExtraError` saying
so. Sits on top of :mod:`toolkit.core` and :mod:`toolkit.send`; nothing below imports it.
"""

from toolkit.errors import require_extra

require_extra("notebook", "toolkit.view", "ipywidgets", "matplotlib")
