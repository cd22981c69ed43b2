"""Notebook widgets (ipywidgets 8): the launch form, a launch monitor and the launch history.

* :class:`LaunchForm` (``form.py``): choose a segment, the trigger, the matching, the column ->
  field mapping, subscriptions, flags, content and attachments; see the plan live (summary,
  rejected rows by reason, the first records exactly as sent); tick the confirmation and
  launch, once. ``form.launch`` is then the :class:`~toolkit.send.launch.Launch`.
* :class:`LaunchMonitor` (``monitor.py``): live per-batch progress of a running or resumed
  launch, then its results and charts.
* :class:`History` (``history.py``): the journal's launches; pick one to see its results.

They share ``results.py`` (the one results view: counts, failures, first rows, charts),
``_bars.py`` (batch progress bars drawn from :class:`~toolkit.send.events.LaunchProgress`
events, never by polling the journal) and ``_html.py`` (CSS classes, messages, escaping).

Every error (a bad mapping, a missing token, :class:`~toolkit.errors.AlreadyLaunched`, the
platform refusing) appears in the widget as a sentence, never as a traceback. The widgets
carry stable CSS classes (``toolkit-launch-button``, ``toolkit-status``, ...; see
:data:`CSS_CLASSES`) for browser tests.

Example:
    >>> import toolkit
    >>> form = LaunchForm(toolkit.sample_customers(200), trigger=96)
    >>> form.confirm.description  # doctest: +ELLIPSIS
    "Send trigger 96 'Registration welcome' to 193 profiles on SANDBOX at 127.0.0.1:..."
    >>> form.button.disabled  # not confirmed yet
    True
    >>> form.confirm.value = True
    >>> form.button.disabled
    False
    >>> guess_fields(["email", "phone", "first_name", "crm_id"])
    {'email': 'email', 'phone': 'phones', 'first_name': '_fname', 'crm_id': 'crm_id'}
"""

from toolkit.view.widgets._html import CSS_CLASSES
from toolkit.view.widgets.form import LaunchForm, guess_fields
from toolkit.view.widgets.history import History
from toolkit.view.widgets.monitor import LaunchMonitor

__all__ = ["CSS_CLASSES", "History", "LaunchForm", "LaunchMonitor", "guess_fields"]
