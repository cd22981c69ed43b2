"""The core: a segment to validated, encoded, size-bounded batches. No I/O, no network.

Modules, in the order data flows through them:

* :mod:`~toolkit.core.contract`: the platform's vocabulary, limits and body shapes (shared with the sandbox);
* :mod:`~toolkit.core.frames`: any dataframe (pandas, polars, pyarrow, ...) to polars, and back;
* :mod:`~toolkit.core.mapping`: columns to profile fields, subscriptions, the trigger;
* :mod:`~toolkit.core.validate`: normalize and check every row (vectorized);
* :mod:`~toolkit.core.encode`: rows to JSON / XML bytes;
* :mod:`~toolkit.core.plan`: batches under the body limit, built on demand;
* :mod:`~toolkit.core.sample`: the bundled practice segment.

Nothing here imports :mod:`toolkit.send` (client, journal, launch) or :mod:`toolkit.view`
(widgets, charts); ``tests/test_architecture.py`` checks it. The public names are
re-exported from :mod:`toolkit`.
"""
