"""The send side: HTTP transport, retry policy, the journal and the exactly-once launch.

Modules, each importing only those above it:

* :mod:`~toolkit.send.retry`: :class:`~toolkit.send.retry.RetryPolicy`, what is retried and how
  long to wait (the retry table, in one place);
* :mod:`~toolkit.send.journal`: the local SQLite record of every send;
* :mod:`~toolkit.send.transport`: the token, the one HTTP call, answers and errors;
* :mod:`~toolkit.send.events`: :class:`~toolkit.send.events.LaunchProgress`, what ``on_progress`` gets;
* :mod:`~toolkit.send.protocol`: claim in the journal, send, record: the one send protocol;
* :mod:`~toolkit.send.launch`: :class:`~toolkit.send.launch.Launch`, a plan's batches sent once;
* :mod:`~toolkit.send.client`: :class:`~toolkit.send.client.Client`, the platform's API.

Depends on :mod:`toolkit.core`, never on :mod:`toolkit.view`, :mod:`toolkit.cli` or
:mod:`toolkit.sandbox` (``tests/test_architecture.py``).
"""
