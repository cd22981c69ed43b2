"""The send side: HTTP transport, retry policy, the journal and the exactly-once launch.

* :mod:`~toolkit.send.retry`: what is retried and how long to wait (one place);
* :mod:`~toolkit.send.journal`: the local SQLite record of every send;
* :mod:`~toolkit.send.client`: :class:`~toolkit.send.client.Client`, the platform's API;
* :mod:`~toolkit.send.launch`: :class:`~toolkit.send.launch.Launch`, a plan's batches sent once.

Depends on :mod:`toolkit.core`, never on :mod:`toolkit.view`.
"""
