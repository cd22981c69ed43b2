"""What ``toolkit app`` serves around the launch form: its Voila page template and its login page.

Both make the page work on a machine without internet and speak to the colleague who opens it:

- :data:`TEMPLATE` (a Voila template in :data:`JUPYTER_DATA`, passed to Voila with
  ``JUPYTER_PATH``): Voila's "lab" page without its stylesheet links to a CDN (Voila bundles the
  same Font Awesome and serves its fonts itself);
- :mod:`toolkit.view.app_page.login` (``--Voila.identity_provider_class``): a login page that says
  in one sentence where the page's link comes from, instead of Jupyter's generic one.

Nothing here is imported by the widgets: only the Voila process started by ``toolkit app`` loads it.

Example:
    >>> (JUPYTER_DATA / "voila" / "templates" / TEMPLATE / "index.html.j2").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["IDENTITY_PROVIDER", "JUPYTER_DATA", "TEMPLATE"]

#: A Jupyter data folder (for ``JUPYTER_PATH``) holding ``voila/templates/<TEMPLATE>``.
JUPYTER_DATA: Final = Path(__file__).resolve().parent
#: The Voila template of the app's page (``--template``).
TEMPLATE: Final = "toolkit-app"
#: The identity provider with the app's own login page (``--Voila.identity_provider_class``).
IDENTITY_PROVIDER: Final = "toolkit.view.app_page.login.AppIdentityProvider"
