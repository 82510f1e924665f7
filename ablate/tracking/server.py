"""An MLflow tracking server that answers but refuses ablate's requests (HTTP 4xx: a host name it
was not told to allow, no credentials, a URL that is no MLflow server's) is a configuration
error: refused when the sweep starts, in one line naming the fix; rerunning cannot help. A
server that does not answer at all is not (the sweep goes on, `ablate.sweep.driver`)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ablate.config import JobSpec
from ablate.errors import UserError

#: How long the start-of-sweep probe waits for the server (a down one: the sweep goes on).
PROBE_SECONDS = 10

#: MLflow 3.x's answer to a Host header not in `--allowed-hosts` (or localhost, a private IP).
_INVALID_HOST = "Invalid Host header"
#: The HTTP status an MLflow error message quotes (`failed with error code 403 != 200`).
_STATUS_IN_MESSAGE = re.compile(r"error code (4\d\d)\b")


def check_tracking_server(job: JobSpec) -> None:
    """Ask an http(s) tracking server for one experiment; refuse the job if it answers 4xx."""
    if not job.tracking_uri.startswith(("http://", "https://")):
        return
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(job.tracking_uri),
            "/api/2.0/mlflow/experiments/search",
            "GET",
            max_retries=0,
            timeout=PROBE_SECONDS,
            raise_on_status=False,
            params={"max_results": 1},
        )
    except Exception:  # no answer: not a configuration error (the sweep goes on without it)
        return
    message = refusal(job, response.status_code, response.text)
    if message:
        raise UserError(message)


def refused_request(job: JobSpec, err: BaseException) -> str | None:
    """The one-line message for an MLflow error that is the server refusing (401, 403), else
    None (a server that did not answer, a local store's error)."""
    if not job.tracking_uri.startswith(("http://", "https://")):
        return None
    status = None
    with_code = getattr(err, "get_http_status_code", None)
    if callable(with_code):
        status = with_code()
    found = _STATUS_IN_MESSAGE.search(str(err))
    status = int(found.group(1)) if found else status
    if status not in (401, 403):
        return None
    return refusal(job, status, str(err))


def refusal(job: JobSpec, status: int, body: str) -> str | None:
    """What to do about the server's answer `status` (None unless a 4xx)."""
    if not 400 <= status < 500:
        return None
    where = f"{job.source or 'job'}: the MLflow server of `tracking` ({job.tracking_shown})"
    if status == 403 and _INVALID_HOST in body:
        parts = urlsplit(job.tracking_uri)
        host = parts.hostname or "HOST"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return (
            f"{where} refuses this host name (403 {_INVALID_HOST}): start it with "
            f"`mlflow server --allowed-hosts {host},{host}:{port} ...` (MLflow 3 answers only "
            "localhost and private IPs by default)"
        )
    if status == 401:
        return (
            f"{where} asks for credentials (401): set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) where ablate runs"
        )
    if status == 403:
        return f"{where} refuses ablate's requests (403): give this user access to the server"
    return (
        f"{where} answers HTTP {status} to MLflow's API: give the URL `mlflow server` serves "
        "(http://HOST:PORT, no path)"
    )
