"""One request to a tracking server before a stage relies on it, so that a server that is down
or refuses the credentials stops the stage in one line, before any work, instead of MLflow's
retries (about four minutes) and a library traceback after the training.

Credentials are MLflow's own: `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (a
server started with `--app-name basic-auth`) or `MLFLOW_TRACKING_TOKEN`, read by MLflow's
request code, which this check uses too (TLS settings included).
"""

from __future__ import annotations

import functools
import re

SEARCH = "/api/2.0/mlflow/experiments/search"  # any authenticated user may call it
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


class TrackingServerError(SystemExit):
    """The tracking server cannot be used as configured: the process ends with status 1 and
    one line on stderr, `error: ` and what to do (how Python reports a SystemExit's text)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


@functools.cache
def check_server(uri: str) -> None:
    """Raise TrackingServerError unless the server at `uri` answers a search with these
    credentials. One request without retries, once per process and server."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(uri), SEARCH, "GET", max_retries=0, timeout=10,
                                params={"max_results": 1}, raise_on_status=False)
    except MlflowException as e:
        raise TrackingServerError(
            f"the MLflow tracking server at {uri} does not answer ({reason(str(e))}): start it, or fix "
            f"MLFLOW_TRACKING_URI (unset, the runs go to the repository's mlflow.db)") from None
    if response.status_code == 401:
        raise TrackingServerError(
            f"the MLflow tracking server at {uri} wants a login and refused this one: set {CREDENTIALS} "
            f"to a user its admin created (docs/scaling.md, 'A shared tracking server')")
    if response.status_code == 403:
        raise TrackingServerError(f"the MLflow tracking server at {uri} denies this user access: ask its admin for a permission")
    if response.status_code != 200:
        raise TrackingServerError(f"the MLflow tracking server at {uri} answered HTTP {response.status_code}: "
                                  f"{response.text.strip()[:200]}")


def reason(message: str) -> str:
    """`Connection refused` out of the requests library's long message, else its last part."""
    errno = re.search(r"\[Errno -?\d+\] ([^\"')]+)", message)
    return errno.group(1).strip() if errno else message.rsplit(": ", 1)[-1][:200]
