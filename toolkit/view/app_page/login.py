"""The login page of ``toolkit app``: opened without its link's key, the page says where that link
comes from, in one sentence, instead of Jupyter's generic page (which talks about
``jupyter server list`` and passwords). The key can still be pasted into the box.

Loaded by the Voila process only (``--Voila.identity_provider_class``, see
:data:`toolkit.view.app_page.IDENTITY_PROVIDER`): token checks, cookies and the form's POST stay
jupyter_server's own; only the page's words change. The page is self-contained (inline style, no
asset from anywhere), so it shows offline too.

Example:
    >>> page = login_page(next_url="/", xsrf_field="", error=None)
    >>> "the link that" in page and "jupyter server list" not in page
    True
"""

from __future__ import annotations

import html
import urllib.parse
from typing import Any, Final

from jupyter_server.auth.identity import PasswordIdentityProvider
from voila.voila_identity_provider import VoilaLoginHandler

__all__ = ["WHERE_THE_LINK_IS", "AppIdentityProvider", "AppLoginHandler", "login_page"]

#: The sentence the login page is for.
WHERE_THE_LINK_IS: Final = (
    "Open this page with the link that toolkit app printed when it started "
    "(it ends with ?token=…): find it in the window where it runs, or ask whoever started it."
)
#: Said when the pasted key is not this page's (the form's POST failed).
WRONG_KEY: Final = "That is not this page's key: copy the link again, or the part after token= in it."

_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Launch a campaign: open your link</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto; padding: 0 1em;
        color: #222; line-height: 1.5; }}
.toolkit-login-error {{ color: #a40000; font-weight: 600; }}
form {{ margin-top: 2em; color: #555; }}
input {{ font: inherit; padding: .2em .4em; width: 20em; }}
</style></head>
<body class="toolkit-login">
<h1>Launch a campaign</h1>
<p class="toolkit-login-where">{where}</p>
{error}
<form action="{action}" method="post">{xsrf}
<label for="password_input">Or paste the part of the link after <code>token=</code>:</label><br>
<input type="password" name="password" id="password_input" autocomplete="off">
<button type="submit" id="login_submit">Open</button>
</form>
</body></html>
"""


def login_page(*, next_url: str, xsrf_field: str, error: str | None, base_url: str = "/") -> str:
    """The login page's HTML: the sentence, an error line if any, the box for the key.

    ``next_url`` is already URL-escaped (where to go after logging in); ``xsrf_field`` is the
    server's hidden form field (trusted HTML).

    Example:
        >>> "not this page&#x27;s key" in login_page(next_url="/", xsrf_field="", error=WRONG_KEY)
        True
    """
    error_line = f"<p class='toolkit-login-error'>{html.escape(error)}</p>" if error else ""
    return _PAGE.format(
        where=html.escape(WHERE_THE_LINK_IS),
        error=error_line,
        action=html.escape(f"{base_url}login?next={next_url}"),
        xsrf=xsrf_field,
    )


class AppLoginHandler(VoilaLoginHandler):
    """Voila's login handler with the app's page (the POST and its checks are unchanged)."""

    def _render(self, message: dict[str, str] | None = None) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.write(
            login_page(
                next_url=urllib.parse.quote_plus(
                    self.get_argument("next", default=self.base_url)
                ),  # as Jupyter's
                xsrf_field=self.xsrf_form_html(),
                error=WRONG_KEY if message and "error" in message else None,
                base_url=self.base_url,
            )
        )


class AppIdentityProvider(PasswordIdentityProvider):
    """jupyter_server's token login, with :class:`AppLoginHandler` serving ``/login``.

    Voila passes its own login handler class when it builds the provider, so the route is
    swapped here, where the handlers are listed.
    """

    def get_handlers(self) -> list[tuple[str, Any]]:
        return [
            (route, AppLoginHandler if route == r"/login" else handler)
            for route, handler in super().get_handlers()
        ]
